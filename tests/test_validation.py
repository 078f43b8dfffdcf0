"""Table validation (pandera): every problem of a file in one error, each naming file, column and rows."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from territory_lib.config import load_config
from territory_lib.errors import DataError
from territory_lib.io import INTEGRAL_FLOAT, _integral_ids, _text, load_market, validate_table
from tests.market_files import edit_csv


def test_two_bad_columns_are_reported_at_once(make_market) -> None:
    def corrupt(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[3, "lat"] = "n/a"
        frame.loc[[0, 6], "status"] = "lead"
        return frame

    config = load_config(make_market(edit_csv("accounts.csv", corrupt)))
    with pytest.raises(DataError) as error:
        load_market(config)
    lines = str(error.value).splitlines()
    assert len(lines) == 2, lines
    assert lines[0].endswith(
        "accounts.csv: column 'lat' has values that are not numbers in row 5 (e.g. 'n/a'); fix those values."
    )
    assert lines[1].endswith(
        "accounts.csv: column 'status' must be one of customer, prospect; rows 2, 8 have 'lead'."
    )


def test_a_missing_column_and_bad_values_elsewhere_come_together() -> None:
    frame = pd.DataFrame(
        {
            "rep_id": ["R1", "R1", "R3"],
            "name": ["Ann", "Bo", "Cy"],
            "home_lat": ["33.7", "", "34.1"],
            "home_lon": ["-84.4", "-83.0", "-84.0"],
        }
    )
    with pytest.raises(DataError) as error:
        validate_table(frame, Path("reps.csv"), "reps")
    lines = str(error.value).splitlines()
    assert lines == [
        "reps.csv: column 'rep_id' must be unique; rows 2, 3 share the ids R1.",
        "reps.csv: column 'home_lat' is empty in row 3; fill it in.",
        "reps.csv: required column 'capacity' is missing (columns present: rep_id, name, home_lat, "
        "home_lon). Rename the column in the file, or map yours in the params under "
        "'columns: reps: capacity: <your column>'.",
    ]


def test_a_valid_table_comes_back_typed() -> None:
    frame = pd.DataFrame(
        {"date": ["2026-01-31", " 2026-02-28"], "account_id": ["7.0", "A2"], "amount": ["1,200", "3"]}
    )
    typed = validate_table(frame, Path("sales.csv"), "sales")
    assert typed["account_id"].tolist() == ["7", "A2"]
    assert typed["amount"].tolist() == [1200.0, 3.0]
    assert pd.api.types.is_datetime64_any_dtype(typed["date"])


def test_integral_ids_are_the_pattern_applied_to_every_id() -> None:
    # The pattern now runs only on ids ending in ".0": every other id must come back as it was.
    raw = ["7.0", " 013.0 ", "-4.0", "--5.0", "7.00", "7.0.0", "A7.0", "٣.0", "7.5", "70", "", None, "x.0\n"]
    values = pd.Series(raw * 50, dtype=object)
    expected = ["" if value is None else re.sub(INTEGRAL_FLOAT, r"\1", value.strip()) for value in values]
    ids = _integral_ids(_text(values))
    assert ids.dtype == object
    assert ids.tolist() == expected
    assert ids.tolist()[:6] == ["7", "013", "-4", "--5", "7.00", "7.0.0"]
    assert ids.tolist()[7] == "٣"  # an Arabic-Indic digit is a digit to the pattern too
