"""What the global options decide, shared by every command; config is loaded once, lazily."""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import typer
from rich.console import Console

from connectors.aws import read_secret
from connectors.registry import check_pipeline
from streamlake.config import LoadedConfig, load_config
from streamlake.config.pipeline import Pipeline
from streamlake.lake.job_status import JobStatusRecorder
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
def publishing(
    context: CliContext, jobs: Mapping[str, str] | None = None, outcome_only: Collection[str] = ()
) -> Iterator[MetricsPublisher]:
    """The pipeline's metrics publisher for one command (CloudWatch when the pipeline names
    a namespace, Prometheus when the environment names a port, and the heartbeats of
    ``jobs``, name -> kind, in ``_meta/job_status``; those in ``outcome_only`` get a row when
    they end, see ``JobStatusRecorder``); at its end, the jobs' last heartbeat
    (failed when the command raised), what is queued is sent (waiting a bounded time) and
    points that could not be sent are reported on stderr."""
    from connectors.aws import aws_endpoint
    from connectors.cloudwatch import publisher_for
    from connectors.prometheus import PrometheusPublisher

    config = context.config()
    settings = config.settings
    publishers = [publisher_for(config.pipeline.metrics, aws_endpoint(settings))]
    port = settings.metrics.prometheus_port
    if port is not None:
        publishers.append(PrometheusPublisher(port).start())
    status = None
    if jobs:
        path = settings.lake.meta_path("job_status")
        interval = settings.metrics.heartbeat_s
        status = JobStatusRecorder(path, settings, jobs, interval, outcome_only).begin()
    publisher = PublisherGroup(publishers)
    if status is not None:
        publisher.publishers.append(status)
    try:
        yield publisher
    except BaseException as exc:
        if status is not None:
            # Interrupted: stopped like a SIGTERM'd job, not failed.
            status.finish(None if isinstance(exc, KeyboardInterrupt) else exc)
        raise
    finally:
        publisher.close()
        namespace = config.pipeline.metrics.namespace
        what = f"metric values for CloudWatch namespace {namespace}"
        failed = sum(p.failed for p in publishers)
        warn_unsent(context, failed, sum(p.sent for p in publishers), what)
        if status is not None:
            what = f"job heartbeat rows to {status.path}"
            warn_unsent(context, status.unwritten, status.written, what)


def heartbeat_of(pipeline: Pipeline, names: list[str], with_inline: bool = False) -> dict[str, str]:
    """The jobs a command runs that beat (name -> kind): those of ``names`` the pipeline
    declares, and with ``with_inline`` the process jobs that run inside them."""
    beating: dict[str, str] = {
        name: pipeline.jobs[name].kind for name in names if name in pipeline.jobs
    }
    if with_inline:
        tables = {pipeline.jobs[name].table for name in beating}
        beating |= {
            name: job.kind
            for name, job in pipeline.jobs.items()
            if job.kind == "process" and job.mode == "inline" and job.table in tables
        }
    return beating


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
