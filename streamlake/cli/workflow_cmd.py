"""`streamlake workflow`: the pipeline's workflows (graphs of jobs with triggers): list them,
run one now, serve their triggers, and show past runs."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from streamlake.cli.context import CliContext, cli_context, notifying, publishing
from streamlake.config.pipeline import Workflow
from streamlake.errors import EXIT_JOB_FAILED, UsageError
from streamlake.metrics import MetricsPublisher
from streamlake.notifications import Notifier
from streamlake.schedule import parse_schedule

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from batch.workflow import RunOutcome, StepOutcome, WorkflowRunner
    from streamlake.cli.workflow_jobs import WorkflowJobs
    from streamlake.lake.workflow_runs import Trigger, WorkflowRunView

log = logging.getLogger(__name__)

app = typer.Typer(help="Workflows: graphs of jobs with triggers.", no_args_is_help=True)

STATE_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "timeout": "red",
    "lost": "red",
    "running": "cyan",
    "stopped": "yellow",
    "skipped": "dim",
    "waiting": "dim",
}


def describe_step(workflow: Workflow, job: str) -> str:
    """A job and what it waits for, in words: ``curate (after compact)``."""
    step = workflow.graph()[job]
    words = {"on_success": "after", "on_failure": "if failed:", "on_completion": "once ended:"}
    waits = [
        f"{words[kind]} {', '.join(getattr(step, kind))}" for kind in words if getattr(step, kind)
    ]
    return f"{job} ({'; '.join(waits)})" if waits else job


def describe_graph(workflow: Workflow) -> str:
    if workflow.steps is not None:
        return " → ".join(workflow.steps)
    return ", ".join(describe_step(workflow, job) for job in workflow.order())


def triggers_of(workflow: Workflow) -> str:
    found = [workflow.schedule] if workflow.schedule else []
    if workflow.on_arrival:
        found.append(f"new files of {workflow.on_arrival}")
    return ", ".join(found) or "manual"


@app.command("list")
def list_command(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Each workflow: its graph of jobs, its triggers and its next scheduled time (UTC)."""
    context = cli_context(ctx)
    workflows = context.config().pipeline.workflows
    now = datetime.now(UTC)
    upcoming = {
        name: parse_schedule(w.schedule).next_after(now) if w.schedule else None
        for name, w in workflows.items()
    }
    if as_json:
        rows = [
            {
                "workflow": name,
                "steps": list(workflow.graph()),
                "jobs": {
                    job: {
                        kind: getattr(step, kind)
                        for kind in ("on_success", "on_failure", "on_completion")
                    }
                    for job, step in workflow.graph().items()
                },
                "schedule": workflow.schedule,
                "on_arrival": workflow.on_arrival,
                "next": (at := upcoming[name]) and at.isoformat(),
            }
            for name, workflow in workflows.items()
        ]
        print(json.dumps(rows))
        return
    if not workflows:
        context.console.print("the pipeline declares no workflow")
        return
    table = Table(title="workflows")
    for column in ("workflow", "jobs", "triggers", "next run (UTC)"):
        table.add_column(column, overflow="fold")
    for name, workflow in workflows.items():
        at = upcoming[name]
        table.add_row(
            name,
            describe_graph(workflow),
            triggers_of(workflow),
            f"{at:%Y-%m-%d %H:%M}" if at else "",
        )
    context.console.print(table)


def workflow_named(context: CliContext, name: str) -> Workflow:
    workflows = context.config().pipeline.workflows
    if name not in workflows:
        raise UsageError(
            f"no workflow named {name!r}",
            f"workflows of the pipeline: {', '.join(workflows) or 'none'}",
        )
    return workflows[name]


