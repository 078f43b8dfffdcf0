"""Read once, compute once: a run validates its inputs a single time and keeps them, typed, for every step.

The snapshot lives in the run folder (``<run>/snapshot/``): the validated and repaired tables as
(Geo)Parquet, the notes and map repairs, the unit adjacency (built once on the repaired map and
reused by steps 1, 2 and 5), and the SHA-256 of every input file. All five steps of a run read
it, so they see the same data even if a file changes while the run goes on.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from territory_lib.config import MarketConfig

# The runner asks whether a snapshot is current before any step runs; the data libraries load
# only when one is written or read.
if TYPE_CHECKING:
    from territory_lib.design.graph import UnitGraph
    from territory_lib.io import Market

SNAPSHOT_DIR = "snapshot"
#: Bumped when the snapshot's layout changes, so an old one is rebuilt rather than misread.
FORMAT = 1
TABLES = ("units", "accounts", "reps", "sales", "feedback")
#: Files that travel with a shapefile and change what it reads.
SHAPEFILE_PARTS = (".shx", ".dbf", ".prj", ".cpg")


def input_files(config: MarketConfig) -> list[Path]:
    """The files a market's run reads: its params YAML and its data files (with shapefile parts)."""
    files = [Path(config.source)]
    for path in config.data.model_dump().values():
        if path is None:
            continue
        path = Path(path)
        files.append(path)
        if path.suffix.lower() == ".shp":
            files += [part for s in SHAPEFILE_PARTS if (part := path.with_suffix(s)).exists()]
    return files


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (``"missing"`` when it does not exist)."""
    if not path.is_file():
        return "missing"
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def input_hashes(config: MarketConfig) -> dict[str, str]:
    """``{path: sha256}`` of every input file of ``config``."""
    return {str(path): file_digest(path) for path in input_files(config)}


def snapshot_info(folder: Path) -> dict | None:
    """The snapshot's record (format, inputs, run date, origin), or ``None`` when there is none."""
    path = Path(folder) / SNAPSHOT_DIR / "snapshot.json"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return info if info.get("format") == FORMAT else None


def library_digest() -> str:
    """SHA-256 over the library's code and templates, as installed."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent
    for path in sorted(package.rglob("*")):
        if (
            path.is_file()
            and path.suffix in {".py", ".j2", ".css", ".html"}
            and "__pycache__" not in path.parts
        ):
            digest.update(str(path.relative_to(package)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def is_current(folder: Path, config: MarketConfig, run_date: str) -> bool:
    """Whether the snapshot in ``folder`` was made from the inputs as they are now, for ``run_date``,
    by this version of the library (a new version may read, repair or join the units differently).
    """
    info = snapshot_info(folder)
    return (
        info is not None
        and info.get("run_date") == run_date
        and info.get("inputs") == input_hashes(config)
        and info.get("library") == library_digest()
    )


def write_snapshot(
    market: Market, folder: Path, run_date: str, graph: UnitGraph, origin: str, hashes: dict[str, str]
) -> Path:
    """Write ``market`` and its adjacency to ``folder/snapshot`` (replacing it whole, atomically).

    Parameters
    ----------
    hashes
        The input hashes taken *before* the files were read, so a file changed while reading is
        caught as a change next time.
    origin
        ``"run"`` (made by ``territory run`` for all its steps) or ``"interactive"`` (a notebook).
    """
    import numpy as np

    target = Path(folder) / SNAPSHOT_DIR
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=".snapshot-", dir=target.parent))
    try:
        for name in TABLES:
            frame = getattr(market, name)
            if frame is not None:
                frame.to_parquet(temp / f"{name}.parquet", index=False)
        np.savez(
            temp / "adjacency.npz",
            ids=graph.ids.astype(str),
            indptr=graph.indptr,
            indices=graph.indices,
            shared=graph.shared,
            perimeter=graph.perimeter,
            area=graph.area,
            xy=graph.xy,
            joins=np.asarray([[i, j, m] for i, j, m in graph.joins], dtype=float).reshape(-1, 3),
        )
        info = {
            "format": FORMAT,
            "market": market.config.market,
            "run_date": run_date,
            "origin": origin,
            "inputs": hashes,
            "library": library_digest(),
            "warnings": market.warnings,
            "repairs": [asdict(repair) for repair in market.repairs],
            "graph": {"polygons": graph.polygons, "notes": graph.notes},
        }
        (temp / "snapshot.json").write_text(json.dumps(info, indent=1, ensure_ascii=False), encoding="utf-8")
        old = target.with_name(f".{SNAPSHOT_DIR}-old-{os.getpid()}")
        if target.exists():
            os.replace(target, old)
        os.replace(temp, target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return target


def read_snapshot(config: MarketConfig, folder: Path) -> tuple[Market, UnitGraph]:
    """Load the market and its adjacency from ``folder/snapshot``."""
    import geopandas as gpd
    import numpy as np
    import pandas as pd

    from territory_lib.design.graph import UnitGraph
    from territory_lib.geometry import Repair
    from territory_lib.io import Market

    source = Path(folder) / SNAPSHOT_DIR
    info = json.loads((source / "snapshot.json").read_text(encoding="utf-8"))
    tables = {
        name: (
            (gpd.read_parquet if name == "units" else pd.read_parquet)(source / f"{name}.parquet")
            if (source / f"{name}.parquet").exists()
            else None
        )
        for name in TABLES
    }
    market = Market(
        config,
        tables["units"],
        tables["accounts"],
        tables["reps"],
        tables["sales"],
        tables["feedback"],
        list(info["warnings"]),
        [Repair(**repair) for repair in info["repairs"]],
    )
    with np.load(source / "adjacency.npz") as arrays:
        graph = UnitGraph(
            ids=arrays["ids"].astype(object),
            indptr=arrays["indptr"],
            indices=arrays["indices"],
            shared=arrays["shared"],
            perimeter=arrays["perimeter"],
            area=arrays["area"],
            xy=arrays["xy"],
            polygons=bool(info["graph"]["polygons"]),
            joins=[(int(i), int(j), float(m)) for i, j, m in arrays["joins"]],
            notes=list(info["graph"]["notes"]),
        )
    return market, graph


def unit_graph(market: Market) -> UnitGraph:
    """The unit adjacency of ``market`` as step 2 builds it (on the repaired map, with its snap)."""
    from territory_lib.design.graph import build_unit_graph
    from territory_lib.geo import to_equal_area
    from territory_lib.geometry import stacked_units

    ids = market.units["unit_id"].to_numpy()
    # The units were repaired when read: the graph takes them as they are.
    return build_unit_graph(
        to_equal_area(market.units), ids, market.config.geometry.snap, stacked_units(market.repairs, ids)
    )


def build_snapshot(
    config: MarketConfig,
    folder: Path,
    run_date: str,
    origin: str,
    progress: Callable[[str], None] | None = None,
) -> tuple[Market, UnitGraph]:
    """Read and validate the inputs once, build the adjacency, and write the snapshot."""
    from territory_lib.io import load_market, prepare_builtin_data

    prepare_builtin_data(config, progress)
    hashes = input_hashes(config)
    market = load_market(config, progress=progress, run_date=run_date)
    graph = unit_graph(market)
    write_snapshot(market, folder, run_date, graph, origin, hashes)
    return market, graph
