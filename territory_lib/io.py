"""Read and validate a market's data files into canonical tables, with errors that say what to fix.

Every table is read from CSV, Parquet, GeoPackage, GeoJSON or Shapefile, its columns renamed by
the params' ``columns:`` maps, then checked: required columns, types (with file row numbers),
allowed values, unique ids and the links between tables.
"""

from __future__ import annotations

import datetime as dt
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import geopandas as gpd
import pandas as pd
from pyproj import CRS
from pyproj.exceptions import CRSError

from territory_lib.config import MarketConfig
from territory_lib.errors import ConfigError, DataError
from territory_lib.geometry import Repair, repair_notes, repair_units

if TYPE_CHECKING:
    import pandera.pandas as pa

Kind = Literal["id", "text", "number", "date"]

GEO_SUFFIXES = {".gpkg", ".geojson", ".json", ".shp", ".parquet"}
TABLE_SUFFIXES = {".csv", ".parquet", ".gpkg", ".geojson", ".json", ".shp"}
SEGMENT_SEPARATOR = ";"
#: An id a spreadsheet turned into a float (``01`` -> ``1.0``): the digits before ``.0`` are kept.
INTEGRAL_FLOAT = r"^(-*\d+)\.0$"


@dataclass(frozen=True)
class Column:
    """A canonical column: its name, kind, whether it must be present, and its allowed range."""

    name: str
    kind: Kind
    required: bool = True
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()


SCHEMAS: dict[str, tuple[Column, ...]] = {
    "units": (
        Column("unit_id", "id"),
        Column("name", "text"),
        Column("territory_id", "id", required=False),
    ),
    "accounts": (
        Column("account_id", "id"),
        Column("name", "text"),
        Column("lat", "number", minimum=-90, maximum=90),
        Column("lon", "number", minimum=-180, maximum=180),
        Column("segment", "text"),
        Column("status", "text", choices=("customer", "prospect")),
        Column("potential", "number", minimum=0),
        Column("unit_id", "id", required=False),
        Column("rep_id", "id", required=False),
    ),
    "reps": (
        Column("rep_id", "id"),
        Column("name", "text"),
        Column("home_lat", "number", minimum=-90, maximum=90),
        Column("home_lon", "number", minimum=-180, maximum=180),
        Column("capacity", "number", minimum=0),
        Column("segments", "text", required=False),
        Column("territory_id", "id", required=False),
    ),
    "sales": (
        Column("date", "date"),
        Column("account_id", "id"),
        Column("amount", "number"),
    ),
    "feedback": (
        Column("date", "date"),
        Column("rep_id", "id"),
        Column("comment", "text", required=False),
    ),
}
SCORE_PREFIX = "score_"


@dataclass
class Market:
    """A market's validated tables, ready for the step functions."""

    config: MarketConfig
    units: gpd.GeoDataFrame
    accounts: pd.DataFrame
    reps: pd.DataFrame
    sales: pd.DataFrame
    feedback: pd.DataFrame | None
    warnings: list[str] = field(default_factory=list)
    repairs: list[Repair] = field(default_factory=list)

    @property
    def unit_attributes(self) -> list[str]:
        """The units' numeric columns: the market attributes (population, income, ...)."""
        return [
            name
            for name in self.units.columns
            if name not in {"unit_id", "name", "territory_id", "geometry"}
            and pd.api.types.is_numeric_dtype(self.units[name])
        ]

    @property
    def score_columns(self) -> list[str]:
        """The feedback's ``score_*`` columns."""
        if self.feedback is None:
            return []
        return [name for name in self.feedback.columns if name.startswith(SCORE_PREFIX)]