class RunDisplay:
    """The jobs of a run as they go, for rich's Live display."""

    def __init__(self, name: str, workflow: Workflow, notes: dict[str, str]) -> None:
        self.name = name
        self.jobs = workflow.order()
        self.steps: dict[str, StepOutcome] = {}
        self.notes: dict[str, str] = {}
        self.job_lines = notes  # the running batch job's own progress lines
        self.started = {job: 0.0 for job in self.jobs}

    def update(self, job: str, step: StepOutcome, note: str) -> None:
        if step.state == "running" and self.steps.get(job) is None:
            self.started[job] = time.monotonic()
        self.steps[job] = step
        self.notes[job] = note

    def __rich__(self) -> RenderableType:
        table = Table(title=f"workflow {self.name}", title_justify="left")
        for column in ("job", "state", "attempts", "seconds", "detail"):
            table.add_column(column, overflow="fold")
        for job in self.jobs:
            step = self.steps.get(job)
            state = step.state if step else "waiting"
            seconds = step.seconds if step else None
            if step is not None and state == "running":
                seconds = time.monotonic() - self.started[job]
                note = self.job_lines.get(job) or self.notes.get(job, "")
            else:
                note = self.notes.get(job, "")
            style = STATE_STYLE.get(state, "")
            table.add_row(
                job,
                f"[{style}]{state}[/]" if style else state,
                str(step.attempts) if step and step.attempts else "",
                f"{seconds:.1f}" if seconds is not None else "",
                escape(note),
            )
        return table


class SharedSession:
    """One Spark session for every run `serve` starts, started at the first job needing
    it."""

    def __init__(self, context: CliContext) -> None:
        self.context = context
        self.session: SparkSession | None = None

    def get(self) -> SparkSession:
        from streamlake.spark_session import build_spark_session

        if self.session is None:
            settings = self.context.config().settings
            self.session = build_spark_session(settings, app_name="streamlake-workflow-serve")
        return self.session

    def stop(self) -> None:
        if self.session is not None:
            self.session.stop()


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM while the block runs."""
    from streaming.runtime import StopSignal

    signal = StopSignal()
    with signal.installed():
        yield signal.event


def execute_run(
    context: CliContext,
    name: str,
    trigger: Trigger,
    stop: threading.Event,
    live: bool,
    spark: Callable[[], SparkSession] | None = None,
) -> RunOutcome:
    """One run of workflow ``name`` with the command's own notifier and metrics."""
    with notifying(context) as notifier, publishing(context) as metrics:
        outcome, _ = run_workflow(context, name, trigger, stop, live, notifier, metrics, spark)
    return outcome


def run_workflow(
    context: CliContext,
    name: str,
    trigger: Trigger,
    stop: threading.Event,
    live: bool,
    notifier: Notifier,
    metrics: MetricsPublisher,
    spark: Callable[[], SparkSession] | None = None,
) -> tuple[RunOutcome, WorkflowJobs]:
    """One run of workflow ``name``, alone (refused while another process runs it), logged
    in ``_meta/workflow_runs``. Its jobs run on the session ``spark`` gives (the caller's to
    stop), or on one of the run's own. Returns the run and what ran its jobs (their batch
    reports)."""
    from batch.workflow import WorkflowRunner, run_alone
    from connectors.s3 import location_files
    from streamlake.cli.workflow_jobs import WorkflowJobs
    from streamlake.lake.leases import LEASES, TableLeases
    from streamlake.lake.workflow_runs import append_records

    config = context.config()
    pipeline, settings = config.pipeline, config.settings
    workflow = workflow_named(context, name)
    leases = TableLeases(location_files(settings.lake.meta_path(LEASES), settings))
    # This run's own stop: set by the command's (a signal), or when the lease is lost.
    run_stop, ended = threading.Event(), threading.Event()
    relay = threading.Thread(target=relay_stop, args=(stop, run_stop, ended), daemon=True)
    relay.start()
    with run_alone(leases, name, on_lost=run_stop.set):
        jobs = WorkflowJobs(name, pipeline, settings, notifier, metrics, spark_factory=spark)
        display = RunDisplay(name, workflow, jobs.progress)
        runner = WorkflowRunner(
            name,
            workflow,
            jobs,
            record=partial(append_records, settings.lake.meta_path("workflow_runs"), settings),
            notifier=notifier,
            trigger=trigger,
            progress=display.update if live else partial(log_step, name),
            stop=run_stop,
        )
        try:
            if live:
                with Live(display, console=context.console, refresh_per_second=4):
                    outcome = runner.run()
                context.console.print()
            else:
                outcome = runner.run()
        finally:
            ended.set()
            if not runner_stuck(runner):  # a stuck job's Spark is not pulled from under it
                jobs.close()
    return outcome, jobs


