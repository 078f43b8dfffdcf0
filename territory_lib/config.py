"""Market params: a YAML file per market, loaded safely into a validated, typed ``MarketConfig``.

Unknown keys are errors (papermill would silently ignore a misspelt parameter), and every message
names the file and the key to fix.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from territory_lib.errors import ConfigError
from territory_lib.paths import builtin_dir, params_dir

SLUG_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
TABLES = ("units", "accounts", "reps", "sales", "feedback")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataFiles(_Strict):
    """Paths of the market's data files; relative paths are relative to the params YAML."""

    units: Path
    accounts: Path
    reps: Path
    sales: Path
    feedback: Path | None = None


class ColumnMaps(_Strict):
    """Per table, ``canonical name: column in your file`` for files whose headers differ."""

    units: dict[str, str] = Field(default_factory=dict)
    accounts: dict[str, str] = Field(default_factory=dict)
    reps: dict[str, str] = Field(default_factory=dict)
    sales: dict[str, str] = Field(default_factory=dict)
    feedback: dict[str, str] = Field(default_factory=dict)


class BalanceSpec(_Strict):
    """One measure the territories must share evenly, within ``tolerance`` of the mean."""

    measure: str
    tolerance: Annotated[float, Field(gt=0, lt=1)] = 0.05


class DesignSettings(_Strict):
    """How step 2 draws territories and step 5 re-optimises them."""

    balance: list[BalanceSpec] = Field(
        default_factory=lambda: [BalanceSpec(measure="potential", tolerance=0.05)], min_length=1
    )
    anchor_at_reps: bool = True
    max_disruption: Annotated[float, Field(gt=0, le=1)] = 0.15
    effort_tolerance: Annotated[float, Field(gt=0, lt=1)] = 0.10
    capacity_targets: bool = True
    seed: int = 42
    # Search effort of steps 2 and 5 in work units (candidate moves scored; step 2's anchored and
    # free attempts share it); None: the engine's default for the map's size. Not seconds, so the
    # same data and params give the same plan on any machine.
    work_budget: Annotated[int, Field(gt=0)] | None = None


class ResourceSettings(_Strict):
    """Step 3: how field effort is estimated from accounts."""

    visits_per_year: dict[str, Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: {"Enterprise": 12.0, "Mid-Market": 6.0, "SMB": 3.0}
    )
    default_visits_per_year: Annotated[float, Field(ge=0)] = 4.0
    over_capacity: Annotated[float, Field(gt=0)] = 1.10
    under_capacity: Annotated[float, Field(gt=0)] = 0.80
    # The route model (territory_lib.routes): visits chained into day tours from the rep's home.
    working_days: Annotated[int, Field(ge=1, le=366)] = 220  # field days a year, after leave and meetings
    hours_per_day: Annotated[float, Field(gt=0, le=16)] = 9.0  # driving and visits, per working day
    visits_per_day: Annotated[int, Field(ge=1, le=20)] = 8  # most visits a rep makes in a day
    visit_minutes: Annotated[float, Field(gt=0, le=480)] = 45.0  # time at each account
    road_speed_kmh: Annotated[float, Field(gt=0, le=130)] = 65.0  # average speed on the road
    detour_factor: Annotated[float, Field(ge=1, le=3)] = 1.3  # road km per great-circle km
    max_daily_drive_km: Annotated[float, Field(gt=0, le=1500)] = 450.0  # most road km in a day
    # Rep matching: how much a territory's accounts/capacity mismatch weighs against distance
    # (0: distance alone; 1: 100 % mismatch weighs as much as the mean home-to-territory distance).
    capacity_weight: Annotated[float, Field(ge=0)] = 1.0


class MonitorSettings(_Strict):
    """Step 4: how many territories get a chart of their own (the largest by sales), and how many
    backtest origins the market total and each territory get (0: territories are not backtested).

    The market total is always charted and a table lists every territory, so a market of hundreds
    of territories keeps a readable report of bounded size.
    """

    chart_territories: Annotated[int, Field(ge=0, le=30)] = 12
    # Rolling-origin backtest: origins for the market total, and (cheaper) for each territory.
    backtest_origins: Annotated[int, Field(ge=1, le=36)] = 12
    territory_backtest_origins: Annotated[int, Field(ge=0, le=36)] = 3