def load_market(
    config: MarketConfig,
    progress: Callable[[str], None] | None = None,
    run_date: str | dt.date | None = None,
) -> Market:
    """Read every data file of ``config`` and validate it into a :class:`Market`.

    Built-in markets whose files are missing are generated first (see ``territory_lib.datasets``).
    The checks of :mod:`territory_lib.checks` run too, so every step and ``territory check``
    agree; their notes go into ``Market.warnings``.

    Parameters
    ----------
    run_date
        The date of the run (``YYYY-MM-DD``); sales after it are an error. Empty for today.

    Raises
    ------
    DataError
        Naming the file, column and rows at fault and how to fix them.
    ConfigError
        When the params ask what the data cannot give (e.g. more territories than units).
    """
    # checks imports this module for its tables and row descriptions.
    from territory_lib.checks import check_market

    prepare_builtin_data(config, progress)
    notes: list[str] = []
    repairs: list[Repair] = []
    units = load_units(config, notes, repairs)
    accounts = load_table(config, "accounts")
    reps = load_table(config, "reps")
    sales = load_table(config, "sales")
    feedback = load_table(config, "feedback") if config.data.feedback is not None else None

    accounts = _place_accounts(config, accounts, units, notes)
    _check_links(config.data.sales, sales, "account_id", accounts, "accounts")
    if "rep_id" in accounts:
        owned = accounts[accounts["rep_id"] != ""]
        _check_links(config.data.accounts, owned, "rep_id", reps, "reps")
    if feedback is not None:
        _check_links(config.data.feedback, feedback, "rep_id", reps, "reps")
    market = Market(config, units, accounts, reps, sales, feedback, notes, repairs)
    notes.extend(check_market(market, run_date))
    return market


def prepare_builtin_data(
    config: MarketConfig, progress: Callable[[str], None] | None = None, *, force: bool = False
) -> bool:
    """Generate a built-in market's data files when any is missing (or always, with ``force``).

    Generation writes only into the project's ``data/<market>/`` (see :func:`builtin_data_folder`)
    and never replaces a file it did not write (see :func:`territory_lib.datasets.prepare_builtin`).
    Returns whether it generated.
    """
    files = [path for path in config.data.model_dump().values() if path is not None]
    if config.builtin is None or (not force and all(Path(path).exists() for path in files)):
        return False
    from territory_lib.datasets import prepare_builtin

    out_dir = builtin_data_folder(config)
    if progress:
        progress(f"preparing the built-in '{config.builtin}' data in {out_dir}")
    prepare_builtin(config.builtin, out_dir, seed=config.design.seed, progress=progress)
    return True


def builtin_data_folder(config: MarketConfig) -> Path:
    """The only folder a built-in market's data are generated in: the project's ``data/<market>/``.

    Raises
    ------
    ConfigError
        When a ``data:`` path of the params names another file, so generation cannot replace a
        user's own files by synthetic ones.
    """
    from territory_lib import paths
    from territory_lib.datasets import TABLE_FILES

    folder = paths.data_dir() / config.market
    for table, name in TABLE_FILES.items():
        given = getattr(config.data, table)
        expected = folder / name
        if given is not None and Path(given).resolve() != expected.resolve():
            relative = os.path.relpath(expected, config.source.parent)
            raise ConfigError(
                f"{config.source}: 'data: {table}:' is {given}, but the built-in market "
                f"'{config.builtin}' generates its data only in {folder}, never in a folder of yours. "
                f"Set 'data: {table}: {relative}', or remove 'builtin:' to use your own files."
            )
    return folder


