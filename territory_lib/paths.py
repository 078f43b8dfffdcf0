"""Where things live: the project's folders, and a guard that keeps written paths inside them."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from territory_lib.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
PARAMS_DIR = PROJECT_ROOT / "params"
DATA_DIR = PROJECT_ROOT / "data"

#: Reports go here unless ``TERRITORY_REPORTS_DIR`` names another folder (tests use a temporary one).
REPORTS_ENV_VAR = "TERRITORY_REPORTS_DIR"


def reports_dir() -> Path:
    """Return the root folder of generated reports (``reports/`` or ``$TERRITORY_REPORTS_DIR``)."""
    override = os.environ.get(REPORTS_ENV_VAR)
    return Path(override).resolve() if override else PROJECT_ROOT / "reports"


def ensure_inside(path: Path, root: Path, what: str) -> Path:
    """Resolve ``path`` and refuse it unless it lies inside ``root``.

    Parameters
    ----------
    path, root
        The path to check and the folder it must stay in.
    what
        How to name the path in the error message (e.g. ``"output_dir parameter"``).
    """
    resolved = path.resolve()
    root = root.resolve()
    if resolved != root and root not in resolved.parents:
        raise ConfigError(f"{what} {str(path)!r} points outside {root}; choose a folder inside it.")
    return resolved


def write_text_atomically(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename, so readers never see half a file.

    ``open(..., "x")`` honours the umask, so the file is as readable as any other written here.
    """
    path = Path(path)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temp, "x", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return path
