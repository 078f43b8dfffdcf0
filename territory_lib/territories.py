"""Step 2 around the design engine: balance targets from params, rep-home seeds, the CRM files."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd

from territory_lib.config import MarketConfig
from territory_lib.design import BalanceTarget
from territory_lib.errors import ConfigError
from territory_lib.geo import equal_area_crs
from territory_lib.resources import account_assignment, assign_reps, territory_centres


def balance_targets(config: MarketConfig, metrics: pd.DataFrame) -> list[BalanceTarget]:
    """The params' ``design.balance`` as engine targets, each measure checked against the unit metrics."""
    numeric = sorted(
        name
        for name in metrics.columns
        if name != "geometry" and pd.api.types.is_numeric_dtype(metrics[name])
    )
    targets = []
    for index, spec in enumerate(config.design.balance):
        if spec.measure not in numeric:
            raise ConfigError(
                f"{config.source}: 'design.balance[{index}].measure: {spec.measure}' is not a numeric unit "
                f"measure; choose one of {', '.join(numeric)}."
            )
        targets.append(BalanceTarget(spec.measure, spec.tolerance))
    return targets


def rep_home_seeds(config: MarketConfig, reps: pd.DataFrame) -> pd.DataFrame | None:
    """Rep homes (``lat``, ``lon``) to anchor one territory each, when the params ask for it.

    Anchoring needs exactly one rep per territory; otherwise the engine places the territories
    itself and step 3 matches reps to them.
    """
    if not config.design.anchor_at_reps or len(reps) != config.territories:
        return None
    return pd.DataFrame({"lat": reps["home_lat"].to_numpy(), "lon": reps["home_lon"].to_numpy()})


def plan_tables(
    assignment: pd.Series, metrics: gpd.GeoDataFrame, accounts: pd.DataFrame, reps: pd.DataFrame
) -> tuple[gpd.GeoDataFrame, pd.DataFrame, pd.DataFrame]:
    """The plan as the next steps and the CRM need it.

    Returns
    -------
    alignment
        The units with their ``territory_id`` (GeoDataFrame, for maps and later steps).
    rep_assignment
        ``territory_id, rep_id, rep_name, home_distance_km``: the closest reps overall.
    accounts_by_rep
        ``account_id, territory_id, rep_id``: the file for the CRM upload.
    """
    alignment = metrics.assign(territory_id=metrics["unit_id"].map(assignment))
    placed = accounts.assign(territory_id=accounts["unit_id"].map(assignment))
    centres = territory_centres(placed)
    empty = sorted(set(alignment["territory_id"]) - set(centres["territory_id"]))
    if empty:
        # A territory without accounts is centred on its units' geometric centre.
        shapes = alignment[alignment["territory_id"].isin(empty)].dissolve("territory_id")
        middle = shapes.to_crs(equal_area_crs(shapes)).centroid.to_crs(4326)
        centres = pd.concat(
            [
                centres,
                pd.DataFrame(
                    {"territory_id": shapes.index, "lat": middle.y.to_numpy(), "lon": middle.x.to_numpy()}
                ),
            ],
            ignore_index=True,
        )
    reps_for_territories = assign_reps(centres.sort_values("territory_id", ignore_index=True), reps)
    owners = reps_for_territories[["territory_id", "rep_id"]]
    return alignment, reps_for_territories, account_assignment(accounts, alignment, owners)
