"""The `territory` command: listing, checking, and errors that say what to fix (exit status 2)."""

from __future__ import annotations

import pytest

from territory_lib.cli import main
from territory_lib.runner import parse_steps


def test_markets_lists_the_builtin_markets(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["markets"]) == 0
    out = capsys.readouterr().out
    assert "georgia" in out and "built-in (georgia)" in out and "8 territories" in out


def test_check_validates_a_market(capsys: pytest.CaptureFixture[str], georgia_config) -> None:
    assert main(["check", "georgia"]) == 0
    assert "georgia: OK: 159 units, 2,400 accounts, 8 reps" in capsys.readouterr().out


def test_check_reports_bad_data_without_a_traceback(make_market, capsys: pytest.CaptureFixture[str]) -> None:
    path = make_market(columns={"reps": {"capacity": "headcount"}})
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "has no column 'headcount'" in err
    assert "Traceback" not in err


def test_unknown_market_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "atlantis"]) == 2
    assert "no market 'atlantis'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "steps"), [(None, [1, 2, 3, 4, 5]), ("2,3", [2, 3]), ("1-3", [1, 2, 3]), ("4", [4])]
)
def test_steps_option(text: str | None, steps: list[int]) -> None:
    assert parse_steps(text) == steps


@pytest.mark.parametrize("text", ["0", "6", "two", "3-9"])
def test_bad_steps_option_is_explained(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "georgia", "--steps", text]) == 2
    assert "--steps" in capsys.readouterr().err


def test_the_command_line_leaves_out_the_iri_parser_and_still_validates_notebooks() -> None:
    """jsonschema's "iri" check compiles a grammar as it is imported (1 s of every run); notebook
    validation never uses it, and still tells a broken notebook from a good one without it."""
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from territory_lib.cli import main\n"
        "main(['markets'])\n"
        "import jsonschema, nbformat\n"
        "nbformat.validate(nbformat.v4.new_notebook())\n"
        "broken = nbformat.v4.new_notebook()\n"
        "broken['cells'] = [{'cell_type': 'code', 'source': ''}]\n"
        "try:\n"
        "    nbformat.validate(broken)\n"
        "except nbformat.ValidationError:\n"
        "    print('broken')\n"
        "print(sys.modules['rfc3987_syntax'] is None, 'iri' in jsonschema.FormatChecker.checkers)\n"
    )
    printed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert printed.split()[-3:] == ["broken", "True", "False"]
