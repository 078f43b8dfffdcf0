"""Built-in markets: real public unit data shipped inside PyPI packages plus seeded synthetic sales data.

Nothing is downloaded. The units (counties or states), their demographics and every location are
real; the accounts, reps, sales and feedback are synthetic, drawn by one seeded generator that the
real demographics drive. The generator, in order:

1. **Units** come from libpysal's example files and the real US ZIP codes of the ``zipcodes``
   package (USPS data with centroids): each unit gets ``zip_codes``, the number of active
   STANDARD ZIP codes whose centroid lies inside it (and in its state).
2. **Reps** (one per default territory) live at a real ZIP centroid in the main city of the most
   populous unit of each cluster of a size-weighted k-means, so a big metro area gets several reps
   and the rest spread over the market. The **current alignment** (``territory_id``) gives each
   unit to the rep whose home is nearest (a Voronoi split, deliberately unbalanced). Capacities
   vary per rep and sum to 1.0-1.1 x the accounts.
3. **Accounts**: the number per unit is multinomial with weights size^0.9 (size = population or its
   proxy); each sits at a real ZIP centroid inside its unit, jittered by ~1 km when the jittered
   point stays inside the unit. Large units have a richer Enterprise share. Annual potential is
   lognormal around a segment median, scaled by the unit's affluence (education or income).
4. **Sales** (monthly, 2023-01 to 2025-12): a customer life cycle. Some accounts are customers at
   the start, prospects convert and customers churn with monthly hazards; an active customer buys
   most months, for potential / 12 x wallet share x seasonality x territory trend x noise. Each
   territory's rep has a latent skill, and an overloaded rep (accounts above capacity) converts,
   retains and grows less, so territories differ.
5. **Feedback**: a quarterly survey per rep. Workload scores fall as the rep's weighted workload
   rises above capacity, travel scores fall with the mean home-to-account distance, market scores
   follow the territory's sales growth and potential, support scores rise after a support
   programme starts in 2024-Q3; comments come from templates for the lowest-scoring theme.

``status`` in ``accounts.csv`` is the state at the end of 2025-12: ``customer`` for an active buyer,
``prospect`` for an account never won or lost to churn.
"""

from __future__ import annotations

import calendar
import contextlib
import functools
import hashlib
import importlib.util
import json
import shutil
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from importlib.metadata import version
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
import zipcodes
from pyproj import Transformer

from territory_lib.errors import ConfigError, DataError
from territory_lib.geo import haversine_km, to_equal_area

TABLE_FILES: dict[str, str] = {
    "units": "units.gpkg",
    "accounts": "accounts.csv",
    "reps": "reps.csv",
    "sales": "sales.csv",
    "feedback": "feedback.csv",
}
PROVENANCE_FILE = "provenance.md"
#: What generation wrote, with SHA-256 hashes: the proof a file may be replaced by a new dataset.
GENERATED_FILE = "generated.json"
UNITS_LAYER = "units"
SEGMENTS = ("Enterprise", "Mid-Market", "SMB")
FIRST_MONTH = pd.Timestamp("2023-01-01")
MONTHS = 36
#: Support programme start (a synthetic event the feedback scores react to): 2024-Q3, quarter index 6.
SUPPORT_PROGRAMME_QUARTER = 6

# Georgia's G_utm.shp has no .prj. Its coordinates are UTM zone 16N (zone 17N puts every county
# centroid 6 degrees of longitude off the file's own Latitude/Longitud columns). The datum is read
# as NAD27, the datum of the 1990 Census TIGER files: centroids then sit 41 m from those columns
# in northing on average against 168 m as NAD83 (standard error 41 m).
GEORGIA_CRS = "EPSG:26716"
NORTH_CAROLINA_CRS = "EPSG:4267"  # NAD27 lon/lat, the datum of the sids2 source maps
US_STATES_CRS = "EPSG:4269"  # NAD83 lon/lat

# Segment parameters of the synthetic model.
SEGMENT_MEDIAN_POTENTIAL = np.array([250_000.0, 60_000.0, 12_000.0])
SEGMENT_INITIAL_CUSTOMER = np.array([0.50, 0.45, 0.40])
SEGMENT_MONTHLY_BUY = np.array([0.90, 0.80, 0.60])
MID_MARKET_SHARE = 0.27
JITTER_KM = 1.0
KM_PER_DEGREE = 111.32


@dataclass(frozen=True)
class BuiltinMarket:
    """A market that ships with Territory: real units and demographics, synthetic sales data.

    Attributes
    ----------
    name
        Slug used by ``prepare_builtin`` and the params files (``georgia``).
    title
        Human title for reports (``Georgia, USA``).
    real_sources
        One paragraph: which data are real, their source and the package that ships them.
    synthetic_parts
        One paragraph: which data are synthetic and how they were generated.
    default_territories
        Number of territories (and reps) of the market's default params.
    unit_label
        What one unit is (``county``, ``state``).
    """

    name: str
    title: str
    real_sources: str
    synthetic_parts: str
    default_territories: int
    unit_label: str


@dataclass
class _RealUnits:
    """A market's real geography before anything synthetic is added."""

    units: gpd.GeoDataFrame  # unit_id, name, attributes, geometry in the source CRS
    zips: pd.DataFrame  # real ZIP codes inside the units (any type), with their unit_id
    size: np.ndarray  # drives account density
    affluence: np.ndarray  # multiplies account potential (median 1)

    def sorted(self) -> _RealUnits:
        """Order units by ``unit_id`` so outputs do not depend on the source file's row order."""
        order = np.argsort(self.units["unit_id"].to_numpy(), kind="stable")
        return _RealUnits(
            units=self.units.iloc[order].reset_index(drop=True),
            zips=self.zips,
            size=self.size[order],
            affluence=self.affluence[order],
        )


@dataclass(frozen=True)
class _Recipe:
    loader: Callable[[], _RealUnits]
    accounts: int
    size_note: str  # what drives account density, for the provenance text
    affluence_note: str  # what scales potential, for the provenance text


def _example_file(folder: str, name: str) -> Path:
    # Found, not imported: importing libpysal loads numba and scikit-learn (1-2 s), and step
    # kernels import this module for the built-in markets' provenance text.
    spec = importlib.util.find_spec("libpysal")
    package = Path(spec.origin).parent if spec is not None and spec.origin else Path("libpysal")
    path = package / "examples" / folder / name
    if not path.is_file():
        raise DataError(
            f"libpysal example file {path} is missing; reinstall libpysal (pip install --force-reinstall "
            "libpysal) to restore its bundled example data."
        )
    return path


@functools.lru_cache(maxsize=1)
def _zip_table() -> pd.DataFrame:
    """All real US ZIP codes of the ``zipcodes`` package that have a centroid."""
    rows = zipcodes.list_all()
    frame = pd.DataFrame(
        {
            "zip_code": [row["zip_code"] for row in rows],
            "zip_type": [row["zip_code_type"] for row in rows],
            "active": [bool(row["active"]) for row in rows],
            "city": [row["city"] for row in rows],
            "state": [row["state"] for row in rows],
            "county": [row["county"] for row in rows],
            "lat": [float(row["lat"]) for row in rows],
            "lon": [float(row["long"]) for row in rows],
        }
    )
    # A few hundred records carry 0/0 instead of a centroid.
    return frame[(frame["lat"] != 0) & (frame["lon"] != 0)].reset_index(drop=True)


