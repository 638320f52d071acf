"""Background service processes, recorded by pid so that `down` stops only what `up` started.

A record holds the pid and the process's create time; a pid that was reused by another
process after ours died does not match and is never signalled.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from streamlake.process_identity import still_running

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceRecord:
    name: str
    pid: int
    create_time: float
    address: str
    log_file: str


def record_path(run_dir: Path, name: str) -> Path:
    return run_dir / f"{name}.json"


def read_record(run_dir: Path, name: str) -> ServiceRecord | None:
    path = record_path(run_dir, name)
    try:
        return ServiceRecord(**json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError):
        log.warning("ignoring unreadable service record %s", path)
        return None


def is_running(record: ServiceRecord) -> bool:
    return still_running(record.pid, record.create_time)


def start(
    name: str,
    command: list[str],
    run_dir: Path,
    log_file: Path,
    address: str,
) -> ServiceRecord:
    """Start ``command`` detached in its own session, its output appended to ``log_file``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as out:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    record = ServiceRecord(
        name=name,
        pid=process.pid,
        create_time=psutil.Process(process.pid).create_time(),
        address=address,
        log_file=str(log_file),
    )
    record_path(run_dir, name).write_text(json.dumps(asdict(record)))
    log.info("started %s (pid %s) at %s", name, process.pid, address)
    return record


def stop(
    run_dir: Path,
    name: str,
    timeout_s: float = 30.0,
    stop_signal: signal.Signals | None = None,
) -> bool:
    """Stop the recorded process and its group: ``stop_signal`` (SIGTERM unless given),
    then SIGKILL at the deadline.

    Returns True if a running process was stopped."""
    record = read_record(run_dir, name)
    if record is None:
        return False
    stopped = False
    if is_running(record):
        sent = stop_signal or signal.SIGTERM
        signal_group(record.pid, sent)
        if not wait_gone(record, timeout_s):
            log.warning(
                "%s (pid %s) ignored %s for %ss; killing", name, record.pid, sent.name, timeout_s
            )
            signal_group(record.pid, signal.SIGKILL)
            wait_gone(record, 10.0)
        stopped = True
        log.info("stopped %s (pid %s)", name, record.pid)
    record_path(run_dir, name).unlink(missing_ok=True)
    return stopped


def signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


def wait_gone(record: ServiceRecord, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not is_running(record):
            reap(record.pid)
            return True
        time.sleep(0.1)
    return not is_running(record)


def reap(pid: int) -> None:
    """Collect the exit status if the process is our child, so no zombie is left."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