class FeedbackSettings(_Strict):
    """Step 5: the comment themes and when a survey score is flagged.

    ``themes``, when given, replaces the shipped themes: ``name: [keywords]`` (weight 1 each) or
    ``name: {keyword: weight}``, keywords in any language (English ones match word starts, so
    ``driv`` matches "driving"; Japanese ones match anywhere in a comment). A comment matching none is
    ``other``.
    """

    themes: dict[str, list[str] | dict[str, Annotated[float, Field(gt=0)]]] | None = None
    # A rep's mean score on a question is flagged only with at least this many answers.
    min_responses: Annotated[int, Field(ge=2)] = 5
    # Quarters of answers (the latest) behind each rep's mean score and its interval.
    survey_quarters: Annotated[int, Field(ge=1, le=40)] = 8
    # Confidence level of the interval around each mean score.
    confidence: Annotated[float, Field(gt=0.5, lt=1)] = 0.90

    @field_validator("themes")
    @classmethod
    def _themes(cls, value: dict[str, list[str] | dict[str, float]] | None) -> object:
        if value is None:
            return value
        if not value:
            raise ValueError("needs at least one theme, or leave 'themes' out for the shipped ones")
        for name, keywords in value.items():
            if name == "other":
                raise ValueError(
                    "'other' is the theme of comments that match none; name your themes otherwise"
                )
            if not keywords or any(not str(word).strip() for word in keywords):
                raise ValueError(f"theme {name!r} needs at least one keyword, none of them blank")
        return value


class AnalysisSettings(_Strict):
    """Step 1: the level of its statistical claims and the seed of its random draws.

    ``significance`` is the false-discovery rate of hot and cold spots and white space, and the
    family-wise level of the potential model's attributes. ``permutations`` of the hot-spot test:
    None takes enough for the smallest p-value to pass the corrected level, up to
    ``max_permutations``.
    """

    significance: Annotated[float, Field(gt=0, le=0.2)] = 0.05
    permutations: Annotated[int, Field(ge=99, le=999_999)] | None = None
    max_permutations: Annotated[int, Field(ge=99, le=999_999)] = 99_999
    seed: int = 42


class GeometrySettings(_Strict):
    """How unit polygons are repaired: gaps and overlaps between neighbours up to ``snap`` are closed."""

    snap: Annotated[float, Field(ge=0, le=10_000)] | None = None  # metres; None: 0.2 % of a unit's size


class ScenarioSpec(_Strict):
    """A named variant of the plan that step 2 compares with it (params ``scenarios``).

    Unset fields take the plan's: ``territories`` from the top level, ``balance`` from ``design``.
    """

    name: Annotated[str, Field(min_length=1, max_length=60)]
    territories: Annotated[int, Field(ge=1)] | None = None
    balance: Annotated[list[BalanceSpec], Field(min_length=1)] | None = None


class MapSettings(_Strict):
    """Maps draw offline by default; name a tile layer only for readers who are online."""

    tiles: Literal["OpenStreetMap", "CartoDB positron", "CartoDB dark_matter"] | None = None


class MarketConfig(_Strict):
    """Everything a market's run needs, validated. Build it with :func:`load_config`."""

    market: str
    title: str
    data: DataFiles
    territories: Annotated[int, Field(ge=1)]
    description: str = ""
    provenance: str = ""
    unit_label: str = "unit"
    builtin: str | None = None
    units_crs: str | None = None
    currency: str = "USD"
    # How reports show distances; None: miles for a market in US dollars, else kilometres.
    distance_unit: Literal["km", "mi"] | None = None
    columns: ColumnMaps = Field(default_factory=ColumnMaps)
    design: DesignSettings = Field(default_factory=DesignSettings)
    resources: ResourceSettings = Field(default_factory=ResourceSettings)
    forecast_months: Annotated[int, Field(ge=1, le=36)] = 6
    monitor: MonitorSettings = Field(default_factory=MonitorSettings)
    analysis: AnalysisSettings = Field(default_factory=AnalysisSettings)
    maps: MapSettings = Field(default_factory=MapSettings)
    feedback: FeedbackSettings = Field(default_factory=FeedbackSettings)
    geometry: GeometrySettings = Field(default_factory=GeometrySettings)
    # Named variants step 2 compares with the plan, beside the plan at one territory fewer and more.
    scenarios: Annotated[list[ScenarioSpec], Field(max_length=6)] = Field(default_factory=list)
    source: Path = Path()

    @field_validator("market")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not SLUG_PATTERN.fullmatch(value):
            raise ValueError(
                "must be a slug: lowercase letters, digits, '-' and '_', starting with a letter or digit"
            )
        return value

    @model_validator(mode="after")
    def _resolve_paths(self) -> MarketConfig:
        base = self.source.parent
        resolved = {
            name: (base / path).resolve() if path is not None else None
            for name, path in self.data.model_dump().items()
        }
        object.__setattr__(self, "data", DataFiles.model_validate(resolved))
        return self


