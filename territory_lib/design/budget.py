"""The search's work budget: step 2 stops by counted work, so a plan does not depend on the clock.

A work unit is one candidate move scored: one boundary unit tried in one adjacent territory, by
the tabu search or by the boundary sweeps alike. Every phase of a design draws on one
:class:`WorkBudget` and stops when it is spent, so the same data and seed give the same plan on
any machine under any load. A wall-clock cap can be added as a safety net; a plan it cuts short
depends on the machine, and says so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

#: Default budget: a floor for maps up to 10,000 units, then work units per unit of the map.
MIN_WORK = 20_000_000
WORK_PER_UNIT = 2_000


def default_work_budget(n_units: int) -> int:
    """Work units a design of ``n_units`` units gets unless told otherwise.

    The shape follows the wall-clock budget it replaces (a floor, then growth with the map). On
    maps of up to a few hundred units a search that runs every start and phase to its end stays
    within the floor (the benchmark's counties and 500-unit map use 0.3 to 2.6 million, an
    anchored 159-county market about 4 million); about 300,000 work units take a second on one
    core, so a search that does use the whole floor takes about a minute.
    """
    return max(MIN_WORK, WORK_PER_UNIT * int(n_units))


@dataclass
class WorkBudget:
    """Work units a design may spend, and an optional wall-clock safety cap.

    Attributes
    ----------
    limit : int
        Work units (candidate moves scored) available.
    deadline : float or None
        ``time.perf_counter()`` value after which the search stops anyway (None: no cap).
    spent : int
        Work units used so far.
    timed_out : bool
        Whether the wall-clock cap stopped some phase before its work was done.
    """

    limit: int
    deadline: float | None = None
    spent: int = 0
    timed_out: bool = False

    def spend(self, units: int) -> None:
        """Count ``units`` more work units as used."""
        self.spent += int(units)

    @property
    def used_up(self) -> bool:
        """Whether every work unit is spent."""
        return self.spent >= self.limit

    def exhausted(self) -> bool:
        """Whether the search must stop: work spent, or (safety cap only) the deadline passed."""
        if self.spent >= self.limit:
            return True
        if self.deadline is not None and time.perf_counter() > self.deadline:
            self.timed_out = True
            return True
        return False
