"""The root of the `streamlake` command: global options, sub-commands, error handling.

Exit codes: 0 success, 1 a job failed, 2 bad usage or bad configuration.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from streamlake import __version__
from streamlake.cli import (
    batch_cmd,
    catalog_cmd,
    config_cmd,
    consume_cmd,
    demo_cmd,
    deploy_cmd,
    local_cmd,
    produce_cmd,
    quarantine_cmd,
    query_cmd,
    report_cmd,
    status_cmd,
    stream_cmd,
    workflow_cmd,
)
from streamlake.cli.context import CliContext
from streamlake.errors import EXIT_JOB_FAILED, StreamlakeError
from streamlake.logs import LogFormat, setup_logging

log = logging.getLogger(__name__)

app = typer.Typer(
    name="streamlake",
    help="Streaming lakehouse ingestion: Kafka, Kinesis and DynamoDB Streams into Delta.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
app.add_typer(local_cmd.app, name="local")
app.add_typer(config_cmd.app, name="config")
app.add_typer(stream_cmd.app, name="stream")
app.add_typer(quarantine_cmd.app, name="quarantine")
app.add_typer(catalog_cmd.app, name="catalog")
app.add_typer(batch_cmd.app, name="batch")
app.add_typer(workflow_cmd.app, name="workflow")
app.add_typer(deploy_cmd.app, name="deploy")
app.command("produce")(produce_cmd.produce_command)
app.command("consume")(consume_cmd.consume_command)
app.command("query")(query_cmd.query_command)
app.command("demo")(demo_cmd.demo)
app.command("status")(status_cmd.status_command)
app.command("report")(report_cmd.report_command)

_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        print(f"streamlake {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    env: Annotated[
        str, typer.Option("--env", envvar="STREAMLAKE_ENV", help="Environment: configs/<env>.yaml.")
    ] = "local",
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            envvar="STREAMLAKE_CONFIG",
            help="A configs directory, or an environment file with pipeline.yaml beside it.",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress (INFO).")] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Log everything and show tracebacks on errors.")
    ] = False,
    log_format: Annotated[
        str, typer.Option("--log-format", help="Log lines as text or json.")
    ] = "text",
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Run streamlake's jobs and its local stack."""
    if log_format not in ("text", "json"):
        raise typer.BadParameter("must be text or json", param_hint="--log-format")
    fmt: LogFormat = "json" if log_format == "json" else "text"
    level = "DEBUG" if debug else "INFO" if verbose else "WARNING"
    setup_logging(level, fmt)
    _state["debug"] = debug
    ctx.obj = CliContext(env=env, config_path=config, debug=debug)


def main() -> None:
    """The command line: maps errors to one or two lines and an exit code (SystemExit).

    Usage errors, --help and Ctrl-C are handled by the command-line parser (exit 2, 0, 1)."""
    err = Console(stderr=True)
    # Local state (lake, checkpoints, broker data, logs) is readable by its owner only; the
    # JVMs and services this process starts inherit the mask.
    os.umask(0o077)
    code = 0
    try:
        app(prog_name="streamlake")
    except SystemExit as exc:
        code = exit_code_of(exc)
    except StreamlakeError as exc:
        if _state["debug"]:
            log.exception("failed")
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        code = exc.exit_code
    except Exception as exc:
        if _state["debug"]:
            raise
        err.print(
            f"[bold red]error:[/] unexpected {type(exc).__name__}: {escape(str(exc))} "
            "(rerun with --debug for the traceback)",
            highlight=False,
            soft_wrap=True,
        )
        code = EXIT_JOB_FAILED
    sys.exit(code)


def run() -> None:
    """The console script and ``python -m streamlake``: ``main``, then the process ends
    as ``exit_now`` ends it. (Tests call ``main``, which raises SystemExit.)"""
    try:
        main()
    except SystemExit as exc:
        exit_now(exit_code_of(exc))
    exit_now(0)


def exit_code_of(exc: SystemExit) -> int:
    if exc.code is None or isinstance(exc.code, int):
        return exc.code or 0
    print(exc.code, file=sys.stderr)
    return EXIT_JOB_FAILED


def exit_now(code: int) -> None:
    """End the process once its own work is done: its threads joined, its exit handlers
    and logs flushed, but without the interpreter's teardown, in which the native threads
    of delta-rs and Arrow now and then abort the process ("terminate called without an
    active exception") after a command has succeeded."""
    current = threading.current_thread()
    for thread in threading.enumerate():
        if thread is not current and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
