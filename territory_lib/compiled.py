"""Where numba keeps the library's compiled code (:mod:`territory_lib.tours`, the design engine).

Compiled functions (``cache=True``) are cached in the user's cache folder, never beside their
modules: an installed package must not write into site-packages. A ``NUMBA_CACHE_DIR`` the user
set still wins.
"""

from __future__ import annotations

import os
from pathlib import Path

import numba
from platformdirs import user_cache_dir


def use_user_cache_folder() -> None:
    """Cache compiled code in the user's cache folder unless ``NUMBA_CACHE_DIR`` says otherwise.

    Call it before declaring compiled functions: numba picks the folder as it declares them.
    """
    if not os.environ.get("NUMBA_CACHE_DIR"):
        numba.config.CACHE_DIR = str(Path(user_cache_dir("territory")) / "numba")  # type: ignore[attr-defined]