def read_any(path: Path, table: str) -> pd.DataFrame:
    """Read a table file by its suffix; CSV values are read as text and typed by the validator."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"{table} file {path} not found; check the path under 'data: {table}:' in the params."
        )
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise DataError(
            f"{path}: cannot read '{suffix}' files; use one of {', '.join(sorted(TABLE_SUFFIXES))}."
        )
    try:
        if suffix == ".csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
        if suffix == ".parquet":
            try:
                return gpd.read_parquet(path)
            except (ValueError, KeyError):
                return pd.read_parquet(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return gpd.read_file(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: could not be read as a {table} table ({exc}).") from None


def load_table(config: MarketConfig, table: str) -> pd.DataFrame:
    """Read, rename and validate one non-geographic table of ``config``."""
    path = Path(getattr(config.data, table))
    frame = read_any(path, table)
    if isinstance(frame, gpd.GeoDataFrame):
        frame = pd.DataFrame(frame.drop(columns=frame.geometry.name))
    frame = _rename(frame, path, table, getattr(config.columns, table))
    return validate_table(frame, path, table)


def load_units(
    config: MarketConfig, notes: list[str] | None = None, repairs: list[Repair] | None = None
) -> gpd.GeoDataFrame:
    """Read and validate the units: polygons with a CRS, unique ids, numeric attributes.

    Shapes are repaired as real files need it (:func:`territory_lib.geometry.repair_units`):
    invalid rings, non-polygonal parts, slivers, overlaps and gaps up to ``geometry.snap``. Rows
    repeated exactly are dropped. What was done is appended to ``notes`` (plain language) and
    ``repairs`` (one record per unit).
    """
    path = Path(config.data.units)
    if path.suffix.lower() not in GEO_SUFFIXES:
        raise DataError(
            f"{path}: units need polygon geometry; give a GeoPackage, GeoJSON, Shapefile or GeoParquet file."
        )
    frame = read_any(path, "units")
    if not isinstance(frame, gpd.GeoDataFrame):
        raise DataError(f"{path}: has no geometry column; units need polygons.")
    frame = _rename(frame, path, "units", config.columns.units)
    if frame.crs is None:
        if config.units_crs is None:
            raise DataError(
                f"{path}: the units have no coordinate reference system; add 'units_crs: EPSG:4326' "
                "(or the file's real CRS) to the params, or save the file with its CRS."
            )
        try:
            frame = frame.set_crs(CRS.from_user_input(config.units_crs))
        except CRSError as exc:
            raise DataError(f"params 'units_crs: {config.units_crs}' is not a known CRS ({exc}).") from None
    frame = frame.reset_index(drop=True)
    geometry = frame.geometry
    empty = geometry.is_empty | geometry.isna()
    if empty.any():
        raise DataError(f"{path}: {_rows(empty, geo=True)} have no geometry; give every unit its polygon.")
    polygonal = geometry.geom_type.isin(["Polygon", "MultiPolygon", "GeometryCollection"])
    if not polygonal.all():
        kinds = ", ".join(sorted(set(geometry.geom_type[~polygonal])))
        raise DataError(f"{path}: units must be polygons; {_rows(~polygonal, geo=True)} are {kinds}.")
    # Metres declared as degrees would make the repair's reprojection meaningless: stop first.
    # (checks imports this module for its tables and row descriptions, hence the late import.)
    from territory_lib.checks import check_units_crs

    check_units_crs(config, frame)
    frame = _drop_repeated_rows(frame, path, notes)
    validated = validate_table(pd.DataFrame(frame.drop(columns=frame.geometry.name)), path, "units", geo=True)
    for name in validated.columns:
        if name not in {"unit_id", "name", "territory_id"} and validated[name].dtype == object:
            numbers = pd.to_numeric(validated[name], errors="coerce")
            if numbers.notna().all():
                validated[name] = numbers
    try:
        repaired = repair_units(
            frame.geometry, validated["unit_id"].to_numpy(), config.geometry.snap, label=config.unit_label
        )
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None
    if notes is not None:
        notes.extend(repair_notes(repaired.repairs, config.unit_label))
    if repairs is not None:
        repairs.extend(repaired.repairs)
    return gpd.GeoDataFrame(validated, geometry=repaired.geometry.values, crs=frame.crs)


def _drop_repeated_rows(frame: gpd.GeoDataFrame, path: Path, notes: list[str] | None) -> gpd.GeoDataFrame:
    """Drop rows that repeat an earlier row exactly (same attributes, same shape), as exports do."""
    key = pd.DataFrame(frame.drop(columns=frame.geometry.name)).astype(str)
    key["__shape"] = frame.geometry.to_wkb()
    repeated = key.duplicated(keep="first")
    if not repeated.any():
        return frame
    if notes is not None:
        ids = ", ".join(key.loc[repeated, "unit_id"].head(5)) if "unit_id" in key else ""
        notes.append(
            f"{path.name}: {_rows(repeated, geo=True)} repeat an earlier row exactly (unit {ids}); "
            "the copies were dropped."
        )
    return frame[~repeated].reset_index(drop=True)


def _rename(frame: pd.DataFrame, path: Path, table: str, mapping: dict[str, str]) -> pd.DataFrame:
    canonical = {column.name for column in SCHEMAS[table]}
    for target, source in mapping.items():
        if target not in canonical and not (table == "feedback" and target.startswith(SCORE_PREFIX)):
            raise DataError(
                f"params 'columns: {table}: {target}:' maps onto an unknown {table} column; "
                f"canonical columns are {', '.join(sorted(canonical))}."
            )
        if source not in frame.columns:
            raise DataError(
                f"params 'columns: {table}: {target}: {source}': {path.name} has no column '{source}'; "
                f"its columns are {', '.join(map(str, frame.columns))}."
            )
    return frame.rename(columns={source: target for target, source in mapping.items()})


def validate_table(frame: pd.DataFrame, path: Path, table: str, *, geo: bool = False) -> pd.DataFrame:
    """Check ``frame`` against the canonical schema of ``table`` and return it typed.

    Every problem of the file is reported at once (a pandera schema validated lazily): the
    ``DataError`` has one line per column and problem, each naming the file, the column and the
    rows. ``geo`` says the rows came from a geographic file, where row numbers count from 1
    without a header line; in CSV files they count the header as line 1, as a spreadsheet shows them.
    """
    frame = frame.reset_index(drop=True).copy()
    columns = list(SCHEMAS[table])
    if table == "feedback":
        scores = [name for name in frame.columns if str(name).startswith(SCORE_PREFIX)]
        columns += [Column(name, "number", minimum=1, maximum=5) for name in scores]
    unique = {"units": "unit_id", "accounts": "account_id", "reps": "rep_id"}.get(table)
    # Each column is parsed once (millions of sales rows): the checks read the parsed values.
    parsed = {column.name: _parse(frame[column.name], column) for column in columns if column.name in frame}
    # Imported here: step kernels read the run's validated snapshot and never load pandera (0.2 s).
    from pandera.errors import SchemaErrors

    try:
        _schema(table, columns, unique, parsed).validate(frame, lazy=True)
    except SchemaErrors as exc:
        failures = exc.failure_cases
        raise DataError(
            "\n".join(_failure_messages(failures, frame, path, table, columns, unique, geo))
        ) from None
    for name, values in parsed.items():
        frame[name] = values.typed
    return frame


@dataclass(frozen=True)
class _Parsed:
    """A column's values as read: which are empty, and the values typed by the column's kind."""

    missing: pd.Series
    typed: pd.Series


def _parse(values: pd.Series, column: Column) -> _Parsed:
    text = _text(values)
    missing = (text.isna() | (text == "")).astype(bool)
    if column.kind == "date":
        return _Parsed(missing, pd.to_datetime(text, errors="coerce", format="mixed"))
    if column.kind == "number":
        numbers = pd.to_numeric(text.str.replace(",", "", regex=False), errors="coerce")
        return _Parsed(missing, numbers.astype(float))
    cleaned = _integral_ids(text) if column.kind == "id" else text.fillna("").astype(object)
    return _Parsed(missing, cleaned.str.lower() if column.choices else cleaned)


def _schema(
    table: str, columns: list[Column], unique: str | None, parsed: dict[str, _Parsed]
) -> pa.DataFrameSchema:
    """The pandera schema of a table as read: each check's name says which message it gives.

    The checks read the columns as :func:`_parse` typed them, so a file that passes is typed
    without surprises.
    """
    import pandera.pandas as pa

    checks: dict[str, pa.Column] = {}
    for column in columns:
        column_checks = []
        if column.name in parsed:
            values = parsed[column.name]
            if column.required and column.kind in {"id", "number", "date"}:
                column_checks.append(pa.Check(lambda _, v=values: ~v.missing, name="filled", ignore_na=False))
            if column.choices:
                column_checks.append(
                    pa.Check(
                        lambda _, v=values, c=column.choices: v.missing | v.typed.isin(c),
                        name="choices",
                        ignore_na=False,
                    )
                )
            if column.kind in {"date", "number"}:
                column_checks.append(
                    pa.Check(
                        lambda _, v=values: v.missing | v.typed.notna(), name=column.kind, ignore_na=False
                    )
                )
            if column.kind == "number" and (column.minimum is not None or column.maximum is not None):
                column_checks.append(
                    pa.Check(
                        lambda _, v=values, c=column: ~_outside(v.typed, c), name="range", ignore_na=False
                    )
                )
            if column.name == unique:
                column_checks.append(
                    pa.Check(
                        lambda _, v=values: ~v.typed.duplicated(keep=False), name="unique", ignore_na=False
                    )
                )
        checks[column.name] = pa.Column(checks=column_checks, required=column.required, nullable=True)
    frame_checks = []
    if table == "feedback":
        frame_checks.append(
            pa.Check(
                lambda frame: any(str(name).startswith(SCORE_PREFIX) for name in frame.columns),
                name="score_columns",
            )
        )
    return pa.DataFrameSchema(checks, checks=frame_checks, name=table)


def _failure_messages(
    failures: pd.DataFrame,
    frame: pd.DataFrame,
    path: Path,
    table: str,
    columns: list[Column],
    unique: str | None,
    geo: bool,
) -> list[str]:
    """One message per column and failed check of :func:`table_schema`, in the schema's order."""
    messages = []
    checks = failures["check"].astype(str)
    if (checks == "score_columns").any():
        messages.append(
            f"{path}: feedback needs at least one 'score_*' column (e.g. score_workload) with values 1-5."
        )
    for column in columns:
        name = column.name
        if ((checks == "column_in_dataframe") & (failures["failure_case"] == name)).any():
            messages.append(
                f"{path}: required column '{name}' is missing (columns present: "
                f"{', '.join(map(str, frame.columns))}). Rename the column in the file, or map yours in the "
                f"params under 'columns: {table}: {name}: <your column>'."
            )
            continue
        for check in ("filled", "choices", "date", "number", "range", "unique"):
            rows = failures.loc[(failures["column"] == name) & (checks == check), "index"]
            if len(rows):
                mask = pd.Series(frame.index.isin(rows.astype(int)), index=frame.index)
                messages.append(_message(check, frame[name], column, mask, path, geo))
    return messages