def runner_stuck(runner: WorkflowRunner) -> bool:
    return runner.outcome is not None and runner.outcome.stuck


def relay_stop(stop: threading.Event, run_stop: threading.Event, ended: threading.Event) -> None:
    """Set ``run_stop`` when ``stop`` is set, until ``ended``."""
    while not ended.wait(0.5):
        if stop.is_set():
            run_stop.set()
            return


def log_step(workflow: str, job: str, step: StepOutcome, note: str) -> None:
    log.info("workflow %s: %s %s%s", workflow, job, step.state, f" ({note})" if note else "")


@app.command("run")
def run_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A workflow of the pipeline, e.g. nightly.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the run as JSON.")] = False,
) -> None:
    """Run a workflow now: its jobs in dependency order, with retries and timeouts; a second
    run of the same workflow at the same time is refused. Exit 1 when a job failed."""
    context = cli_context(ctx)
    workflow_named(context, name)
    with stop_on_signals() as stop:
        outcome = execute_run(context, name, "manual", stop, live=not as_json)
    if as_json:
        print(json.dumps(outcome_dict(outcome), indent=2), flush=True)
    else:
        print_outcome(context.console, outcome)
    if outcome.state != "succeeded":
        raise typer.Exit(EXIT_JOB_FAILED)


def outcome_dict(outcome: RunOutcome) -> dict[str, Any]:
    return {
        "run_id": outcome.run_id,
        "workflow": outcome.workflow,
        "trigger": outcome.trigger,
        "state": outcome.state,
        "stopped": outcome.stopped,
        "jobs": [
            {
                "job": step.job,
                "state": step.state,
                "attempts": step.attempts,
                "seconds": step.seconds,
                "error": step.error,
            }
            for step in outcome.steps.values()
        ],
    }


def print_outcome(console: Console, outcome: RunOutcome) -> None:
    seconds = ((outcome.ended_at or outcome.started_at) - outcome.started_at).total_seconds()
    style = STATE_STYLE.get(outcome.state, "")
    console.print(
        f"workflow {outcome.workflow} run {outcome.run_id}: [{style}]{outcome.state}[/] "
        f"in {seconds:.1f}s",
        soft_wrap=True,
    )
    for job in outcome.failed_jobs:
        # One line each however long: scripts and logs read the reason from it.
        console.print(f"[red]{job}: {escape(outcome.steps[job].error or '')}[/]", soft_wrap=True)
    if outcome.stopped:
        console.print(f"[red]{escape(outcome.stopped)}[/]", soft_wrap=True)


