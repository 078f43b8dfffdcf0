"""Step 4, monitor performance: monthly KPIs per territory, trend models, forecasts and anomalies."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter
from scipy import stats
from statsmodels.tsa.exponential_smoothing.ets import ETSModel

from territory_lib.checks import MIN_SEASONAL_MONTHS, MIN_TREND_MONTHS, history_months, returns_summary
from territory_lib.config import counted
from territory_lib.presentation import chart_text, month, percent

TOTAL = "All territories"
#: Territories charted by default besides the market total (params: ``monitor.chart_territories``).
CHART_TERRITORIES = 12


def monthly_kpis(sales: pd.DataFrame, assignment: pd.DataFrame, accounts: pd.DataFrame) -> pd.DataFrame:
    """Monthly KPIs per territory under the territory plan.

    Parameters
    ----------
    sales
        ``date, account_id, amount``.
    assignment
        ``account_id, territory_id`` (the plan of step 2).
    accounts
        ``account_id, potential``.

    Returns
    -------
    DataFrame
        One row per territory and month: ``sales``, ``active_customers``, ``new_customers`` (first
        purchase that month; the first month of data counts nobody as new), ``growth_mom``,
        ``growth_yoy`` and ``penetration_12m`` (trailing twelve months of sales over potential).
    """
    # Integer codes throughout (millions of sales rows): account, territory and month numbers,
    # counted into a territories x months grid.
    month = sales["date"].to_numpy().astype("datetime64[M]")
    start = month.min()
    month_code = (month - start).astype(np.int64)
    months = pd.date_range(pd.Timestamp(start), periods=int(month_code.max()) + 1, freq="MS").as_unit(
        sales["date"].dt.unit
    )
    account_code, account_ids = pd.factorize(sales["account_id"])
    owner = assignment.set_index("account_id")["territory_id"].reindex(account_ids).fillna("unassigned")
    territory_code_of_account, territories = pd.factorize(owner, sort=True)
    territory_code = territory_code_of_account[account_code]
    shape = (len(territories), len(months))
    cells = shape[0] * shape[1]

    def grid(keys: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(keys, weights=weights, minlength=cells).reshape(shape)

    amount = sales["amount"].to_numpy(dtype=float)
    totals = grid(territory_code * shape[1] + month_code, amount)
    buying = amount > 0
    # An account counts once a month however many times it bought: one flag per account and month.
    bought = np.zeros((len(account_ids), shape[1]), dtype=bool)
    bought[account_code[buying], month_code[buying]] = True
    buyer, bought_month = np.nonzero(bought)
    active = grid(territory_code_of_account[buyer] * shape[1] + bought_month)
    # In account, then month order: an account's first entry is its first purchase.
    first = np.flatnonzero(np.r_[True, buyer[1:] != buyer[:-1]])
    newcomer = first[bought_month[first] > 0]  # the first month of data counts nobody as new
    new = grid(territory_code_of_account[buyer[newcomer]] * shape[1] + bought_month[newcomer])

    potential = (
        assignment.merge(accounts[["account_id", "potential"]], on="account_id")
        .groupby("territory_id")["potential"]
        .sum()
        .reindex(territories)
        .to_numpy(dtype=float)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        growth_mom = np.full(shape, np.nan)
        growth_mom[:, 1:] = totals[:, 1:] / totals[:, :-1] - 1
        growth_yoy = np.full(shape, np.nan)
        growth_yoy[:, 12:] = totals[:, 12:] / totals[:, :-12] - 1
        penetration = np.full(shape, np.nan)
        if shape[1] >= 12:
            trailing = np.lib.stride_tricks.sliding_window_view(totals, 12, axis=1).sum(axis=2)
            penetration[:, 11:] = trailing / potential[:, None]
    table = pd.DataFrame(
        {
            "territory_id": np.repeat(np.asarray(territories, dtype=object), shape[1]),
            "month": np.tile(months, shape[0]),
            "sales": totals.ravel(),
            "active_customers": active.ravel().astype(np.int64),
            "new_customers": new.ravel().astype(np.int64),
            "growth_mom": growth_mom.ravel(),
            "growth_yoy": growth_yoy.ravel(),
            "penetration_12m": penetration.ravel(),
        }
    )
    table["territory_id"] = table["territory_id"].astype("str")
    return table.replace([np.inf, -np.inf], np.nan)


def kpi_scorecard(kpis: pd.DataFrame) -> pd.DataFrame:
    """Per territory: last twelve months against the twelve before, new customers, penetration."""
    last = kpis["month"].max()
    recent = kpis[kpis["month"] > last - pd.DateOffset(months=12)]
    prior = kpis[
        (kpis["month"] <= last - pd.DateOffset(months=12)) & (kpis["month"] > last - pd.DateOffset(months=24))
    ]
    card = pd.DataFrame(
        {
            "sales_12m": recent.groupby("territory_id")["sales"].sum(),
            "sales_prior_12m": prior.groupby("territory_id")["sales"].sum(),
            "new_customers_12m": recent.groupby("territory_id")["new_customers"].sum(),
            "active_customers": recent[recent["month"] == last].set_index("territory_id")["active_customers"],
            "penetration_12m": recent[recent["month"] == last].set_index("territory_id")["penetration_12m"],
        }
    )
    card["growth_12m"] = card["sales_12m"] / card["sales_prior_12m"].where(card["sales_prior_12m"] > 0) - 1
    return card.reset_index()


#: The one definition of growth in step 4's report.
GROWTH_DEFINITION = "sales of the last 12 months against the 12 months before"
#: Candidate forecasting models, simplest first (a tie in the backtest keeps the simpler one).
SEASONAL_NAIVE = "seasonal naive"
TREND_SEASON = "trend + season"
ETS = "ETS"
MODELS = (SEASONAL_NAIVE, TREND_SEASON, ETS)
NO_MODEL = "none (too little history)"
#: Months a model is trained on before the first backtest origin (two seasons, so ETS can start).
BACKTEST_MIN_TRAIN = 24
#: Backtest origins for the market total and for each territory (params: ``monitor``).
BACKTEST_ORIGINS = 12
TERRITORY_BACKTEST_ORIGINS = 3
#: A trend is claimed when its two-sided p-value is below this.
TREND_LEVEL = 0.05
#: Andrews (1993) 5 % critical value of the sup-Wald test for one break in the level, 15 % trimming.
SUP_WALD_CRITICAL = 8.85
SHIFT_TRIM = 0.15

RISING, FALLING, FLAT, SHIFT, SHORT = (
    "rising",
    "falling",
    "no clear trend",
    "level shift",
    "too little history",
)


@dataclass
class TrendTest:
    """Is there a trend? Log sales on a linear trend (and months of the year from 24 months of
    history), with AR(1) errors so that a run of good or bad months is not taken for a trend.

    ``verdict`` is one of ``rising``, ``falling``, ``no clear trend``, ``level shift`` (sales moved
    to a new level once, in ``shift_month``, by ``shift_size``, and did not trend) or ``too little
    history``. ``slope_growth`` is the model's trend over twelve months with its 95 % interval (a
    model parameter for analysts; the report's growth is :data:`GROWTH_DEFINITION`). ``p_value`` is
    the larger of the trend's p-values without and beside the likeliest level shift (1 when the two
    slopes disagree in sign).
    """

    verdict: str
    months: int
    slope_growth: float = math.nan
    slope_low: float = math.nan
    slope_high: float = math.nan
    p_value: float = math.nan
    rho: float = math.nan
    shift_month: pd.Timestamp | None = None
    shift_size: float = math.nan
    seasonal: bool = False

    @property
    def claims_trend(self) -> bool:
        """Whether the report may say the series is rising or falling."""
        return self.verdict in (RISING, FALLING)


@dataclass
class Backtest:
    """Rolling-origin backtest of one series: each candidate model is refitted at every origin and
    forecasts the following months; errors are scaled by the in-sample seasonal naive error (MASE).

    ``model`` is the candidate with the lowest MASE; ``mase``, ``coverage_80`` and ``coverage_95``
    are its figures (share of actual months inside its 80 % and 95 % intervals);
    ``mase_seasonal_naive`` is the benchmark's. ``scores`` has one row per candidate.
    """

    model: str
    mase: float
    mase_seasonal_naive: float
    coverage_80: float
    coverage_95: float
    origins: int
    forecasts: int
    scores: pd.DataFrame


@dataclass
class TrendFit:
    """One series (the market total or a territory): trend test, backtest, model and forecast.

    ``annual_growth`` follows :data:`GROWTH_DEFINITION` (NaN under 24 months of history).
    ``history`` has actual and fitted sales per month (trend + season, with the level shift when
    there is one) and an ``anomaly`` flag (Bonferroni outlier test, p < 0.05); ``forecast`` the
    next months from ``model``: the median (``forecast``) with 80 % (``low_80``, ``high_80``) and
    95 % (``low``, ``high``) prediction intervals.
    """

    name: str
    annual_growth: float
    trend: TrendTest
    model: str
    backtest: Backtest | None
    history: pd.DataFrame
    forecast: pd.DataFrame


def _seasonal_design(month_of_year: np.ndarray, t: np.ndarray, seasonal: bool) -> np.ndarray:
    """Constant, trend ``t`` and (when ``seasonal``) eleven dummies of ``month_of_year`` (1-12)."""
    columns = [np.ones(len(t)), t.astype(float)]
    if seasonal:
        columns += [(month_of_year == moy).astype(float) for moy in range(2, 13)]
    return np.column_stack(columns)


def _months_after(months: pd.DatetimeIndex, horizon: int) -> np.ndarray:
    """Month of year (1-12) of the ``horizon`` months after the last of ``months``."""
    return (months[-1].month + np.arange(horizon)) % 12 + 1


def _outlier_p_values(fit: sm.regression.linear_model.RegressionResults) -> np.ndarray:
    """Bonferroni-adjusted p-values of the externally studentized residuals of an OLS fit.

    The same test as statsmodels' ``outlier_test()``, from the leave-one-out identity
    SSE(-i) = SSE - e_i^2 / (1 - h_i) instead of refitting once per month. A month whose leverage
    is 1 (the only one of its month of year) gets NaN, which flags nothing.
    """
    design = np.asarray(fit.model.exog, dtype=float)
    residuals = np.asarray(fit.resid, dtype=float)
    leverage = np.einsum("ij,ji->i", design, np.linalg.pinv(design))
    df = fit.df_resid - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        free = np.where(1 - leverage > 1e-10, 1 - leverage, np.nan)
        sigma2 = (float(residuals @ residuals) - residuals**2 / free) / df
        studentized = residuals / np.sqrt(sigma2 * free)
    return np.minimum(2 * stats.t.sf(np.abs(studentized), df) * len(residuals), 1.0)


def _prais_winsten(values: np.ndarray, rho: float) -> np.ndarray:
    """Quasi-difference rows by ``rho``, keeping the first row scaled (Prais-Winsten)."""
    head = np.sqrt(1 - rho**2) * values[:1]
    return np.concatenate([head, values[1:] - rho * values[:-1]])


def _gls_ar1(
    y: np.ndarray, design: np.ndarray, rho: float | None = None
) -> tuple[sm.regression.linear_model.RegressionResults, float]:
    """Regression with AR(1) errors by feasible GLS (Prais-Winsten), robust in short series.

    The lag-one autocorrelation of regression residuals is biased towards zero in short series
    (more so with many regressors), which makes plain GLSAR claim trends in AR(1) noise about 15 %
    of the time at 36 months; the estimate is corrected by ``(2 + 4 rho) / (n - p)`` (chosen by
    simulation: 5-8 % false claims at the 5 % level for rho 0.6 from 24 months on).
    """
    if rho is not None:
        return sm.OLS(_prais_winsten(y, rho), _prais_winsten(design, rho)).fit(), rho
    n, p = design.shape
    rho = 0.0
    for _ in range(3):
        fit = sm.OLS(_prais_winsten(y, rho), _prais_winsten(design, rho)).fit()
        residuals = y - design @ fit.params
        denominator = float(residuals @ residuals)
        raw = float(residuals[1:] @ residuals[:-1]) / denominator if denominator > 0 else 0.0
        rho = float(np.clip(raw + (2 + 4 * raw) / max(n - p, 1), 0.0, 0.95))
    return sm.OLS(_prais_winsten(y, rho), _prais_winsten(design, rho)).fit(), rho


def _best_break(y: np.ndarray, design: np.ndarray) -> int | None:
    """The month index of the level shift that most reduces the squared error, within the trimmed range."""
    n = len(y)
    trim = max(3, math.ceil(SHIFT_TRIM * n))
    candidates = np.arange(trim, n - trim + 1)
    if len(candidates) == 0:
        return None
    steps = (np.arange(n)[:, None] >= candidates[None, :]).astype(float)
    # Frisch-Waugh: residualise y and every step on the design once, then each break is one ratio.
    projection = design @ np.linalg.pinv(design)
    ry = y - projection @ y
    rs = steps - projection @ steps
    norms = (rs**2).sum(axis=0)
    gain = np.where(norms > 1e-12, (rs.T @ ry) ** 2 / np.where(norms > 1e-12, norms, 1.0), 0.0)
    # Ties (a territory up one year and back the next) go to the earliest month, whatever the
    # rounding of the sums that led to them.
    return int(candidates[int(np.argmax(gain >= gain.max() * (1 - 1e-9)))])


def trend_test(monthly: pd.Series) -> TrendTest:
    """Test a monthly sales series for a trend and a level shift (see :class:`TrendTest`).

    Months before the first sale are left out (a territory whose accounts started buying late has
    a short history, not a steep trend). Under ``MIN_TREND_MONTHS`` months nothing is claimed;
    seasonality enters from ``MIN_SEASONAL_MONTHS``. A level shift is tested at the best break
    month with the sup-Wald test (Andrews 1993, 5 %); when found, the trend is judged in a model
    that includes the shift, so a one-off step is not reported as growth.
    """
    monthly = _active(monthly)
    months = pd.DatetimeIndex(monthly.index)
    n = len(monthly)
    if n < MIN_TREND_MONTHS:
        return TrendTest(SHORT, n)
    y = _log_sales(monthly)
    seasonal = n >= MIN_SEASONAL_MONTHS
    design = _seasonal_design(months.month.to_numpy(), np.arange(n), seasonal)
    fit, rho = _gls_ar1(y, design)
    p_value = float(fit.pvalues[1])
    shift_month, shift_size = None, math.nan
    brk = _best_break(y, design)
    if brk is not None:
        with_step = np.column_stack([design, (np.arange(n) >= brk).astype(float)])
        # A trend is claimed only if it also holds beside the likeliest level shift, so one step in
        # sales does not pass for growth.
        robust, robust_rho = _gls_ar1(y, with_step)
        agrees = np.sign(robust.params[1]) == np.sign(fit.params[1])
        p_value = max(p_value, float(robust.pvalues[1])) if agrees else 1.0
        # The shift itself is tested with an autocorrelation weighted towards the model without it:
        # re-estimated with the step alone, it drops and a slow wander of AR(1) noise passes for a
        # shift (27 % of phi = 0.6 series); without the step, a real shift inflates it and hides
        # itself. The 0.7 weight was chosen by simulation: 3 % false shifts, 79 % of +30 % shifts found.
        step_rho = 0.7 * rho + 0.3 * robust_rho
        step_fit, _ = _gls_ar1(y, with_step, step_rho)
        if float(step_fit.tvalues[-1]) ** 2 > SUP_WALD_CRITICAL:
            fit = step_fit
            shift_month, shift_size = months[brk], math.expm1(float(step_fit.params[-1]))
    low, high = fit.conf_int(alpha=0.05)[1]
    if p_value < TREND_LEVEL:
        verdict = RISING if fit.params[1] > 0 else FALLING
    else:
        verdict = SHIFT if shift_month is not None else FLAT
    return TrendTest(
        verdict=verdict,
        months=n,
        slope_growth=math.expm1(12 * float(fit.params[1])),
        slope_low=math.expm1(12 * float(low)),
        slope_high=math.expm1(12 * float(high)),
        p_value=p_value,
        rho=rho,
        shift_month=shift_month,
        shift_size=shift_size,
        seasonal=seasonal,
    )


def _active(monthly: pd.Series) -> pd.Series:
    """The series from its first month with sales on (the whole series when it never sold)."""
    selling = np.flatnonzero(monthly.to_numpy(dtype=float) > 0)
    return monthly.iloc[selling[0] :] if len(selling) else monthly


def _log_sales(monthly: pd.Series) -> np.ndarray:
    # Returns can leave a month's net sales below zero, where the log is undefined: model those as 0.
    return np.log1p(monthly.to_numpy(dtype=float).clip(min=0))


def growth_12m(monthly: pd.Series) -> float:
    """Growth as :data:`GROWTH_DEFINITION`; NaN with under 24 months or no sales in the prior 12."""
    values = monthly.to_numpy(dtype=float)
    if len(values) < 24:
        return math.nan
    prior = values[-24:-12].sum()
    return float(values[-12:].sum() / prior - 1) if prior > 0 else math.nan


_Z = {"80": 1.2815515655446004, "95": 1.959963984540054}  # standard normal quantiles of the bands


def _bands(point: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Columns ``point, low_80, high_80, low_95, high_95`` from a normal forecast distribution."""
    return np.column_stack(
        [point, point - _Z["80"] * sd, point + _Z["80"] * sd, point - _Z["95"] * sd, point + _Z["95"] * sd]
    )


