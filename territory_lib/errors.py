"""The exceptions Territory raises: one small hierarchy, every message says what to fix."""

from __future__ import annotations


class TerritoryError(Exception):
    """Base class of every error Territory raises on purpose."""


class ConfigError(TerritoryError):
    """A params YAML (or a command-line option) is missing, malformed or inconsistent."""


class DataError(TerritoryError):
    """A market data file is missing, unreadable, or has a bad column or value."""


class InfeasibleError(TerritoryError):
    """The constraints asked of an optimisation cannot all hold at once."""


class StepOrderError(TerritoryError):
    """A notebook step was run before the step whose results it reads."""


class MarketBusyError(TerritoryError):
    """Another run of the same market is in progress; the message names it."""
