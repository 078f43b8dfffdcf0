"""Where things live: the project folder (params/, data/, reports/, optional notebooks/), the notebooks
and params that ship with the package, and a guard that keeps written paths inside a folder.

The project folder is ``$TERRITORY_PROJECT`` (the ``--project`` option sets it), else the nearest
folder from the current directory upwards that has a ``params/`` folder, else the source checkout
this package runs from, else the current directory. Nothing is ever written inside the package.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from territory_lib.errors import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parent
#: The checkout the package runs from, when it does (an editable install or ``PYTHONPATH``).
SOURCE_ROOT = PACKAGE_DIR.parent
#: Where a wheel keeps the step notebooks and built-in params (copied in at build time, see setup.py).
BUNDLED_DIR = PACKAGE_DIR / "bundled"

#: The project folder, when set; kernels and workers inherit it.
PROJECT_ENV_VAR = "TERRITORY_PROJECT"
#: Reports go here unless ``TERRITORY_REPORTS_DIR`` names another folder (tests use a temporary one).
REPORTS_ENV_VAR = "TERRITORY_REPORTS_DIR"


def is_project(folder: Path) -> bool:
    """Whether ``folder`` is a project folder: one with a ``params/`` folder of market YAMLs."""
    return (folder / "params").is_dir()


def running_from_checkout() -> bool:
    """Whether this package is imported from the project's source checkout rather than a wheel."""
    return (SOURCE_ROOT / "pyproject.toml").is_file() and (SOURCE_ROOT / "notebooks").is_dir()


def project_dir() -> Path:
    """Return the project folder (see the module docstring for how it is found).

    Raises
    ------
    ConfigError
        When ``$TERRITORY_PROJECT`` names a folder that does not exist.
    """
    named = os.environ.get(PROJECT_ENV_VAR)
    if named:
        folder = Path(named).expanduser().resolve()
        if not folder.is_dir():
            raise ConfigError(
                f"project folder {named!r} does not exist; create one with `territory init {named}` "
                "or pass an existing folder to --project."
            )
        return folder
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if is_project(folder):
            return folder
    if running_from_checkout():
        return SOURCE_ROOT
    return here


def params_dir() -> Path:
    """The project's ``params/`` folder: one YAML per market."""
    return project_dir() / "params"


def data_dir() -> Path:
    """The project's ``data/`` folder, where built-in markets generate their files."""
    return project_dir() / "data"


def reports_dir() -> Path:
    """Return the root folder of generated reports (``<project>/reports/`` or ``$TERRITORY_REPORTS_DIR``)."""
    override = os.environ.get(REPORTS_ENV_VAR)
    return Path(override).resolve() if override else project_dir() / "reports"


def builtin_dir(kind: str) -> Path:
    """The notebooks (``kind="notebooks"``) or params (``"params"``) that ship with the package.

    A wheel carries them in ``territory_lib/bundled/``; a checkout has them at its top level.
    """
    bundled = BUNDLED_DIR / kind
    return bundled if bundled.is_dir() else SOURCE_ROOT / kind


def notebook_path(name: str) -> Path:
    """The step notebook ``name``: the project's ``notebooks/<name>.ipynb`` if any, else the built-in."""
    own = project_dir() / "notebooks" / f"{name}.ipynb"
    return own if own.is_file() else builtin_dir("notebooks") / f"{name}.ipynb"


def ensure_inside(path: Path, root: Path, what: str) -> Path:
    """Resolve ``path`` and refuse it unless it lies inside ``root``.

    Parameters
    ----------
    path, root
        The path to check and the folder it must stay in.
    what
        How to name the path in the error message (e.g. ``"output_dir parameter"``).
    """
    resolved = path.resolve()
    root = root.resolve()
    if resolved != root and root not in resolved.parents:
        raise ConfigError(f"{what} {str(path)!r} points outside {root}; choose a folder inside it.")
    return resolved


def write_text_atomically(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename, so readers never see half a file.

    ``open(..., "x")`` honours the umask, so the file is as readable as any other written here.
    """
    path = Path(path)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temp, "x", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return path
