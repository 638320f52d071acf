"""Typed configuration: the pipeline spec and per-environment settings."""

from __future__ import annotations

from streamlake.config.loader import LoadedConfig, load_config
from streamlake.config.pipeline import Pipeline
from streamlake.config.settings import Settings

__all__ = ["LoadedConfig", "Pipeline", "Settings", "load_config"]
