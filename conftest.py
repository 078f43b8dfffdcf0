"""pytest setup shared by the test suite and the nbval notebook runs.

Reports written during tests go to a temporary folder, never into ``reports/``: the variable is
set before any notebook kernel starts, and kernels inherit it.
"""

import os
import tempfile

from territory_lib.paths import REPORTS_ENV_VAR

os.environ[REPORTS_ENV_VAR] = tempfile.mkdtemp(prefix="territory-test-reports-")