def _forecast_log(
    model: str, y: np.ndarray, months: pd.DatetimeIndex, horizon: int, ets_params: dict[str, float] | None
) -> tuple[np.ndarray, dict[str, float] | None]:
    """Forecast ``horizon`` months of log sales with ``model``: columns ``point, low_80, high_80,
    low_95, high_95`` (see :func:`_bands`), and the ETS parameters used.

    ETS, when ``ets_params`` has all its smoothing parameters, keeps them and only sets its starting
    states (cheap); otherwise it estimates them and returns them for reuse.
    """
    n = len(y)
    seasonal = n >= MIN_SEASONAL_MONTHS
    if model == SEASONAL_NAIVE:
        spread = y[12:] - y[:-12]
        steps = np.arange(horizon)
        sd = float(np.sqrt(np.mean(spread**2))) * np.sqrt(steps // 12 + 1)
        return _bands(y[n - 12 + steps % 12], sd), ets_params
    if model == TREND_SEASON:
        fit = sm.OLS(y, _seasonal_design(months.month.to_numpy(), np.arange(n), seasonal)).fit()
        ahead = _seasonal_design(_months_after(months, horizon), np.arange(n, n + horizon), seasonal)
        prediction = fit.get_prediction(ahead)
        # Student t bands (parameter and noise uncertainty), as least squares gives them.
        columns = [prediction.predicted_mean]
        for alpha in (0.2, 0.05):
            columns += list(prediction.conf_int(obs=True, alpha=alpha).T)
        return np.column_stack(columns), ets_params
    kinds = {"seasonal": "add", "seasonal_periods": 12} if seasonal else {}
    # A plain position index, not dates: the months are consecutive, and statsmodels' date-index
    # bookkeeping costs more than the filter itself (hundreds of territories x origins).
    ets = ETSModel(
        pd.Series(np.asarray(y, dtype=float)),
        error="add",
        trend="add",
        damped_trend=True,
        initialization_method="heuristic",
        **kinds,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter; the backtest judges the result
        if ets_params is not None and set(ets.param_names) <= set(ets_params):
            # Smoothing with given parameters is a single filter pass: ten times cheaper than a fit.
            result = ets.smooth(np.array([ets_params[name] for name in ets.param_names]))
        else:
            result = ets.fit(disp=False)
            ets_params = dict(zip(ets.param_names, np.asarray(result.params), strict=True))
        prediction = result.get_prediction(start=n, end=n + horizon - 1)
    point = np.asarray(prediction.predicted_mean, dtype=float)
    return _bands(point, np.sqrt(np.asarray(prediction.forecast_variance, dtype=float))), ets_params


def backtest(
    monthly: pd.Series,
    horizon: int,
    origins: int = BACKTEST_ORIGINS,
    ets_params: dict[str, float] | None = None,
) -> Backtest | None:
    """Rolling-origin backtest of :data:`MODELS` on one series (see :class:`Backtest`).

    Origins are spread evenly over the months after the first ``BACKTEST_MIN_TRAIN`` (every month
    when ``origins`` allows); at each, every model is fitted on the months before it and forecasts
    up to ``horizon`` months (fewer near the end of the data). Errors are on sales (not their log)
    and scaled by the mean absolute seasonal naive error of that training window. ``ets_params``
    fixes ETS's smoothing parameters (the cheap scheme used for territories). None when the history
    is too short for one origin.
    """
    monthly = _active(monthly)
    n = len(monthly)
    available = n - BACKTEST_MIN_TRAIN
    if available < 1 or origins < 1:
        return None
    chosen = np.unique(np.linspace(BACKTEST_MIN_TRAIN, n - 1, min(origins, available)).round().astype(int))
    y = _log_sales(monthly)
    sales = monthly.to_numpy(dtype=float)
    months = pd.DatetimeIndex(monthly.index)
    rows: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []
    for origin in chosen:
        steps = min(horizon, n - origin)
        scale = float(np.mean(np.abs(sales[12:origin] - sales[: origin - 12])))
        if scale <= 0:
            continue
        actual = sales[origin : origin + steps]
        for model in MODELS:
            try:
                band, _ = _forecast_log(model, y[:origin], months[:origin], steps, ets_params)
            except (ValueError, np.linalg.LinAlgError):
                continue  # a model that cannot be fitted here scores no forecasts
            band = np.expm1(band)
            inside = [(band[:, low] <= actual) & (actual <= band[:, low + 1]) for low in (1, 3)]
            rows.append((model, np.abs(actual - band[:, 0]) / scale, *inside))
    if not rows:
        return None
    scored = [model for model in MODELS if any(row[0] == model for row in rows)]
    scores = pd.DataFrame(
        [
            {
                "model": model,
                "mase": np.concatenate([row[1] for row in rows if row[0] == model]).mean(),
                "coverage_80": np.concatenate([row[2] for row in rows if row[0] == model]).mean(),
                "coverage_95": np.concatenate([row[3] for row in rows if row[0] == model]).mean(),
                "forecasts": sum(len(row[1]) for row in rows if row[0] == model),
            }
            for model in scored
        ]
    )
    best = scores.loc[scores["mase"].idxmin()]
    benchmark = scores.set_index("model")["mase"].get(SEASONAL_NAIVE, math.nan)
    return Backtest(
        model=str(best["model"]),
        mase=float(best["mase"]),
        mase_seasonal_naive=float(benchmark),
        coverage_80=float(best["coverage_80"]),
        coverage_95=float(best["coverage_95"]),
        origins=len(chosen),
        forecasts=int(best["forecasts"]),
        scores=scores,
    )


def fit_trend(
    name: str,
    monthly: pd.Series,
    horizon: int,
    origins: int = BACKTEST_ORIGINS,
    ets_params: dict[str, float] | None = None,
) -> TrendFit:
    """Test ``monthly`` for a trend, backtest the models, and forecast ``horizon`` months ahead.

    ``monthly`` is indexed by month start dates. The forecast comes from the model with the best
    backtest; without a backtest (under ``BACKTEST_MIN_TRAIN`` + 1 months of sales) from trend +
    season, seasonality left out under ``MIN_SEASONAL_MONTHS``. A series that has sold for fewer
    than ``MIN_TREND_MONTHS`` months gets no forecast, fitted line or anomalies (``model`` is
    :data:`NO_MODEL`): a line through a few months would extrapolate their noise.
    """
    months = pd.DatetimeIndex(monthly.index)
    active = _active(monthly)
    trend = trend_test(monthly)
    result = backtest(monthly, horizon, origins, ets_params)
    flagged = np.zeros(len(months), dtype=bool)
    fitted = np.full(len(months), np.nan)
    band = np.full((horizon, 5), np.nan)
    model = NO_MODEL
    if len(active) >= MIN_TREND_MONTHS:
        model = result.model if result is not None else TREND_SEASON
        active_months = pd.DatetimeIndex(active.index)
        y = _log_sales(active)
        try:
            band, _ = _forecast_log(model, y, active_months, horizon, ets_params)
        except (ValueError, np.linalg.LinAlgError):
            model = TREND_SEASON
            band, _ = _forecast_log(model, y, active_months, horizon, ets_params)
        # The fitted line and outliers come from trend + season, with its level shift if any.
        design = _seasonal_design(
            active_months.month.to_numpy(), np.arange(len(y)), len(y) >= MIN_SEASONAL_MONTHS
        )
        if trend.shift_month is not None:
            design = np.column_stack([design, (active_months >= trend.shift_month).astype(float)])
        in_sample = sm.OLS(y, design).fit()
        offset = len(months) - len(y)
        fitted[offset:] = np.expm1(in_sample.fittedvalues)
        if len(y) > design.shape[1] + 1:
            flagged[offset:] = _outlier_p_values(in_sample) < 0.05
    future = pd.date_range(months[-1] + pd.DateOffset(months=1), periods=horizon, freq="MS")
    band = np.expm1(band)
    return TrendFit(
        name=name,
        annual_growth=growth_12m(monthly),
        trend=trend,
        model=model,
        backtest=result,
        history=pd.DataFrame(
            {"month": months, "sales": monthly.to_numpy(dtype=float), "fitted": fitted, "anomaly": flagged}
        ),
        forecast=pd.DataFrame(
            {
                "month": future,
                "forecast": band[:, 0],
                "low_80": band[:, 1],
                "high_80": band[:, 2],
                "low": band[:, 3],
                "high": band[:, 4],
            }
        ),
    )


def fit_trends(
    kpis: pd.DataFrame,
    horizon: int,
    origins: int = BACKTEST_ORIGINS,
    territory_origins: int = TERRITORY_BACKTEST_ORIGINS,
) -> list[TrendFit]:
    """A :class:`TrendFit` for all territories together, then one per territory.

    The market total gets the full backtest (``origins`` origins, ETS estimated at each). To keep
    hundreds of territories cheap, each territory is backtested at ``territory_origins`` origins
    with ETS's smoothing parameters fixed at the market total's (only its starting states are set
    per territory). Empty when the history is shorter than ``MIN_TREND_MONTHS``: a line through a
    few months extrapolates their noise into an annual growth rate that means nothing.
    """
    if kpis["month"].nunique() < MIN_TREND_MONTHS:
        return []
    total = kpis.groupby("month")["sales"].sum()
    fits = [fit_trend(TOTAL, total, horizon, origins)]
    pooled = _ets_parameters(total)
    for territory, part in kpis.groupby("territory_id"):
        series = part.set_index("month")["sales"]
        fits.append(fit_trend(str(territory), series, horizon, territory_origins, pooled))
    return fits


def _ets_parameters(monthly: pd.Series) -> dict[str, float] | None:
    """ETS smoothing parameters estimated on ``monthly`` (None when it is too short to fit)."""
    active = _active(monthly)
    if len(active) < BACKTEST_MIN_TRAIN:
        return None
    try:
        _, params = _forecast_log(ETS, _log_sales(active), pd.DatetimeIndex(active.index), 1, None)
    except (ValueError, np.linalg.LinAlgError):
        return None
    smoothing = ("smoothing_level", "smoothing_trend", "smoothing_seasonal", "damping_trend")
    return {name: value for name, value in (params or {}).items() if name in smoothing}


def recent_sales(fit: TrendFit) -> float:
    """Sales of the last twelve months of a fit's history (all of it when shorter)."""
    return float(fit.history["sales"].iloc[-12:].sum())


def trend_words(test: TrendTest) -> str:
    """The trend verdict in a sales leader's words: ``rising``, ``level shift in March 2025 (+24.0%)``."""
    if test.verdict == SHORT:
        return f"too little history ({counted(test.months, 'month')})"
    shift = (
        f"level shift in {month(test.shift_month)} ({percent(test.shift_size, signed=True)})"
        if test.shift_month is not None
        else ""
    )
    if test.verdict == SHIFT:
        return shift
    return f"{test.verdict}, after a {shift}" if shift else test.verdict


def trend_table(fits: list[TrendFit]) -> pd.DataFrame:
    """One row per fit, in order: recent sales, growth (:data:`GROWTH_DEFINITION`), the trend
    verdict, anomalies and the median forecast for next month. Every territory has its row."""
    return pd.DataFrame(
        {
            "territory": [fit.name for fit in fits],
            "sales_12m": [recent_sales(fit) for fit in fits],
            "annual_growth": [fit.annual_growth for fit in fits],
            "trend": [trend_words(fit.trend) for fit in fits],
            "level_shift_month": [fit.trend.shift_month for fit in fits],
            "anomalous_months": [int(fit.history["anomaly"].sum()) for fit in fits],
            "next_month_forecast": [fit.forecast["forecast"].iloc[0] for fit in fits],
        }
    )


def model_table(fits: list[TrendFit]) -> pd.DataFrame:
    """For analysts, one row per fit: the trend model's slope (growth a year at the trend, 95 %
    interval), its p-value (the larger of those without and beside the likeliest level shift; 1 when
    they disagree in sign) and AR(1) coefficient, and the chosen forecasting model's backtest."""
    rows = []
    for fit in fits:
        test, result = fit.trend, fit.backtest
        rows.append(
            {
                "territory": fit.name,
                "months": test.months,
                "trend_slope_a_year": test.slope_growth,
                "slope_low_95": test.slope_low,
                "slope_high_95": test.slope_high,
                "p_value": test.p_value,
                "ar1_rho": test.rho,
                "model": fit.model,
                "mase": result.mase if result else math.nan,
                "mase_seasonal_naive": result.mase_seasonal_naive if result else math.nan,
                "coverage_80": result.coverage_80 if result else math.nan,
                "coverage_95": result.coverage_95 if result else math.nan,
                "origins": result.origins if result else 0,
            }
        )
    return pd.DataFrame(rows)


def backtest_metrics(fits: list[TrendFit]) -> dict[str, object]:
    """Step 4's machine-readable results: the market total's backtest and a summary per territory.

    ``backtest`` has ``model, mase, mase_seasonal_naive, coverage_80, coverage_95`` (None without a
    backtest); ``territories`` counts the chosen models and trend verdicts and gives the median
    MASE of the chosen and seasonal naive models.
    """
    empty = dict.fromkeys(("model", "mase", "mase_seasonal_naive", "coverage_80", "coverage_95"))
    if not fits:
        return {"backtest": empty, "growth_definition": GROWTH_DEFINITION}
    total = fits[0].backtest
    backtest_figures = (
        {
            "model": total.model,
            "mase": total.mase,
            "mase_seasonal_naive": total.mase_seasonal_naive,
            "coverage_80": total.coverage_80,
            "coverage_95": total.coverage_95,
            "origins": total.origins,
        }
        if total is not None
        else empty | {"model": fits[0].model}
    )
    territories = list(fits[1:])
    tested = [fit.backtest for fit in territories if fit.backtest is not None]
    return {
        "backtest": backtest_figures,
        "growth_definition": GROWTH_DEFINITION,
        "annual_growth": fits[0].annual_growth,
        "trend": fits[0].trend.verdict,
        "territories": {
            "count": len(territories),
            "models": {model: sum(fit.model == model for fit in territories) for model in MODELS},
            "trends": {
                verdict: sum(fit.trend.verdict == verdict for fit in territories)
                for verdict in (RISING, FALLING, FLAT, SHIFT, SHORT)
            },
            "median_mase": float(np.median([b.mase for b in tested])) if tested else None,
            "median_mase_seasonal_naive": float(np.median([b.mase_seasonal_naive for b in tested]))
            if tested
            else None,
        },
    }


def anomalies(fits: list[TrendFit]) -> pd.DataFrame:
    """The months whose sales the trend model flags as outliers, with actual and expected sales."""
    rows = [
        fit.history.loc[fit.history["anomaly"], ["month", "sales", "fitted"]].assign(territory=fit.name)
        for fit in fits
    ]
    columns = ["territory", "month", "sales", "fitted"]
    table = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=columns)
    return table[columns].rename(columns={"fitted": "expected"})


def data_notes(sales: pd.DataFrame, currency: str = "USD") -> list[str]:
    """What the reader of step 4 should know about the sales history: its length, and returns.

    Says when the history is too short for a trend (no trend or forecast is shown) or for
    seasonality, and how many returns and credit notes (negative amounts) the sales are net of.
    """
    notes = []
    months = history_months(sales)
    if months < MIN_TREND_MONTHS:
        notes.append(
            f"Only {counted(months, 'month')} of sales: not enough history for a trend "
            f"({MIN_TREND_MONTHS} months needed), so this report shows no trend, growth rate or forecast."
        )
    elif months < MIN_SEASONAL_MONTHS:
        notes.append(
            f"{counted(months, 'month')} of sales: the trends leave out seasonality "
            f"({MIN_SEASONAL_MONTHS} months needed to tell it from growth)."
        )
    count, total = returns_summary(sales)
    if count:
        notes.append(
            f"Sales are net of {count:,} returns/credit notes (negative amounts) totalling "
            f"{total:,.0f} {currency}."
        )
    return notes


def forecast_alt_text(fits: list[TrendFit], territories: int = CHART_TERRITORIES) -> str:
    """What :func:`forecast_chart` shows, in words (the image's alt text)."""
    shown = largest_fits(fits, territories)
    lines = [
        f"{fit.name}: {fit.trend.verdict}"
        + (f", {fit.annual_growth:+.1%} on the prior 12 months" if np.isfinite(fit.annual_growth) else "")
        for fit in shown
    ]
    return (
        f"Monthly sales with the fitted trend and the median forecast with 80 % and 95 % bands, "
        f"{len(shown)} panel(s): " + "; ".join(lines) + "."
    )


def largest_fits(fits: list[TrendFit], territories: int = CHART_TERRITORIES) -> list[TrendFit]:
    """The market total and the ``territories`` territories with the most recent sales, in order.

    Territories are ranked by :func:`recent_sales` (ties by name, so the choice is deterministic);
    the chosen fits keep their order in ``fits``, the order of the report's tables.
    """
    ranked = sorted(
        (fit for fit in fits if fit.name != TOTAL), key=lambda fit: (-recent_sales(fit), fit.name)
    )
    chosen = {id(fit) for fit in ranked[:territories]}
    return [fit for fit in fits if fit.name == TOTAL or id(fit) in chosen]


def forecast_chart(
    fits: list[TrendFit], currency: str = "USD", territories: int = CHART_TERRITORIES, columns: int = 3
) -> Figure:
    """Small multiples: actual sales, the fitted model, the median forecast with 80 % and 95 % bands.

    Only the market total and the ``territories`` largest territories (:func:`largest_fits`) get
    a panel, so the figure's size is bounded however many territories the market has; the title
    says when some are left out (:func:`trend_table` lists them all).
    """
    territory_count = sum(fit.name != TOTAL for fit in fits)
    fits = largest_fits(fits, territories)
    charted = sum(fit.name != TOTAL for fit in fits)
    rows = math.ceil(len(fits) / columns)
    figure = Figure(figsize=(4.2 * columns, 2.8 * rows))
    axes = figure.subplots(rows, columns, squeeze=False, sharex=True)
    for axis, fit in zip(axes.flat, fits, strict=False):
        axis.plot(fit.history["month"], fit.history["sales"], color="#4c566a", lw=1.2, label="actual")
        axis.plot(fit.history["month"], fit.history["fitted"], color="#5e81ac", lw=1, ls="--", label="model")
        axis.fill_between(
            fit.forecast["month"], fit.forecast["low"], fit.forecast["high"], color="#88c0d0", alpha=0.3
        )
        axis.fill_between(
            fit.forecast["month"], fit.forecast["low_80"], fit.forecast["high_80"], color="#88c0d0", alpha=0.5
        )
        axis.plot(
            fit.forecast["month"], fit.forecast["forecast"], color="#bf616a", lw=1.6, label="median forecast"
        )
        flagged = fit.history[fit.history["anomaly"]]
        axis.scatter(flagged["month"], flagged["sales"], color="#d08770", zorder=3, s=18, label="anomaly")
        axis.set_title(f"{chart_text(fit.name)}: {chart_text(trend_words(fit.trend))}", fontsize=9)
        axis.tick_params(labelsize=7)
        axis.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1000:,.0f}k"))
    for axis in list(axes.flat)[len(fits) :]:
        axis.set_visible(False)
    axes.flat[0].legend(fontsize=7, loc="upper left")
    title = f"Monthly sales ({chart_text(currency)}) and median forecast"
    if charted < territory_count:
        title += (
            f"\nall territories, then the {counted(charted, 'territory')} of {territory_count:,} "
            "with the most sales in the last 12 months"
        )
    figure.suptitle(title, fontsize=11)
    figure.autofmt_xdate()
    figure.tight_layout()
    return figure