def _join_zips(units: gpd.GeoDataFrame, unit_states: pd.Series | None) -> pd.DataFrame:
    """Real ZIP codes whose centroid lies inside a unit (of its state, if given), with its ``unit_id``."""
    table = _zip_table()
    if unit_states is not None:
        table = table[table["state"].isin(set(unit_states))]
    points = gpd.GeoDataFrame(
        table, geometry=gpd.points_from_xy(table["lon"], table["lat"]), crs=4326
    ).to_crs(units.crs)
    joined = gpd.sjoin(points, units[["unit_id", "geometry"]], predicate="within")
    joined = joined[~joined.index.duplicated()]
    if unit_states is not None:
        state_of_unit = dict(zip(units["unit_id"], unit_states, strict=True))
        joined = joined[joined["state"] == joined["unit_id"].map(state_of_unit)]
    frame = pd.DataFrame(joined.drop(columns=["geometry", "index_right"]))
    frame["standard"] = (frame["zip_type"] == "STANDARD") & frame["active"]
    return frame.sort_values("zip_code").reset_index(drop=True)


def _zip_code_counts(units: gpd.GeoDataFrame, zips: pd.DataFrame) -> np.ndarray:
    counts = zips[zips["standard"]].groupby("unit_id").size()
    return counts.reindex(units["unit_id"], fill_value=0).to_numpy(dtype=int)


def zip_code_counts(units: gpd.GeoDataFrame) -> np.ndarray:
    """The number of active standard ZIP codes (``zipcodes`` package) whose centroid lies in each unit.

    Parameters
    ----------
    units
        Polygons with a CRS and a ``unit_id`` column.

    Returns
    -------
    numpy.ndarray
        One count per unit, in the order of ``units``: the ``zip_codes`` column that
        :func:`prepare_market` adds.
    """
    frame = _custom_units(units)
    return _zip_code_counts(frame, _join_zips(frame, None))


def _latlon(geometry: gpd.GeoSeries) -> tuple[np.ndarray, np.ndarray]:
    points = geometry.representative_point().to_crs(4326)
    return points.y.to_numpy(), points.x.to_numpy()


def _county_names(units: gpd.GeoDataFrame, zips: pd.DataFrame, state: str) -> list[str]:
    """Name each county polygon after the county its ZIP centroids carry, one name per polygon.

    A one-to-one assignment maximises the number of ZIP centroids whose ``county`` agrees with the
    polygon's name; the closeness of each county's nearest ZIP adds less than one vote per polygon,
    so it breaks ties and names a polygon that holds no ZIP centroid.
    """
    state_zips = _zip_table()
    state_zips = state_zips[(state_zips["state"] == state) & (state_zips["county"] != "")]
    names = sorted(state_zips["county"].unique())
    votes = (
        pd.crosstab(zips["unit_id"], zips["county"])
        .reindex(index=units["unit_id"], columns=names, fill_value=0)
        .to_numpy(dtype=float)
    )
    lat, lon = _latlon(units.geometry)
    distance = haversine_km(
        lat[:, None], lon[:, None], state_zips["lat"].to_numpy(), state_zips["lon"].to_numpy()
    )
    nearest = (
        pd.DataFrame(distance.T, index=state_zips["county"].to_numpy())
        .groupby(level=0)
        .min()
        .reindex(names)
        .to_numpy()
        .T
    )
    from scipy.optimize import linear_sum_assignment  # here: step kernels import this module

    rows, cols = linear_sum_assignment(votes + np.exp(-nearest / 10.0), maximize=True)
    assigned = dict(zip(rows, cols, strict=True))
    return [names[assigned[i]].removesuffix(" County") for i in range(len(units))]


def _load_georgia() -> _RealUnits:
    raw = gpd.read_file(_example_file("georgia", "G_utm.shp")).set_crs(GEORGIA_CRS)
    units = gpd.GeoDataFrame(
        {
            "unit_id": raw["AreaKey"].astype(str).str.zfill(5),
            "name": "",
            "population": raw["TotPop90"].astype(int),
            "pct_rural": raw["PctRural"].astype(float),
            "pct_bachelor": raw["PctBach"].astype(float),
            "pct_elderly": raw["PctEld"].astype(float),
            "pct_foreign_born": raw["PctFB"].astype(float),
            "pct_poverty": raw["PctPov"].astype(float),
            "pct_black": raw["PctBlack"].astype(float),
        },
        geometry=raw.geometry.values,
        crs=raw.crs,
    )
    states = pd.Series("GA", index=units.index)
    zips = _join_zips(units, states)
    units["name"] = _county_names(units, zips, "GA")
    units["zip_codes"] = _zip_code_counts(units, zips)
    education = units["pct_bachelor"].to_numpy()
    return _RealUnits(
        units=units,
        zips=zips,
        size=units["population"].to_numpy(dtype=float),
        affluence=(education / np.median(education)) ** 0.25,
    ).sorted()


def _load_north_carolina() -> _RealUnits:
    raw = gpd.read_file(_example_file("sids2", "sids2.shp")).set_crs(NORTH_CAROLINA_CRS)
    units = gpd.GeoDataFrame(
        {
            "unit_id": raw["FIPS"].astype(str).str.zfill(5),
            "name": raw["NAME"].astype(str),
            "births_1974": raw["BIR74"].astype(int),
            "births_1979": raw["BIR79"].astype(int),
            "nonwhite_births_1974": raw["NWBIR74"].astype(int),
            "nonwhite_births_1979": raw["NWBIR79"].astype(int),
            "pct_nonwhite_births_1979": (100 * raw["NWBIR79"] / raw["BIR79"]).round(2),
        },
        geometry=raw.geometry.values,
        crs=raw.crs,
    )
    zips = _join_zips(units, pd.Series("NC", index=units.index))
    units["zip_codes"] = _zip_code_counts(units, zips)
    births = units["births_1979"].to_numpy(dtype=float)
    # Births per km² stand in for urbanisation, the only affluence signal this file offers.
    density = births / (to_equal_area(units).area.to_numpy() / 1e6)
    return _RealUnits(
        units=units, zips=zips, size=births, affluence=(density / np.median(density)) ** 0.15
    ).sorted()


def _load_us_states() -> _RealUnits:
    raw = gpd.read_file(_example_file("us_income", "us48.shp")).set_crs(US_STATES_CRS)
    income = pd.read_csv(_example_file("us_income", "usjoin.csv"))
    income["STATE_FIPS"] = income["STATE_FIPS"].astype(str).str.zfill(2)
    units = gpd.GeoDataFrame(
        {
            "unit_id": raw["STATE_FIPS"].astype(str).str.zfill(2),
            "name": raw["STATE_NAME"].astype(str),
            "state_abbr": raw["STATE_ABBR"].astype(str),
            "sub_region": raw["SUB_REGION"].astype(str),
        },
        geometry=raw.geometry.values,
        crs=raw.crs,
    )
    by_fips = income.set_index("STATE_FIPS")
    missing = sorted(set(units["unit_id"]) - set(by_fips.index))
    if missing:
        raise DataError(f"usjoin.csv of libpysal's us_income example has no income for STATE_FIPS {missing}.")
    units["income_1999"] = by_fips.loc[units["unit_id"], "1999"].to_numpy(dtype=int)
    units["income_2009"] = by_fips.loc[units["unit_id"], "2009"].to_numpy(dtype=int)
    units["income_growth_1999_2009_pct"] = (100 * (units["income_2009"] / units["income_1999"] - 1)).round(2)
    zips = _join_zips(units, units["state_abbr"])
    units["zip_codes"] = _zip_code_counts(units, zips)
    income_2009 = units["income_2009"].to_numpy(dtype=float)
    return _RealUnits(
        units=units,
        zips=zips,
        size=units["zip_codes"].to_numpy(dtype=float),
        affluence=income_2009 / np.median(income_2009),
    ).sorted()


# --- synthetic people and companies -------------------------------------------------------------

