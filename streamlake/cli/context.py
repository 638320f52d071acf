"""What the global options decide, shared by every command; config is loaded once, lazily."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import typer
from rich.console import Console

from connectors.aws import read_secret
from connectors.registry import check_pipeline
from streamlake.config import LoadedConfig, load_config


@dataclass
class CliContext:
    env: str = "local"
    config_path: Path | None = None
    debug: bool = False
    console: Console = field(default_factory=Console)
    _loaded: LoadedConfig | None = None

    def config(self) -> LoadedConfig:
        if self._loaded is None:
            loaded = load_config(
                self.env, self.config_path, environ=os.environ, read_secret=read_secret
            )
            check_pipeline(loaded.pipeline, str(loaded.config_dir / "pipeline.yaml"))
            self._loaded = loaded
        return self._loaded


def cli_context(ctx: typer.Context) -> CliContext:
    obj = ctx.find_root().obj
    assert isinstance(obj, CliContext), "the root callback sets the context"
    return obj