def _message(check: str, values: pd.Series, column: Column, bad: pd.Series, path: Path, geo: bool) -> str:
    """The message of one failed check on ``column`` at the rows ``bad``."""
    where = f"{path}: column '{column.name}'"
    rows = _rows(bad, geo)
    if check == "filled":
        return f"{where} is empty in {rows}; fill it in."
    if check == "choices":
        found = _clean_text(values).str.lower()[bad].unique()[:5]
        return (
            f"{where} must be one of {', '.join(column.choices)}; {rows} have {', '.join(map(repr, found))}."
        )
    if check == "date":
        return (
            f"{where} has values that are not dates in {rows} (e.g. {_text(values)[bad].iloc[0]!r}); "
            "write dates as YYYY-MM-DD."
        )
    if check == "number":
        return (
            f"{where} has values that are not numbers in {rows} (e.g. {_text(values)[bad].iloc[0]!r}); "
            "fix those values."
        )
    if check == "range":
        band = (
            f"between {column.minimum:g} and {column.maximum:g}"
            if column.minimum is not None and column.maximum is not None
            else (
                f"at least {column.minimum:g}"
                if column.minimum is not None
                else f"at most {column.maximum:g}"
            )
        )
        return f"{where} must be {band}; {rows} are not (e.g. {_numbers(values)[bad].iloc[0]:g})."
    ids = sorted(_ids(values)[bad].unique())[:5]
    return f"{where} must be unique; {rows} share the ids {', '.join(ids)}."