# fmt: off
FIRST_NAMES = (
    "Avery", "Blake", "Carmen", "Dana", "Elena", "Farid", "Grace", "Hector", "Imani", "Jamal",
    "Keiko", "Lena", "Marcus", "Nadia", "Owen", "Priya", "Quinn", "Rosa", "Samuel", "Tessa", "Umar",
    "Vera", "Wesley", "Ximena", "Yusuf", "Zoe", "Andre", "Bianca", "Caleb", "Delia",
)
SURNAMES = (
    "Abbott", "Baker", "Castillo", "Dawson", "Ellis", "Foster", "Garcia", "Hughes", "Ingram",
    "Jensen", "Kim", "Lawson", "Morales", "Nguyen", "Okafor", "Patel", "Quintero", "Reyes",
    "Sullivan", "Turner", "Underwood", "Vaughn", "Whitaker", "Xu", "Young", "Zimmerman", "Bennett",
    "Coleman", "Dixon", "Fleming", "Griffin", "Harper", "Irwin", "Keller", "Lambert", "Mercer",
    "Norris", "Osborne", "Pruitt", "Ramsey",
)
TRADES = (
    "Supply", "Industrial", "Foods", "Logistics", "Medical", "Hardware", "Builders", "Electric",
    "Auto Parts", "Office Solutions", "Farm Equipment", "Printing", "Plumbing", "Dental",
    "Pharmacy", "Packaging", "Machine Works", "Textiles", "Lumber", "Marine", "Software",
    "Engineering", "Distribution", "Restaurant Supply", "Home Health", "Landscaping", "Signs",
    "Paper", "Tool", "Fabrication",
)
COMPANY_SUFFIXES = (
    "Inc.", "LLC", "Co.", "Group", "& Sons", "Partners", "Corp.", "Services",
)
# fmt: on
#: Draws of a company name before a taken one gets a branch number. The built-in markets at their
#: own sizes need at most 9 (seeds 0-99), so their names are those of drawing until one is free.
NAME_ATTEMPTS = 16
REP_SEGMENT_OPTIONS = ("SMB;Mid-Market", "Mid-Market;Enterprise", "SMB;Mid-Market;Enterprise")

COMMENT_TEMPLATES: dict[str, tuple[str, ...]] = {
    "workload": (
        "Too many accounts: {accounts} on my list against a capacity of {capacity}; prospects go uncalled.",
        "Workload is not sustainable this quarter; {prospects} prospects still wait for a first visit.",
        "I need help covering the territory; {customers} active customers leave no time for new business.",
    ),
    "travel": (
        "Too much time on the road: my accounts are {km:.0f} km from {home} on average.",
        "Travel eats my week; the territory stretches too far from {home}.",
        "Long drives between customers ({km:.0f} km on average); please consider a smaller area.",
    ),
    "market": (
        "Demand is soft in my area: {won_phrase} this quarter.",
        "Competitors are pricing aggressively; {lost_phrase} this quarter.",
        "Market potential looks thin here and sales lag the rest of the company.",
    ),
    "support": (
        "Quotes and orders take too long to come back from support.",
        "Need better marketing support and qualified leads for my prospects.",
        "Back-office support is slow; customers are chasing me for answers.",
    ),
    "positive": (
        "Good quarter: {customers} active customers and a manageable list.",
        "Territory feels balanced; travel and workload are fine.",
        "No major issues; the pipeline is healthy.",
    ),
}


def _draw_company_name(city: str, surnames: np.ndarray, rng: np.random.Generator) -> str:
    trade = TRADES[rng.integers(len(TRADES))]
    suffix = COMPANY_SUFFIXES[rng.integers(len(COMPANY_SUFFIXES))]
    surname, partner = rng.choice(surnames, size=2, replace=False)
    template = rng.integers(4)
    if template == 0:
        return f"{city} {trade} {suffix}"
    if template == 1:
        return f"{surname} {trade} {suffix}"
    if template == 2:
        return f"{surname} & {partner} {trade}"
    return f"{city} {trade}"


def _company_names(cities: np.ndarray, rng: np.random.Generator) -> list[str]:
    """Plausible, unique company names, most built from the real city of the account's ZIP code.

    A name already taken is drawn again, up to ``NAME_ATTEMPTS`` times, or only once when most
    draws so far found their name taken: the name parts are nearly used up (e.g. 300,000 accounts
    in Georgia) and more draws would cost time for nothing. A name still taken gets the next free
    branch number, ``Atlanta Supply Inc. #2``, so names never run out.
    """
    surnames = np.array(SURNAMES)  # the same draws as the tuple, without converting it every time
    used: set[str] = set()
    last_branch: dict[str, int] = {}
    names = []
    draws = taken = 0
    for city in cities:
        attempts = NAME_ATTEMPTS if 2 * taken <= draws else 1
        for _ in range(attempts):
            name = _draw_company_name(city, surnames, rng)
            draws += 1
            if name not in used:
                break
            taken += 1
        else:
            branch = last_branch.get(name, 1) + 1
            while f"{name} #{branch}" in used:
                branch += 1
            last_branch[name] = branch
            name = f"{name} #{branch}"
        used.add(name)
        names.append(name)
    return names


# --- places --------------------------------------------------------------------------------------


def _unit_places(real: _RealUnits, unit_id: str) -> pd.DataFrame:
    """The real places accounts of a unit may sit at: its standard ZIP codes, else any of its ZIPs."""
    places = real.zips[real.zips["unit_id"] == unit_id]
    standard = places[places["standard"]]
    return standard if len(standard) else places