def distance_unit(config: MarketConfig) -> Literal["km", "mi"]:
    """The unit a market's reports show distances in (params ``distance_unit``, else by currency)."""
    if config.distance_unit is not None:
        return config.distance_unit
    return "mi" if config.currency.upper() == "USD" else "km"


def plural(noun: str) -> str:
    """English plural of a unit label: county -> counties, state -> states."""
    if noun.endswith("y") and noun[-2:-1] not in set("aeiou"):
        return noun[:-1] + "ies"
    return noun + ("es" if noun.endswith(("s", "x", "ch", "sh")) else "s")


def counted(n: int, noun: str) -> str:
    """A count with its noun in the right number: 1 county, 4 counties, 1,200 accounts."""
    return f"{n:,} {noun if n == 1 else plural(noun)}"


def market_params_path(name_or_path: str | Path) -> Path:
    """Turn a market name (a YAML in ``params/``) or the path of a params YAML into a path.

    Raises
    ------
    ConfigError
        When neither exists; the message lists the markets in ``params/``.
    """
    text = str(name_or_path)
    candidate = Path(text).expanduser()
    if candidate.suffix in {".yaml", ".yml"} or candidate.is_file():
        if not candidate.is_file():
            raise ConfigError(f"params file {text!r} not found.")
        return candidate.resolve()
    by_name = params_dir() / f"{text}.yaml"
    if by_name.is_file():
        return by_name
    known = ", ".join(available_markets()) or "none"
    hint = ""
    if (builtin_dir("params") / f"{text}.yaml").is_file():
        hint = (
            f" '{text}' is a built-in market: create a project that has it with `territory init DIR`, "
            "then run from DIR or pass --project DIR."
        )
    raise ConfigError(
        f"no market {text!r}: there is no {by_name} and no params file at that path. "
        f"Known markets: {known}.{hint}"
    )


def available_markets() -> list[str]:
    """Names of the markets in the project's ``params/`` (one YAML each), sorted."""
    return sorted(path.stem for path in params_dir().glob("*.yaml"))


def check_unique_markets(configs: Sequence[MarketConfig]) -> None:
    """Refuse two params files that declare the same ``market:``: their reports would overwrite each other.

    Raises
    ------
    ConfigError
        Naming both files and the market.
    """
    first: dict[str, MarketConfig] = {}
    for config in configs:
        other = first.setdefault(config.market, config)
        if other is not config and other.source != config.source:
            raise ConfigError(
                f"{other.source} and {config.source} both declare 'market: {config.market}', so they would "
                f"overwrite each other's reports/{config.market}/. Give one of them another market name."
            )


def load_config(name_or_path: str | Path) -> MarketConfig:
    """Load and validate a market's params YAML.

    Parameters
    ----------
    name_or_path
        A market name in ``params/`` (``"georgia"``) or the path of a params YAML anywhere.

    Raises
    ------
    ConfigError
        Naming the file and the key, for YAML syntax errors, unknown or missing keys and bad values.
    """
    path = market_params_path(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"{path}: not valid YAML{line}: {getattr(exc, 'problem', exc)}.") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys (market:, title:, data:, ...), got {raw!r}.")
    if "source" in raw:
        raise ConfigError(f"{path}: 'source' is reserved (Territory records the YAML's own path there).")
    try:
        return MarketConfig(**raw, source=path)
    except ValidationError as exc:
        raise ConfigError(_explain(path, exc)) from None


def _explain(path: Path, exc: ValidationError) -> str:
    """One line per problem, each naming the key in the YAML and how to fix it."""
    lines = [f"{path}: {exc.error_count()} problem(s) in the market params:"]
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"])
        if error["type"] == "extra_forbidden":
            hint = _suggest(error["loc"])
            lines.append(f"  - unknown key '{key}'{hint}; remove it or correct its spelling.")
        elif error["type"] == "missing":
            lines.append(f"  - missing required key '{key}'.")
        else:
            lines.append(f"  - '{key}': {error['msg']} (got {error.get('input')!r}).")
    return "\n".join(lines)


def _suggest(loc: tuple[Any, ...]) -> str:
    """A 'did you mean' for a misspelt key, looked up among the keys valid at that level."""
    model: type[BaseModel] | None = MarketConfig
    for part in loc[:-1]:
        if model is None:
            break
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        model = _model_in(field.annotation) if field else None
    if model is None:
        return ""
    close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model an annotation holds, directly or as ``list[Model]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in get_args(annotation):
        found = _model_in(argument)
        if found is not None:
            return found
    return None