def _text(values: pd.Series) -> pd.Series:
    return values.astype("string").str.strip()


def _clean_text(values: pd.Series) -> pd.Series:
    return _text(values).fillna("").astype(object)


def _ids(values: pd.Series) -> pd.Series:
    return _integral_ids(_text(values))


def _integral_ids(text: pd.Series) -> pd.Series:
    """Ids as text (``object``), integral floats as integers: spreadsheets turn ids like 01 into 1.0.

    ``text`` is stripped text (:func:`_text`); empty values become ``""``.
    """
    cleaned = text.fillna("").astype(object)
    # Only values ending in ".0" can match, so the pattern runs on those alone (of millions of ids).
    suspect = text.str.endswith(".0").fillna(False).to_numpy(dtype=bool)
    if suspect.any():
        cleaned[suspect] = cleaned[suspect].str.replace(INTEGRAL_FLOAT, r"\1", regex=True)
    return cleaned


def _numbers(values: pd.Series) -> pd.Series:
    return pd.to_numeric(_text(values).str.replace(",", "", regex=False), errors="coerce")


def _outside(numbers: pd.Series, column: Column) -> pd.Series:
    outside = pd.Series(False, index=numbers.index)
    if column.minimum is not None:
        outside |= numbers < column.minimum
    if column.maximum is not None:
        outside |= numbers > column.maximum
    return outside


