"""Territory: open, notebook-driven sales territory management.

The library behind the five step notebooks: configuration and data loading at the boundary,
one module per management step, and the runner that turns notebooks into stakeholder reports.
"""

from territory_lib.errors import ConfigError, DataError, InfeasibleError, TerritoryError

__version__ = "0.1.0"

__all__ = ["ConfigError", "DataError", "InfeasibleError", "TerritoryError", "__version__"]
