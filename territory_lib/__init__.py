"""Territory: open, notebook-driven sales territory management.

The library behind the five step notebooks: configuration and data loading at the boundary,
one module per management step, and the runner that turns notebooks into stakeholder reports.
"""

import warnings

from territory_lib.errors import ConfigError, DataError, InfeasibleError, TerritoryError

__version__ = "0.1.0"

# esda imports tqdm.auto, which warns in every notebook that ipywidgets is missing; nothing here
# shows a progress bar, so the warning is noise in the stakeholder's notebook.
warnings.filterwarnings("ignore", message="IProgress not found")

__all__ = ["ConfigError", "DataError", "InfeasibleError", "TerritoryError", "__version__"]