def _rows(mask: pd.Series, geo: bool) -> str:
    """Describe the flagged rows by their number in the file (at most five listed)."""
    offset = 1 if geo else 2
    numbers = [int(i) + offset for i in mask[mask].index[:5]]
    more = int(mask.sum()) - len(numbers)
    listed = ", ".join(map(str, numbers)) + (f" and {more} more" if more > 0 else "")
    return f"{'feature' if geo else 'row'}{'s' if mask.sum() > 1 else ''} {listed}"


def _place_accounts(
    config: MarketConfig, accounts: pd.DataFrame, units: gpd.GeoDataFrame, notes: list[str]
) -> pd.DataFrame:
    """Give every account its unit: check given ``unit_id`` values, locate the rest by lat/lon."""
    from territory_lib.checks import outside_units_note

    path = Path(config.data.accounts)
    accounts = accounts.copy()
    if "unit_id" not in accounts:
        accounts["unit_id"] = ""
    given = accounts["unit_id"] != ""
    unknown = given & ~accounts["unit_id"].isin(units["unit_id"])
    if unknown.any():
        raise DataError(
            f"{path}: column 'unit_id' names units that are not in {Path(config.data.units).name} in "
            f"{_rows(unknown, False)} (e.g. {accounts.loc[unknown, 'unit_id'].iloc[0]!r}); correct them or "
            "leave them empty to locate the accounts by lat/lon."
        )
    # Every account's coordinates are checked, not only those to locate: swapped lat/lon or a wrong
    # units CRS put most accounts outside every unit, and would corrupt travel distances unseen.
    points = gpd.GeoDataFrame(
        index=accounts.index, geometry=gpd.points_from_xy(accounts["lon"], accounts["lat"]), crs=4326
    ).to_crs(units.crs)
    inside = gpd.sjoin(points, units[["unit_id", "geometry"]], how="left", predicate="within")
    inside = inside[~inside.index.duplicated()]
    found = inside["unit_id"].fillna("").reindex(accounts.index)
    outside = found == ""
    note = outside_units_note(config, accounts, outside)
    todo = ~given
    accounts.loc[todo, "unit_id"] = found[todo]
    nearest_needed = accounts.index[todo & outside]
    if len(nearest_needed):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            nearest = gpd.sjoin_nearest(
                points.loc[nearest_needed], units[["unit_id", "geometry"]], how="left"
            )
        nearest = nearest[~nearest.index.duplicated()]
        accounts.loc[nearest.index, "unit_id"] = nearest["unit_id"].to_numpy()
    if note:
        notes.append(note)
    return accounts


def _check_links(
    path: Path | None, frame: pd.DataFrame, column: str, target: pd.DataFrame, name: str
) -> None:
    unknown = ~frame[column].isin(target[column])
    if unknown.any():
        examples = ", ".join(map(repr, frame.loc[unknown, column].unique()[:5]))
        raise DataError(
            f"{path}: column '{column}' refers to {name} that do not exist in {_rows(unknown, False)} "
            f"({examples}); add them to the {name} file or correct the ids."
        )


def split_segments(value: str) -> list[str]:
    """The segments a rep sells to, from the ``segments`` column (``"SMB;Mid-Market"``)."""
    return [part.strip() for part in value.split(SEGMENT_SEPARATOR) if part.strip()]
