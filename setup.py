"""Build hook: copy the step notebooks and built-in params into the wheel as package data.

They live at the top of the repository (``notebooks/``, ``params/``); an installed package finds
them in ``territory_lib/bundled/`` (see ``territory_lib.paths.builtin_dir``). All other metadata
is in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

BUNDLED = {"notebooks": "*.ipynb", "params": "*.yaml"}


class BuildWithBundledFiles(build_py):
    """``build_py`` that also copies ``notebooks/*.ipynb`` and ``params/*.yaml`` into the package."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads them from the checkout
            return
        root = Path(__file__).resolve().parent
        for folder, pattern in BUNDLED.items():
            target = Path(self.build_lib) / "territory_lib" / "bundled" / folder
            target.mkdir(parents=True, exist_ok=True)
            for source in sorted((root / folder).glob(pattern)):
                shutil.copyfile(source, target / source.name)


setup(cmdclass={"build_py": BuildWithBundledFiles})
