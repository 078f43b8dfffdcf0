"""Screenshots of one market's overview and its step 2 and step 5 reports, for the README.

Run by ``make screenshots`` after ``territory run MARKET``: headless Chromium, no network, 1400 px
wide, the top of each page; written to ``docs/screenshots/<market>-<page>.png`` as 256-colour PNGs.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

from territory_lib.paths import reports_dir

#: Page file, name of the screenshot, and how much of the page (in px) it shows.
PAGES = (
    ("overview.html", "overview", 1500),
    ("02_define_territories.html", "step2", 3100),
    ("05_feedback_optimize.html", "step5", 2300),
)
WIDTH = 1400
OFFLINE = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--hide-scrollbars",
    "--no-first-run",
    "--disable-background-networking",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--virtual-time-budget=8000",
)


def screenshot(chromium: str, page: Path, target: Path, height: int) -> Path:
    """Save the top ``height`` px of ``page`` at :data:`WIDTH` px as an optimised PNG."""
    with tempfile.TemporaryDirectory(prefix="territory-shot-") as tmp:
        raw = Path(tmp) / "shot.png"
        subprocess.run(
            [
                chromium,
                *OFFLINE,
                f"--user-data-dir={Path(tmp) / 'profile'}",
                f"--window-size={WIDTH},{height}",
                f"--screenshot={raw}",
                page.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        with Image.open(raw) as image:
            image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(
                target, optimize=True
            )
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "market", nargs="?", default="georgia", help="a market already run (default: georgia)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "screenshots", help="output folder"
    )
    args = parser.parse_args(argv)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("Chromium is not installed (apt-get install chromium).", file=sys.stderr)
        return 1
    folder = reports_dir() / args.market
    missing = [name for name, _, _ in PAGES if not (folder / name).is_file()]
    if missing:
        print(
            f"{folder} has no {', '.join(missing)}: run `territory run {args.market}` first.", file=sys.stderr
        )
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for name, label, height in PAGES:
        target = screenshot(chromium, folder / name, args.out / f"{args.market}-{label}.png", height)
        print(f"{target} ({target.stat().st_size / 1024:,.0f} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
