"""Step 2's engine: partition geographic units into balanced, contiguous, compact territories.

``design_territories`` is the entry point; see :mod:`territory_lib.design.engine`. The engine
(geopandas, libpysal, HiGHS) is imported on first use, so the ``territory`` command starts fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from territory_lib.design.engine import BalanceTarget, DesignResult, design_territories

__all__ = ["BalanceTarget", "DesignResult", "design_territories"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from territory_lib.design import engine

        return getattr(engine, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
