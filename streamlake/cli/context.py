"""What the global options decide, shared by every command; config is loaded once, lazily."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import typer
from rich.console import Console

from connectors.aws import read_secret
from connectors.registry import check_pipeline
from streamlake.config import LoadedConfig, load_config
from streamlake.metrics import MetricsPublisher, PublisherGroup
from streamlake.notifications import Notifier


@dataclass
class CliContext:
    env: str = "local"
    config_path: Path | None = None
    debug: bool = False
    console: Console = field(default_factory=Console)
    err_console: Console = field(default_factory=lambda: Console(stderr=True))
    _loaded: LoadedConfig | None = None

    def config(self) -> LoadedConfig:
        if self._loaded is None:
            loaded = load_config(
                self.env, self.config_path, environ=os.environ, read_secret=read_secret
            )
            check_pipeline(loaded.pipeline, str(loaded.config_dir / "pipeline.yaml"))
            self._loaded = loaded
        return self._loaded


@contextmanager
def notifying(context: CliContext) -> Iterator[Notifier]:
    """The pipeline's notifier for one command; at its end, what is queued is sent (waiting
    a bounded time) and notifications that could not be sent are reported on stderr."""
    from connectors.aws import aws_endpoint
    from connectors.sns import notifier_for

    config = context.config()
    notifier = notifier_for(config.pipeline.notifications, aws_endpoint(config.settings))
    try:
        yield notifier
    finally:
        notifier.close()
        topic = config.pipeline.notifications.topic
        warn_unsent(context, notifier.failed, notifier.sent, f"notifications to {topic}")


@contextmanager
def publishing(context: CliContext) -> Iterator[MetricsPublisher]:
    """The pipeline's metrics publisher for one command (CloudWatch when the pipeline names
    a namespace, Prometheus when the environment names a port); at its end, what is queued
    is sent (waiting a bounded time) and points that could not be sent are reported on
    stderr."""
    from connectors.aws import aws_endpoint
    from connectors.cloudwatch import publisher_for
    from connectors.prometheus import PrometheusPublisher

    config = context.config()
    publishers = [publisher_for(config.pipeline.metrics, aws_endpoint(config.settings))]
    port = config.settings.metrics.prometheus_port
    if port is not None:
        publishers.append(PrometheusPublisher(port).start())
    publisher = PublisherGroup(publishers)
    try:
        yield publisher
    finally:
        publisher.close()
        namespace = config.pipeline.metrics.namespace
        what = f"metric values for CloudWatch namespace {namespace}"
        warn_unsent(context, publisher.failed, publisher.sent, what)


def warn_unsent(context: CliContext, failed: int, sent: int, what: str) -> None:
    """One stderr line when some of what a command sends on the side could not be sent."""
    if failed:
        context.err_console.print(
            f"warning: {failed} of {failed + sent} {what} could not be sent (the job itself "
            "is unaffected)",
            soft_wrap=True,
        )


def cli_context(ctx: typer.Context) -> CliContext:
    obj = ctx.find_root().obj
    assert isinstance(obj, CliContext), "the root callback sets the context"
    return obj