def _points_inside(
    geometry: shapely.Geometry, crs: object, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` uniform random WGS84 points (lat, lon; 6 decimals) inside ``geometry``, given in ``crs``."""
    to_wgs84 = Transformer.from_crs(crs, 4326, always_xy=True)
    to_source = Transformer.from_crs(4326, crs, always_xy=True)
    min_x, min_y, max_x, max_y = geometry.bounds
    lats: list[float] = []
    lons: list[float] = []
    while len(lats) < count:
        x = rng.uniform(min_x, max_x, 4 * count)
        y = rng.uniform(min_y, max_y, 4 * count)
        lon, lat = (np.round(v, 6) for v in to_wgs84.transform(x, y))
        # Check the rounded point, the one written to the file.
        inside = shapely.contains_xy(geometry, *to_source.transform(lon, lat))
        lats.extend(lat[inside])
        lons.extend(lon[inside])
    return np.array(lats[:count]), np.array(lons[:count])


_PlaceArrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # lat, lon, zip_code, city


def _place_arrays(places: pd.DataFrame) -> _PlaceArrays:
    return tuple(places[column].to_numpy() for column in ("lat", "lon", "zip_code", "city"))


def _places_by_unit(real: _RealUnits) -> dict[str, _PlaceArrays]:
    """Every unit's places as :func:`_unit_places` picks them, grouped once (thousands of units)."""
    has_standard = real.zips.groupby("unit_id")["standard"].transform("any")
    chosen = real.zips[real.zips["standard"] | ~has_standard]
    return {unit_id: _place_arrays(group) for unit_id, group in chosen.groupby("unit_id", sort=False)}


def _sample_place_arrays(
    real: _RealUnits, unit: int, count: int, rng: np.random.Generator, places: _PlaceArrays | None
) -> _PlaceArrays:
    """``count`` places (lat, lon, zip_code, city) in one unit, given its places or ``None`` for none."""
    if places is not None and len(places[0]):
        pick = rng.integers(len(places[0]), size=count)
        return tuple(column[pick] for column in places)  # type: ignore[return-value]
    lat, lon = _points_inside(real.units.geometry.iat[unit], real.units.crs, count, rng)
    return lat, lon, np.full(count, ""), np.full(count, real.units["name"].iat[unit])


def _sample_places(real: _RealUnits, unit: int, count: int, rng: np.random.Generator) -> pd.DataFrame:
    """``count`` account places in one unit: real ZIP centroids, or random points if it has no ZIP."""
    places = _place_arrays(_unit_places(real, real.units["unit_id"].iat[unit]))
    lat, lon, zip_code, city = _sample_place_arrays(real, unit, count, rng, places)
    return pd.DataFrame({"unit": unit, "lat": lat, "lon": lon, "zip_code": zip_code, "city": city})


# --- reps and the current alignment ---------------------------------------------------------------


def _home_units(real: _RealUnits, count: int, rng: np.random.Generator) -> list[int]:
    """The units reps live in: the most populous unit of each cluster of a size-weighted k-means.

    Reps sit where the business is (a big metro area gets several) yet spread over the market;
    the heaviest cluster comes first, so R01 serves the largest market.
    """
    xy = shapely.get_coordinates(to_equal_area(real.units).representative_point().to_numpy())
    weight = real.size / real.size.sum()

    def squared_distances(centres: np.ndarray) -> np.ndarray:
        # dx² + dy², the value a sum over the coordinate axis gives, without its slow 2-wide reduction.
        return (xy[:, None, 0] - centres[None, :, 0]) ** 2 + (xy[:, None, 1] - centres[None, :, 1]) ** 2

    def nearest_centre(centres: np.ndarray) -> np.ndarray:
        return squared_distances(centres).argmin(axis=1)

    # k-means++ seeding, weighted by size, then Lloyd iterations. The nearest-centre distance is
    # updated with each new centre only (a minimum, so the same as recomputing it over all).
    centres = xy[[rng.choice(len(xy), p=weight)]]
    nearest = squared_distances(centres).min(axis=1)
    while len(centres) < count:
        gap = nearest * weight
        centres = np.vstack([centres, xy[rng.choice(len(xy), p=gap / gap.sum())]])
        nearest = np.minimum(nearest, squared_distances(centres[-1:])[:, 0])
    for _ in range(100):
        label = nearest_centre(centres)
        moved = np.array(
            [
                np.average(xy[label == c], axis=0, weights=weight[label == c])
                if (label == c).any()
                else centres[c]
                for c in range(count)
            ]
        )
        if np.allclose(moved, centres):
            break
        centres = moved
    label = nearest_centre(centres)
    mass = np.bincount(label, weights=weight, minlength=count)
    homes: list[int] = []
    for cluster in np.argsort(-mass, kind="stable"):
        free = np.ones(len(xy), dtype=bool)
        free[homes] = False
        # The rep lives in the cluster's most populous unit (any free unit if the cluster is empty).
        members = np.flatnonzero(free & (label == cluster))
        candidates = members if len(members) else np.flatnonzero(free)
        homes.append(int(candidates[np.argmax(real.size[candidates])]))
    return homes


def _make_reps(
    real: _RealUnits, count: int, accounts: int, rng: np.random.Generator
) -> tuple[pd.DataFrame, np.ndarray]:
    """Reps at real places of populous units, and each unit's current territory index."""
    units = real.units
    lat, lon = _latlon(units.geometry)
    homes = _home_units(real, count, rng)

    home_lat, home_lon, home_city = [], [], []
    for unit in homes:
        places = _unit_places(real, units["unit_id"].iat[unit])
        if len(places):
            # The rep lives in the unit's main city: the one with the most ZIP codes.
            by_city = places.groupby("city").size().reset_index(name="zips")
            main_city = by_city.sort_values(["zips", "city"], ascending=[False, True])["city"].iat[0]
            in_city = places[places["city"] == main_city]
            home = in_city.iloc[rng.integers(len(in_city))]
            home_lat.append(float(home["lat"]))
            home_lon.append(float(home["lon"]))
            home_city.append(str(main_city))
        else:
            point_lat, point_lon = _points_inside(units.geometry.iat[unit], units.crs, 1, rng)
            home_lat.append(float(point_lat[0]))
            home_lon.append(float(point_lon[0]))
            home_city.append(str(units["name"].iat[unit]))

    distance = haversine_km(lat[:, None], lon[:, None], np.array(home_lat), np.array(home_lon))
    territory = distance.argmin(axis=1)
    # A rep's home unit is in their territory, so no territory is empty.
    territory[homes] = np.arange(count)

    share = rng.lognormal(0.0, 0.15, count)
    capacity = np.maximum(1, np.round(accounts * rng.uniform(1.0, 1.1) * share / share.sum())).astype(int)
    segments = [REP_SEGMENT_OPTIONS[-1]] + [
        REP_SEGMENT_OPTIONS[i]
        for i in rng.choice(len(REP_SEGMENT_OPTIONS), size=count - 1, p=[0.3, 0.3, 0.4])
    ]
    picks = rng.choice(len(FIRST_NAMES) * len(SURNAMES), size=count, replace=False)
    names = [f"{FIRST_NAMES[i // len(SURNAMES)]} {SURNAMES[i % len(SURNAMES)]}" for i in picks]
    reps = pd.DataFrame(
        {
            "rep_id": [f"R{i + 1:02d}" for i in range(count)],
            "name": names,
            "home_lat": home_lat,
            "home_lon": home_lon,
            "home_city": home_city,
            "capacity": capacity,
            "segments": segments,
            "territory_id": [f"T{i + 1:02d}" for i in range(count)],
        }
    )
    return reps, territory


# --- accounts ------------------------------------------------------------------------------------


def _make_accounts(
    real: _RealUnits, territory: np.ndarray, reps: pd.DataFrame, count: int, rng: np.random.Generator
) -> pd.DataFrame:
    """Synthetic accounts at real places, density following the units' size (without ``status``)."""
    units = real.units
    weights = real.size**0.9
    per_unit = rng.multinomial(count, weights / weights.sum())
    by_unit = _places_by_unit(real)
    unit_ids = units["unit_id"].to_numpy()
    drawn = [
        _sample_place_arrays(real, unit, int(per_unit[unit]), rng, by_unit.get(unit_ids[unit]))
        for unit in map(int, np.flatnonzero(per_unit))
    ]
    unit = np.repeat(np.flatnonzero(per_unit), per_unit[per_unit > 0])
    lat, lon, zip_codes, cities = (np.concatenate([arrays[i] for arrays in drawn]) for i in range(4))

    # Spread accounts that share a ZIP around its centroid, unless the nudge leaves their unit.
    nudged_lat = np.round(lat + rng.normal(0.0, JITTER_KM / KM_PER_DEGREE, len(lat)), 6)
    nudged_lon = np.round(
        lon + rng.normal(0.0, JITTER_KM / KM_PER_DEGREE, len(lat)) / np.cos(np.radians(lat)), 6
    )
    x, y = Transformer.from_crs(4326, units.crs, always_xy=True).transform(nudged_lon, nudged_lat)
    inside = shapely.contains_xy(units.geometry.to_numpy()[unit], x, y)
    lat, lon = np.where(inside, nudged_lat, lat), np.where(inside, nudged_lon, lon)

    size_ratio = real.size[unit] / np.median(real.size)
    enterprise_share = np.clip(0.07 * size_ratio**0.15, 0.04, 0.11)
    draw = rng.random(len(unit))
    segment = np.where(draw < enterprise_share, 0, np.where(draw < enterprise_share + MID_MARKET_SHARE, 1, 2))
    potential = SEGMENT_MEDIAN_POTENTIAL[segment] * real.affluence[unit] * rng.lognormal(0.0, 0.5, len(unit))
    potential = np.maximum(500, np.round(potential / 100) * 100).astype(int)
    names = _company_names(cities, rng)

    accounts = pd.DataFrame(
        {
            "name": names,
            "lat": lat,
            "lon": lon,
            "zip_code": zip_codes,
            "city": cities,
            "segment": np.array(SEGMENTS)[segment],
            "potential": potential,
            "unit_id": units["unit_id"].to_numpy()[unit],
            "rep_id": reps["rep_id"].to_numpy()[territory[unit]],
        }
    )
    # CRM ids follow creation order, not geography.
    accounts = accounts.iloc[rng.permutation(len(accounts))].reset_index(drop=True)
    width = max(5, len(str(len(accounts))))  # A00001 ... A99999, then one digit more: A000001
    accounts.insert(0, "account_id", [f"A{i + 1:0{width}d}" for i in range(len(accounts))])
    return accounts


# --- sales ---------------------------------------------------------------------------------------


@dataclass
class _History:
    """The simulated customer life cycle, one row per account and one column per month."""

    active: np.ndarray  # bool: a customer in that month
    amount: np.ndarray  # sales in USD, 0 when nothing was bought
    won: np.ndarray  # month index a prospect became a customer, -1 if never
    lost: np.ndarray  # month index a customer churned, -1 if never


def _seasonality() -> np.ndarray:
    """Monthly factors with mean 1: a year-end peak, a spring trough and quarter-end pushes."""
    month = np.arange(12)
    factor = 1 + 0.10 * np.cos(2 * np.pi * (month - 10.5) / 12)
    factor[[2, 5, 8, 11]] *= 1.06
    return factor / factor.mean()


def _simulate_sales(accounts: pd.DataFrame, reps: pd.DataFrame, rng: np.random.Generator) -> _History:
    """Run the customer life cycle month by month and draw each purchase."""
    n, k = len(accounts), len(reps)
    rep = pd.Index(reps["rep_id"]).get_indexer(accounts["rep_id"])
    segment = pd.Index(SEGMENTS).get_indexer(accounts["segment"])
    load = np.bincount(rep, minlength=k) / reps["capacity"].to_numpy()
    skill = np.clip(rng.lognormal(0.0, 0.18, k), 0.7, 1.4)
    # An overloaded rep gives each account less attention; spare capacity helps, up to a point.
    attention = np.clip(1.15 - 0.35 * (load - 1), 0.6, 1.2)
    effect = (skill * attention)[rep]
    annual_growth = 0.03 + 0.06 * (skill - 1) + rng.normal(0.0, 0.02, k)
    months = np.arange(MONTHS)
    trend = (1 + annual_growth[:, None]) ** (months[None, :] / 12)
    wallet_share = np.clip(rng.beta(4, 6, n) * effect, 0.05, 0.9)

    initial = rng.random(n) < np.clip(SEGMENT_INITIAL_CUSTOMER[segment] * np.sqrt(effect), 0.05, 0.9)
    state = initial.astype(np.int8)  # 0 prospect, 1 customer, 2 lost
    won = np.full(n, -1)
    lost = np.full(n, -1)
    active = np.zeros((n, MONTHS), dtype=bool)
    for month in months:
        if month:
            draw = rng.random(n)
            converts = (state == 0) & (draw < 0.011 * effect)
            churns = (state == 1) & (draw < 0.005 / effect)
            state[converts], won[converts] = 1, month
            state[churns], lost[churns] = 2, month
        active[:, month] = state == 1

    buy_probability = np.repeat(SEGMENT_MONTHLY_BUY[segment][:, None], MONTHS, axis=1)
    # The data open with every existing customer's order, so a first purchase after January is a win.
    buy_probability[:, 0] = 1.0
    buys = active & (rng.random((n, MONTHS)) < buy_probability)
    # New customers start small and reach their full wallet share over four months.
    ramp = np.where(won[:, None] >= 0, np.clip(0.4 + 0.2 * (months[None, :] - won[:, None]), 0.4, 1.0), 1.0)
    monthly_value = accounts["potential"].to_numpy() / 12 * wallet_share
    amount = (
        monthly_value[:, None]
        / buy_probability
        * _seasonality()[months % 12][None, :]
        * trend[rep]
        * ramp
        * rng.lognormal(0.0, 0.25, (n, MONTHS))
    )
    amount = np.where(buys, np.round(amount, 2), 0.0)
    return _History(active=active, amount=amount, won=won, lost=lost)


def _month_dates() -> list[str]:
    return [(FIRST_MONTH + pd.DateOffset(months=int(m))).strftime("%Y-%m-%d") for m in range(MONTHS)]


def _sales_table(accounts: pd.DataFrame, history: _History) -> pd.DataFrame:
    """One row per purchase, by month then account row.

    Dates and account ids are categoricals: at 300,000 accounts the table has about 3.7 million
    rows, whose dates and ids as Python strings would take about 500 MB; the CSV is the same.
    """
    # Month-major order of the transposed array is the (month, account) order of the rows.
    month, account = np.nonzero(history.amount.T > 0)
    return pd.DataFrame(
        {
            "date": pd.Categorical.from_codes(month, categories=_month_dates()),
            "account_id": pd.Categorical.from_codes(account, categories=accounts["account_id"]),
            "amount": history.amount[account, month],
        }
    )


# --- feedback ------------------------------------------------------------------------------------


def _count_phrase(count: int, noun: str) -> str:
    if count == 0:
        return f"no {noun}s"
    return f"one {noun}" if count == 1 else f"{count} {noun}s"


def _score(mean: float, rng: np.random.Generator, spread: float = 0.55) -> int:
    return int(np.clip(np.round(mean + rng.normal(0.0, spread)), 1, 5))


def _make_feedback(
    accounts: pd.DataFrame, reps: pd.DataFrame, history: _History, rng: np.random.Generator
) -> pd.DataFrame:
    """Quarterly rep surveys whose scores respond to workload, travel, market and support."""
    rep = pd.Index(reps["rep_id"]).get_indexer(accounts["rep_id"])
    members = [np.flatnonzero(rep == r) for r in range(len(reps))]
    capacity = reps["capacity"].to_numpy()
    potential = accounts["potential"].to_numpy(dtype=float)
    lat, lon = accounts["lat"].to_numpy(), accounts["lon"].to_numpy()
    travel_km = np.array(
        [
            haversine_km(reps["home_lat"].iat[r], reps["home_lon"].iat[r], lat[m], lon[m]).mean()
            if len(m)
            else np.nan
            for r, m in enumerate(members)
        ]
    )
    typical_km = np.nanmedian(travel_km)
    travel_km = np.where(np.isnan(travel_km), typical_km, travel_km)
    potential_ratio = np.array([potential[m].mean() / potential.mean() if len(m) else 1.0 for m in members])
    quarterly = history.amount.reshape(len(accounts), MONTHS // 3, 3).sum(axis=2)
    rep_sales = np.array([quarterly[m].sum(axis=0) for m in members]) + 1.0
    company_sales = quarterly.sum(axis=0) + 1.0
    # Effort: an active customer counts 1, a prospect 0.6; load 1 means the start-of-period norm.
    start_share = history.active[:, 2].mean()
    effort_per_account = start_share + 0.6 * (1 - start_share)

    rows = []
    for quarter in range(MONTHS // 3):
        first, last = 3 * quarter, 3 * quarter + 2
        stamp = FIRST_MONTH + pd.DateOffset(months=last)
        date = f"{stamp.year}-{stamp.month:02d}-{calendar.monthrange(stamp.year, stamp.month)[1]:02d}"
        for r, m in enumerate(members):
            customers = int(history.active[m, last].sum())
            prospects = len(m) - customers
            load = (customers + 0.6 * prospects) / (effort_per_account * capacity[r])
            won = int(((history.won[m] >= first) & (history.won[m] <= last)).sum())
            lost = int(((history.lost[m] >= first) & (history.lost[m] <= last)).sum())
            growth = np.log(rep_sales[r, quarter] / rep_sales[r, 0]) - np.log(
                company_sales[quarter] / company_sales[0]
            )
            scores = {
                "workload": _score(3.3 - 2.5 * (load - 1), rng),
                "travel": _score(3.3 - 1.6 * np.log(travel_km[r] / typical_km), rng),
                "market": _score(3.2 + 4.0 * growth + 0.8 * np.log(potential_ratio[r]), rng),
                "support": _score(3.0 + 0.7 * (quarter >= SUPPORT_PROGRAMME_QUARTER), rng, spread=0.7),
            }
            theme = min(scores, key=scores.__getitem__)
            theme = theme if scores[theme] <= 2 else "positive"
            templates = COMMENT_TEMPLATES[theme]
            comment = templates[rng.integers(len(templates))].format(
                accounts=len(m),
                capacity=capacity[r],
                prospects=prospects,
                customers=customers,
                km=travel_km[r],
                home=reps["home_city"].iat[r],
                won_phrase=_count_phrase(won, "new customer"),
                lost_phrase="we lost " + _count_phrase(lost, "customer"),
            )
            rows.append(
                {"date": date, "rep_id": reps["rep_id"].iat[r]}
                | {f"score_{name}": value for name, value in scores.items()}
                | {"comment": comment}
            )
    return pd.DataFrame(rows)


# --- the markets ---------------------------------------------------------------------------------

_ZIPCODES_NOTE = (
    "the real US ZIP codes of the zipcodes package (USPS data with centroids), shipped inside that package"
)
_RECIPES: dict[str, _Recipe] = {
    "georgia": _Recipe(
        _load_georgia,
        accounts=2400,
        size_note="population",
        affluence_note="the fourth root of the county's share of adults with a bachelor's degree",
    ),
    "north_carolina": _Recipe(
        _load_north_carolina,
        accounts=2000,
        size_note="births 1979-84",
        affluence_note="the county's births per km² (an urbanisation proxy) to the power 0.15",
    ),
    "us_states": _Recipe(
        _load_us_states,
        accounts=5000,
        size_note="the number of ZIP codes",
        affluence_note="the state's 2009 per-capita income",
    ),
}


def _synthetic_paragraph(recipe: _Recipe, label: str, reps: int, accounts: int | None = None) -> str:
    return (
        f"Synthetic, generated by a seeded, reproducible model in territory_lib.datasets: "
        f"{accounts or recipe.accounts:,} accounts, "
        f"their number per {label} proportional to {recipe.size_note}^0.9, "
        f"each at a real ZIP-code centroid inside its {label} (jittered by about {JITTER_KM:g} km), "
        "company names "
        "built from the ZIP's city, a segment mix with more Enterprise accounts in large units, and "
        f"lognormal annual potential by segment scaled by {recipe.affluence_note}; {reps} reps living at ZIP "
        "centroids of populous, spread-out places, with capacities summing to 1.0-1.1 times the "
        f"accounts; the current alignment gives each {label} to the nearest rep home (deliberately "
        "unbalanced); 36 months of sales (2023-01 to 2025-12) from a customer life cycle (initial "
        "customers, prospects converting, customers churning, rep skill and overload effects, "
        "seasonality, territory trends); and quarterly rep surveys whose scores follow workload "
        "against capacity, travel distance, territory sales growth and a support programme that "
        "starts in 2024-Q3."
    )


BUILTIN_MARKETS: dict[str, BuiltinMarket] = {
    "georgia": BuiltinMarket(
        name="georgia",
        title="Georgia, USA",
        real_sources=(
            "Real: the 159 county polygons of Georgia with their 1990 US Census figures (total population; "
            "per cent rural, with a bachelor's degree, aged 65 and over, foreign-born, below the poverty "
            "line, Black) from libpysal's example dataset 'georgia' (G_utm.shp, used in Fotheringham, "
            "Brunsdon & Charlton, Geographically Weighted Regression, 2002), shipped inside the libpysal "
            "package. The file has no CRS; it is read as NAD27 / UTM zone 16N (EPSG:26716), checked against "
            "its own latitude and longitude columns. County names, the zip_codes counts and every account "
            f"and rep-home location come from {_ZIPCODES_NOTE}: each polygon is named after the county most "
            "of its ZIP centroids carry."
        ),
        synthetic_parts=_synthetic_paragraph(_RECIPES["georgia"], "county", 8),
        default_territories=8,
        unit_label="county",
    ),
    "north_carolina": BuiltinMarket(
        name="north_carolina",
        title="North Carolina, USA",
        real_sources=(
            "Real: the 100 county polygons of North Carolina with their names, FIPS codes and live births "
            "(all and non-white) for the periods 1974-78 (births_1974) and 1979-84 (births_1979), from "
            "libpysal's example dataset 'sids2' (Cressie, Statistics for Spatial Data, 1993), shipped inside "
            "the libpysal package and read as NAD27 longitude/latitude (EPSG:4267). The zip_codes counts "
            f"and every account and rep-home location come from {_ZIPCODES_NOTE}."
        ),
        synthetic_parts=_synthetic_paragraph(_RECIPES["north_carolina"], "county", 6),
        default_territories=6,
        unit_label="county",
    ),
    "us_states": BuiltinMarket(
        name="us_states",
        title="Contiguous United States",
        real_sources=(
            "Real: the 48 contiguous US states (polygons, FIPS codes, names, abbreviations, census "
            "sub-regions) from libpysal's example dataset 'us_income' (us48.shp, read as NAD83 "
            "longitude/latitude, EPSG:4269) and their per-capita personal income in current dollars for "
            "1999 and 2009 from the same dataset's usjoin.csv (US Bureau of Economic Analysis), shipped "
            "inside the libpysal package. The zip_codes counts (active standard ZIP codes per state, the "
            f"market's size measure) and every account and rep-home location come from {_ZIPCODES_NOTE}."
        ),
        # Eight territories: New York and the New England states it alone connects to the rest hold
        # about 1.3 of a territory's potential at ten, more than any contiguous plan can balance.
        synthetic_parts=_synthetic_paragraph(_RECIPES["us_states"], "state", 8),
        default_territories=8,
        unit_label="state",
    ),
}


# --- writing -------------------------------------------------------------------------------------


@contextlib.contextmanager
def _fixed_gpkg_timestamp() -> Iterator[None]:
    """Stamp GeoPackages with the end of the synthetic period instead of now, so runs are byte-identical.

    GDAL reads the stamp from a process-wide config option, which is restored afterwards.
    """
    previous = pyogrio.get_gdal_config_option("OGR_CURRENT_DATE")
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": "2025-12-31T00:00:00.000Z"})
    try:
        yield
    finally:
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": previous})


def _check_out_dir(out_dir: Path) -> None:
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise ConfigError(f"{out_dir} is a file; give prepare_builtin the path of a folder.")
    ours = {*TABLE_FILES.values(), PROVENANCE_FILE, GENERATED_FILE}
    foreign = sorted(path.name for path in out_dir.iterdir() if path.name not in ours)
    if foreign:
        raise ConfigError(
            f"{out_dir} holds files that are not part of a built-in dataset ({', '.join(foreign[:5])}); "
            "prepare_builtin replaces the whole folder, so give it an empty or dataset-only folder."
        )


def _write_dataset(
    out_dir: Path, units: gpd.GeoDataFrame, tables: dict[str, pd.DataFrame], provenance: str
) -> dict[str, Path]:
    """Write every file into a staging folder beside ``out_dir``, then swap it in by renaming."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    try:
        staging.chmod(0o755)
        with _fixed_gpkg_timestamp():
            units.to_file(staging / TABLE_FILES["units"], layer=UNITS_LAYER, driver="GPKG", engine="pyogrio")
        for table, frame in tables.items():
            frame.to_csv(staging / TABLE_FILES[table], index=False, lineterminator="\n")
        (staging / PROVENANCE_FILE).write_text(provenance, encoding="utf-8")
        written = {path.name: _sha256(path) for path in sorted(staging.iterdir())}
        (staging / GENERATED_FILE).write_text(json.dumps({"files": written}, indent=2), encoding="utf-8")
        if out_dir.exists():
            _check_replaceable(out_dir, written)
            retired = staging.with_suffix(".old")
            out_dir.rename(retired)
            staging.rename(out_dir)
            shutil.rmtree(retired)
        else:
            staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {table: out_dir / file for table, file in TABLE_FILES.items()}


def _check_replaceable(out_dir: Path, new: dict[str, str] | None) -> None:
    """Refuse to replace a file that generation did not write, or that was changed since.

    A file may go when its content is the one ``generated.json`` recorded when it was written.
    A dataset written before that record existed has none: its files may go only when they are
    identical to the ``new`` ones about to replace them (skipped while ``new`` is not known yet).
    """
    try:
        recorded = json.loads((out_dir / GENERATED_FILE).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        recorded = None
    reference = recorded if isinstance(recorded, dict) else new
    if reference is None or not out_dir.is_dir():
        return
    for path in sorted(out_dir.iterdir()):
        if path.name == GENERATED_FILE:
            continue
        digest = _sha256(path) if path.is_file() and not path.is_symlink() else None
        if digest is None or digest != reference.get(path.name):
            raise DataError(
                f"{path} was not written by the built-in data generator, or was changed since "
                f"(its content is not the one recorded in {out_dir / GENERATED_FILE}), so it is "
                f"not replaced. Move it out of {out_dir} (to use your own data, name it in a "
                "market's params without 'builtin:') or delete it, then prepare the data again."
            )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _provenance(
    market: BuiltinMarket,
    seed: int,
    units: gpd.GeoDataFrame,
    tables: dict[str, pd.DataFrame],
    written_by: str,
) -> str:
    rows = "\n".join(
        f"| {TABLE_FILES[table]} | {len(frame):,} |" for table, frame in {"units": units, **tables}.items()
    )
    return (
        f"# {market.title}: where the data come from\n\n"
        f"{written_by} with seed {seed} (libpysal {version('libpysal')}, zipcodes {version('zipcodes')}). "
        "Units are "
        f"{market.unit_label} polygons in {units.crs.to_string()} (layer `{UNITS_LAYER}` of "
        f"{TABLE_FILES['units']}); account and rep coordinates are WGS84 latitude/longitude.\n\n"
        f"## Real data\n\n{market.real_sources}\n\n"
        f"## Synthetic data\n\n{market.synthetic_parts}\n\n"
        f"## Files\n\n| file | rows |\n| --- | ---: |\n{rows}\n"
    )


def prepare_builtin(
    name: str,
    out_dir: Path,
    *,
    seed: int = 7,
    accounts: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Path]:
    """Write a built-in market's data files: real units, synthetic accounts, reps, sales and feedback.

    The folder is written whole or not at all: files go to a staging folder beside ``out_dir`` that
    is renamed into place at the end, so an interrupted run leaves the previous dataset (or none).

    Parameters
    ----------
    name
        A key of :data:`BUILTIN_MARKETS` (``georgia``, ``north_carolina``, ``us_states``).
    out_dir
        Folder to create or replace. It may hold only a previous built-in dataset, unchanged
        since it was written (``generated.json`` records each file's hash): a file generation did
        not write is never replaced.
    seed
        Seed of the synthetic generator; the same seed gives byte-identical files.
    accounts
        Number of synthetic accounts; ``None``: the market's own (2,000-5,000). Larger numbers
        make national-scale test data on the same real map: 300,000 accounts give about 3.7
        million sales rows (a 100 MB ``sales.csv``) in about 30 s and 1 GB of memory.
    progress
        Called with a short message before each stage.

    Returns
    -------
    dict[str, Path]
        The written file of each table: ``units`` (GeoPackage, layer ``units``), ``accounts``,
        ``reps``, ``sales``, ``feedback`` (CSV). ``provenance.md`` and ``generated.json`` sit
        beside them.

    Raises
    ------
    ConfigError
        For an unknown ``name`` (the message lists the known ones), a negative or non-integer
        ``seed``, ``accounts`` below 1, or an ``out_dir`` that is a file or holds other files.
    DataError
        When ``out_dir`` holds a dataset file that generation did not write or that was changed.

    Examples
    --------
    >>> paths = prepare_builtin("georgia", Path("data/georgia"), seed=7)  # doctest: +SKIP
    >>> sorted(paths)  # doctest: +SKIP
    ['accounts', 'feedback', 'reps', 'sales', 'units']
    """
    if name not in BUILTIN_MARKETS:
        raise ConfigError(
            f"unknown built-in market {name!r}; the built-in markets are {', '.join(BUILTIN_MARKETS)}."
        )
    _check_seed(seed)
    _check_accounts(accounts, allow_none=True)
    out_dir = Path(out_dir)
    _check_out_dir(out_dir)
    _check_replaceable(out_dir, None)
    market, recipe = BUILTIN_MARKETS[name], _RECIPES[name]
    count = recipe.accounts if accounts is None else int(accounts)
    if count != recipe.accounts:
        market = replace(
            market,
            synthetic_parts=_synthetic_paragraph(
                recipe, market.unit_label, market.default_territories, count
            ),
        )
    say = progress or (lambda message: None)
    say(f"{name}: reading the real {market.unit_label} data")
    return _generate(
        recipe.loader(),
        market,
        count,
        int(seed),
        out_dir,
        say,
        written_by=f"Built-in market `{name}`, written by `territory_lib.datasets.prepare_builtin`",
    )


def prepare_market(
    units: gpd.GeoDataFrame,
    out_dir: Path,
    *,
    name: str,
    title: str,
    territories: int,
    accounts: int,
    size: str | np.ndarray | pd.Series,
    affluence: str | np.ndarray | pd.Series | None = None,
    unit_label: str = "unit",
    real_sources: str = "",
    size_note: str = "the units' size measure",
    affluence_note: str = "the units' affluence multiplier",
    seed: int = 7,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Path]:
    """Write a market's data files on any real unit map: the same synthetic generator as the built-ins.

    Accounts sit at the real ZIP-code centroids (``zipcodes`` package) that lie inside their unit,
    or at random points inside a unit that holds none; their number per unit follows ``size``,
    their potential is scaled by ``affluence``. Reps, the current alignment, sales and feedback are
    drawn exactly as for :func:`prepare_builtin`; the folder is written whole or not at all, with
    the same ``provenance.md`` and ``generated.json``.

    Parameters
    ----------
    units
        Polygons with a CRS and a unique ``unit_id`` column; ``name`` is used when present (else
        the id). Other columns are kept; ``zip_codes`` (active standard ZIP codes inside each unit)
        and ``territory_id`` (the generated current alignment) are added or replaced.
    out_dir
        Folder to create or replace, as for :func:`prepare_builtin`.
    name
        Short market name: it appears in progress messages and keeps the random streams of
        markets apart under the same seed.
    title
        Human title for ``provenance.md``.
    territories
        Number of reps (one territory each) of the current alignment, at most the number of units.
    accounts
        Number of synthetic accounts.
    size
        What drives account density (accounts per unit follow ``size**0.9``): the name of a
        numeric column of ``units``, ``"zip_codes"`` (the ZIP count the generator computes), or
        one non-negative number per unit, in the order of ``units``. Its sum must be positive.
    affluence
        Multiplier of account potential (1 is typical): a column name, one positive number per
        unit, or ``None`` for 1 everywhere.
    unit_label
        What one unit is (``county``, ``ZIP area``), for the provenance text.
    real_sources
        Where the units and their figures come from, for the provenance text.
    size_note, affluence_note
        What ``size`` and ``affluence`` are, for the provenance text.
    seed
        Seed of the generator; the same inputs and seed give byte-identical files.
    progress
        Called with a short message before each stage.

    Returns
    -------
    dict[str, Path]
        The written file of each table, as :func:`prepare_builtin` returns them.

    Raises
    ------
    ConfigError
        For units without a CRS, polygons or a unique non-empty ``unit_id``; a ``size`` or
        ``affluence`` of the wrong length, negative, not finite or naming no numeric column;
        ``territories`` outside 1 .. the number of units; a bad ``seed`` or ``accounts``; an
        ``out_dir`` that is a file or holds other files.
    DataError
        When ``out_dir`` holds a dataset file that generation did not write or that was changed.

    Examples
    --------
    >>> paths = prepare_market(counties, Path("data/counties"), name="counties",  # doctest: +SKIP
    ...     title="US counties", territories=60, accounts=50_000, size="zip_codes")
    """
    _check_seed(seed)
    _check_accounts(accounts, allow_none=False)
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"name must be a non-empty string, got {name!r}.")
    frame = _custom_units(units)
    if isinstance(territories, bool) or not isinstance(territories, int | np.integer):
        raise ConfigError(f"territories must be an integer, got {territories!r}.")
    if not 1 <= territories <= len(frame):
        raise ConfigError(f"territories must be between 1 and the {len(frame)} units, got {territories}.")
    out_dir = Path(out_dir)
    _check_out_dir(out_dir)
    _check_replaceable(out_dir, None)
    say = progress or (lambda message: None)
    say(f"{name}: finding the real ZIP codes inside {len(frame):,} units")
    zips = _join_zips(frame, None)
    frame["zip_codes"] = _zip_code_counts(frame, zips)
    size_values = _per_unit(frame, size, "size", positive=False)
    if size_values.sum() <= 0:
        raise ConfigError("size sums to 0: no unit could get an account; give some units a positive size.")
    affluence_values = (
        np.ones(len(frame)) if affluence is None else _per_unit(frame, affluence, "affluence", positive=True)
    )
    real = _RealUnits(units=frame, zips=zips, size=size_values, affluence=affluence_values).sorted()
    recipe = _Recipe(lambda: real, accounts=int(accounts), size_note=size_note, affluence_note=affluence_note)
    zip_sentence = f"The zip_codes counts and every account and rep-home location come from {_ZIPCODES_NOTE}."
    market = BuiltinMarket(
        name=name,
        title=title,
        real_sources=f"{real_sources} {zip_sentence}" if real_sources else f"Real: {zip_sentence}",
        synthetic_parts=_synthetic_paragraph(recipe, unit_label, territories),
        default_territories=int(territories),
        unit_label=unit_label,
    )
    return _generate(
        real,
        market,
        int(accounts),
        int(seed),
        out_dir,
        say,
        written_by=f"Market `{name}`, written by `territory_lib.datasets.prepare_market`",
    )


def _check_seed(seed: object) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}.")


def _check_accounts(accounts: object, allow_none: bool) -> None:
    if accounts is None and allow_none:
        return
    if isinstance(accounts, bool) or not isinstance(accounts, int | np.integer) or accounts < 1:
        hint = " (or None for the market's own)" if allow_none else ""
        raise ConfigError(f"accounts must be a positive integer{hint}, got {accounts!r}.")


def _custom_units(units: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Check a caller's unit map and return a copy with string ``unit_id`` and ``name``."""
    if not isinstance(units, gpd.GeoDataFrame) or units.crs is None:
        raise ConfigError("units must be a GeoDataFrame with a CRS (set it with units.set_crs(...)).")
    if "unit_id" not in units:
        raise ConfigError(
            f"units has no 'unit_id' column (columns: {', '.join(map(str, units.columns))}); "
            "rename the id column to unit_id."
        )
    frame = units.reset_index(drop=True).copy()
    frame["unit_id"] = frame["unit_id"].astype(str)
    bad = frame["unit_id"].duplicated() | (frame["unit_id"].str.strip() == "")
    if bad.any():
        raise ConfigError(
            f"units: unit_id must be unique and non-empty; row {int(np.flatnonzero(bad)[0])} "
            f"({frame['unit_id'][bad].iloc[0]!r}) repeats an id or is empty."
        )
    polygonal = frame.geometry.geom_type.isin(["Polygon", "MultiPolygon"]) & ~frame.geometry.is_empty
    if not polygonal.all():
        row = int(np.flatnonzero(~polygonal.to_numpy())[0])
        raise ConfigError(f"units: unit {frame['unit_id'].iat[row]!r} (row {row}) is not a polygon.")
    frame["name"] = frame["name"].astype(str) if "name" in frame else frame["unit_id"]
    first = ["unit_id", "name"]
    rest = [column for column in frame.columns if column not in {*first, "territory_id", "geometry"}]
    return gpd.GeoDataFrame(frame[[*first, *rest]], geometry=frame.geometry.values, crs=frame.crs)


def _per_unit(
    units: gpd.GeoDataFrame, values: str | np.ndarray | pd.Series, what: str, positive: bool
) -> np.ndarray:
    """One finite number per unit from a column name or a sequence in the units' order."""
    if isinstance(values, str):
        if values not in units or not pd.api.types.is_numeric_dtype(units[values]):
            raise ConfigError(f"{what}={values!r} names no numeric column of units.")
        values = units[values]
    array = np.asarray(values, dtype=float)
    if array.shape != (len(units),):
        raise ConfigError(f"{what} has {array.size} values for {len(units)} units; give one per unit.")
    bad = ~np.isfinite(array) | (array <= 0 if positive else array < 0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        sign = "positive" if positive else "non-negative"
        raise ConfigError(
            f"{what} must be {sign} and finite; unit {units['unit_id'].iat[row]!r} has {array[row]}."
        )
    return array


def _generate(
    real: _RealUnits,
    market: BuiltinMarket,
    count: int,
    seed: int,
    out_dir: Path,
    say: Callable[[str], None],
    written_by: str,
) -> dict[str, Path]:
    """Draw reps, accounts, sales and feedback on ``real`` units and write the dataset."""
    name = market.name
    # One independent stream per stage; the market name keeps markets apart under the same seed.
    streams = np.random.SeedSequence([seed, zlib.crc32(name.encode())]).spawn(4)
    rep_rng, account_rng, sales_rng, feedback_rng = (np.random.default_rng(s) for s in streams)

    say(f"{name}: placing {market.default_territories} reps and the current alignment")
    reps, territory = _make_reps(real, market.default_territories, count, rep_rng)
    units = real.units.copy()
    units["territory_id"] = reps["territory_id"].to_numpy()[territory]
    units = units[[column for column in units.columns if column != "geometry"] + ["geometry"]]
    say(f"{name}: generating {count:,} accounts")
    account_table = _make_accounts(real, territory, reps, count, account_rng)
    say(f"{name}: simulating {MONTHS} months of sales")
    history = _simulate_sales(account_table, reps, sales_rng)
    account_table.insert(
        account_table.columns.get_loc("segment") + 1,
        "status",
        np.where(history.active[:, -1], "customer", "prospect"),
    )
    tables = {
        "accounts": account_table,
        "reps": reps,
        "sales": _sales_table(account_table, history),
        "feedback": _make_feedback(account_table, reps, history, feedback_rng),
    }
    say(f"{name}: writing {out_dir}")
    return _write_dataset(out_dir, units, tables, _provenance(market, seed, units, tables, written_by))
