"""Helpers that edit a hand-made market's files in tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd


def edit_csv(name: str, change: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path], None]:
    """An ``edit=`` for the ``make_market`` fixture: read ``name`` as text, ``change`` it, write it back."""

    def edit(folder: Path) -> None:
        path = folder / name
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        change(frame).to_csv(path, index=False)

    return edit