@app.command("serve")
def serve_command(ctx: typer.Context) -> None:
    """Keep running and start workflows when their triggers fire (schedules, new files),
    until SIGINT or SIGTERM; a run under way is stopped at its running job's next safe
    point."""
    from batch.workflow_triggers import Arrivals, TriggerLoop
    from connectors.aws import aws_endpoint
    from streamlake.errors import LeaseHeldError, StreamlakeError

    context = cli_context(ctx)
    workflows = context.config().pipeline.workflows
    triggered = {n: w for n, w in workflows.items() if w.schedule or w.on_arrival}
    if not triggered:
        raise UsageError(
            "no workflow has a trigger to serve",
            "give a workflow a schedule or on_arrival, or run it with `workflow run`",
        )
    if logging.getLogger().level > logging.INFO:
        logging.getLogger("batch").setLevel(logging.INFO)
        log.setLevel(logging.INFO)

    sessions = SharedSession(context)
    with stop_on_signals() as stop:

        def start_run(name: str, trigger: Trigger) -> bool:
            context.console.print(f"{datetime.now(UTC):%H:%M:%S} {name}: started ({trigger})")
            try:
                outcome = execute_run(context, name, trigger, stop, False, sessions.get)
            except LeaseHeldError as exc:  # another process runs it
                context.err_console.print(f"{name}: not started: {exc}", soft_wrap=True)
                return False
            print_outcome(context.console, outcome)
            if outcome.stuck:
                raise StreamlakeError(
                    f"{outcome.stopped}: serve stops, so that nothing runs beside it",
                    "find in the job's log why it did not stop, then start serve again",
                )
            return True

        config = context.config()
        arrivals = Arrivals.of(config.pipeline, aws_endpoint(config.settings))
        context.console.print(
            f"serving {', '.join(f'{n} ({triggers_of(w)})' for n, w in triggered.items())}; "
            "stop with Ctrl-C or SIGTERM"
        )
        try:
            TriggerLoop(triggered, start_run, stop, arrivals).run()
        finally:
            sessions.stop()
    context.console.print("stopped")


@app.command("history")
def history_command(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Only this workflow's runs.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many runs.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Past runs, newest first: state, start, duration, and each job's outcome and error."""
    from streamlake.lake.workflow_runs import run_history

    context = cli_context(ctx)
    if name is not None:
        workflow_named(context, name)
    settings = context.config().settings
    runs = run_history(settings.lake.meta_path("workflow_runs"), settings, name, limit)
    if as_json:
        print(json.dumps([history_dict(run) for run in runs], indent=2, default=str), flush=True)
        return
    if not runs:
        context.console.print(f"no run of {name or 'any workflow'} yet")
        return
    print_history(context.console, runs)


def print_history(console: Console, runs: list[WorkflowRunView]) -> None:
    """Each run on a line, then a line per job (errors whole, whatever the width)."""
    for run in runs:
        record = run.record
        took = f" in {record.seconds:.1f}s" if record.seconds is not None else ""
        console.print(
            f"[bold]{escape(record.workflow)}[/] {record.run_id} ({record.trigger}), started "
            f"{record.started_at:%Y-%m-%d %H:%M:%S} UTC: {styled(run.state)}{took}",
            soft_wrap=True,
        )
        if record.error and not run.failed_jobs and run.state != "succeeded":
            console.print(f"  {escape(record.error)}", soft_wrap=True)
        width = max((len(j.record.job) for j in run.jobs), default=0)
        for job in run.jobs:
            tries = f", {job.attempts} tries" if job.attempts > 1 else ""
            secs = f" {job.record.seconds:.1f}s" if job.record.seconds is not None else ""
            error = f": {escape(job.record.error)}" if job.record.error else ""
            console.print(
                f"  {escape(job.record.job).ljust(width)}  {styled(job.record.state)}{secs}"
                f"{tries}{error}",
                soft_wrap=True,
            )


def styled(state: str) -> str:
    style = STATE_STYLE.get(state, "")
    return f"[{style}]{state}[/]" if style else state


def history_dict(run: WorkflowRunView) -> dict[str, Any]:
    record = run.record
    return {
        "run_id": record.run_id,
        "workflow": record.workflow,
        "trigger": record.trigger,
        "state": run.state,
        "started_at": record.started_at.isoformat(),
        "seconds": record.seconds,
        "error": record.error,
        "jobs": [
            {
                "job": j.record.job,
                "state": j.record.state,
                "attempts": j.attempts,
                "started_at": j.record.started_at.isoformat(),
                "seconds": j.record.seconds,
                "error": j.record.error,
            }
            for j in run.jobs
        ],
    }
