"""The agreement configuration: calendars, catalog, general contract, SLAs, OLAs, policies."""

from engine.config.agreement import AgreementConfig
from engine.config.loader import LoadedConfig, load_config, load_versioned
from engine.config.problems import ConfigError, Problem

__all__ = [
    "AgreementConfig",
    "ConfigError",
    "LoadedConfig",
    "Problem",
    "load_config",
    "load_versioned",
]
