"""Market params: built-in files load, and every mistake is named with its key and file."""

from __future__ import annotations

from pathlib import Path

import pytest

from territory_lib.config import available_markets, counted, load_config, market_params_path, plural
from territory_lib.errors import ConfigError


def test_builtin_markets_load_with_paths_resolved_next_to_the_yaml() -> None:
    assert {"georgia", "north_carolina", "us_states"} <= set(available_markets())
    for name in available_markets():
        config = load_config(name)
        assert config.market == name
        assert config.data.units.is_absolute()
        assert config.data.units.parent.name == name


def test_a_market_may_be_named_by_the_path_of_its_yaml(make_market) -> None:
    path = make_market()
    assert market_params_path(str(path)) == path.resolve()
    assert load_config(path).data.sales == path.parent / "data" / "sales.csv"


def test_unknown_key_is_an_error_with_a_suggestion(make_market) -> None:
    path = make_market(territorie=5)
    with pytest.raises(ConfigError, match=r"unknown key 'territorie' \(did you mean 'territories'\?\)"):
        load_config(path)


def test_nested_unknown_key_is_named_with_its_path(make_market) -> None:
    path = make_market(design={"balance": [{"measure": "potential", "tolerence": 0.1}]})
    with pytest.raises(ConfigError, match=r"design\.balance\.0\.tolerence.*did you mean 'tolerance'"):
        load_config(path)


def test_missing_and_invalid_values_are_named(make_market, tmp_path: Path) -> None:
    path = make_market(territories=0, market="Bad Slug")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert str(path) in message
    assert "'territories'" in message and "'market'" in message


def test_yaml_syntax_error_gives_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("market: x\ntitle: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"broken\.yaml: not valid YAML at line"):
        load_config(path)


def test_unknown_market_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"Known markets: .*georgia"):
        load_config("atlantis")


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("market: !!python/object/apply:os.system ['echo pwned']\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


@pytest.mark.parametrize(("noun", "expected"), [("county", "counties"), ("state", "states"), ("day", "days")])
def test_plural(noun: str, expected: str) -> None:
    assert plural(noun) == expected


def test_builtin_params_match_their_datasets() -> None:
    from territory_lib.datasets import BUILTIN_MARKETS

    for name in available_markets():
        config = load_config(name)
        if config.builtin is None:
            continue
        builtin = BUILTIN_MARKETS[config.builtin]
        assert config.territories == builtin.default_territories, "one rep per territory"
        assert config.unit_label == builtin.unit_label


@pytest.mark.parametrize(
    ("n", "noun", "expected"),
    [
        (1, "county", "1 county"),
        (0, "county", "0 counties"),
        (4, "unit", "4 units"),
        (1200, "account", "1,200 accounts"),
    ],
)
def test_counted_uses_the_right_number(n: int, noun: str, expected: str) -> None:
    assert counted(n, noun) == expected


def test_monitor_chart_territories_defaults_and_is_checked(make_market) -> None:
    assert load_config(make_market()).monitor.chart_territories == 12
    assert load_config(make_market(monitor={"chart_territories": 4})).monitor.chart_territories == 4
    with pytest.raises(ConfigError, match=r"'monitor\.chart_territories'"):
        load_config(make_market(monitor={"chart_territories": 500}))
    with pytest.raises(ConfigError, match=r"monitor\.chart_territory.*did you mean 'chart_territories'"):
        load_config(make_market(monitor={"chart_territory": 4}))
