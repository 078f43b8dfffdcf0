"""Fixtures: the built-in Georgia market, and hand-made markets written to a temporary folder."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from territory_lib.config import MarketConfig, load_config
from territory_lib.io import Market, load_market, prepare_builtin_data


@pytest.fixture(scope="session")
def georgia_config() -> MarketConfig:
    config = load_config("georgia")
    prepare_builtin_data(config)
    return config


@pytest.fixture(scope="session")
def georgia(georgia_config: MarketConfig) -> Market:
    return load_market(georgia_config)


MarketFactory = Callable[..., Path]


@pytest.fixture
def make_market(tmp_path: Path, georgia_config: MarketConfig) -> MarketFactory:
    """Write a market folder (Georgia's files, copied) and its params YAML; return the YAML path.

    Keyword arguments update the params; ``edit`` may change the copied files before the YAML
    is written (it receives the data folder).
    """

    def build(edit: Callable[[Path], None] | None = None, **params: object) -> Path:
        folder = tmp_path / "data"
        folder.mkdir(exist_ok=True)
        source = Path(georgia_config.data.units).parent
        for name in ("units.gpkg", "accounts.csv", "reps.csv", "sales.csv", "feedback.csv"):
            shutil.copy(source / name, folder / name)
        if edit is not None:
            edit(folder)
        document = {
            "market": "handmade",
            "title": "Hand-made <Market> & Co",
            "data": {
                "units": "data/units.gpkg",
                "accounts": "data/accounts.csv",
                "reps": "data/reps.csv",
                "sales": "data/sales.csv",
                "feedback": "data/feedback.csv",
            },
            "territories": 8,
        }
        document.update(params)
        path = tmp_path / "handmade.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        return path

    return build
