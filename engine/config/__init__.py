"""The agreement configuration: calendars, catalog, general contract, SLAs, OLAs, policies."""

from engine.config.agreement import AgreementConfig
from engine.config.loader import load_config
from engine.config.problems import ConfigError, Problem

__all__ = ["AgreementConfig", "ConfigError", "Problem", "load_config"]
