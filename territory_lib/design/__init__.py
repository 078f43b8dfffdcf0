"""Step 2's engine: partition geographic units into balanced, contiguous, compact territories.

``design_territories`` is the entry point; see :mod:`territory_lib.design.engine`.
"""

from territory_lib.design.engine import BalanceTarget, DesignResult, design_territories

__all__ = ["BalanceTarget", "DesignResult", "design_territories"]
