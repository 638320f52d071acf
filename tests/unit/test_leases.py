"""Table leases: a replay and the table's process job do not write it at the same time."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from streamlake.errors import LeaseHeldError
from streamlake.lake.files import LocationFiles
from streamlake.lake.leases import TableLeases
from streamlake.process_identity import started_at


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def leases(tmp_path: Path, clock: Clock) -> TableLeases:
    return TableLeases(LocationFiles(str(tmp_path / "leases")), clock)


def test_a_held_lease_refuses_another_job_and_names_the_holder(tmp_path: Path) -> None:
    clock = Clock()
    leases(tmp_path, clock).take("orders", "process-orders", ttl_s=60)
    with pytest.raises(LeaseHeldError) as caught:
        leases(tmp_path, clock).take("orders", "replay-orders")
    assert caught.value.holder == "process-orders" and caught.value.table == "orders"
    assert "process-orders (pid" in str(caught.value) and "stop process-orders" in str(caught.value)
    leases(tmp_path, clock).take("customers", "replay-customers")  # other tables are free


def another_process(alive: bool) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    if not alive:
        process.kill()
        process.wait()
    return process


def test_the_same_job_takes_its_lease_over_after_a_crash(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "leases" / "orders.json"
    leases(tmp_path, clock).take("orders", "process-orders")
    crashed = json.loads(path.read_text())
    path.write_text(json.dumps({**crashed, "pid": another_process(alive=False).pid}))
    leases(tmp_path, clock).take("orders", "process-orders")
    assert json.loads(path.read_text())["renewed_at"] == clock.now


@pytest.mark.parametrize("started_earlier_s", [0, 3600])
def test_a_second_live_process_of_the_same_job_is_refused_unless_its_pid_was_reused(
    tmp_path: Path, started_earlier_s: int
) -> None:
    """A live process at the lease's pid holds it when it started as the lease says; one
    that started later got the pid of a holder that crashed, and holds nothing."""
    clock = Clock()
    path = tmp_path / "leases" / "export.big_orders.json"
    leases(tmp_path, clock).take("export.big_orders", "export")
    running = another_process(alive=True)
    try:
        held = json.loads(path.read_text())
        recorded = started_at(running.pid) - started_earlier_s
        path.write_text(json.dumps({**held, "pid": running.pid, "pid_started_at": recorded}))
        if started_earlier_s:
            leases(tmp_path, clock).take("export.big_orders", "export")
            assert json.loads(path.read_text())["pid"] != running.pid
        else:
            with pytest.raises(
                LeaseHeldError, match=f"export is already running \\(pid {running.pid}"
            ):
                leases(tmp_path, clock).take("export.big_orders", "export")
    finally:
        running.kill()
        running.wait()
    leases(tmp_path, clock).take("export.big_orders", "export")  # it ended: taken over


def test_an_unrenewed_lease_expires_and_a_released_one_is_gone(tmp_path: Path) -> None:
    clock = Clock()
    table = leases(tmp_path, clock)
    table.take("orders", "process-orders", ttl_s=60)
    clock.now += 30
    table.take("orders", "process-orders", ttl_s=60)  # renewed
    clock.now += 45
    assert table.current("orders") is not None
    clock.now += 30
    assert table.current("orders") is None
    table.take("orders", "replay-orders")
    table.release("orders", "process-orders")  # not its lease: kept
    assert table.current("orders") is not None
    table.release("orders", "replay-orders")
    assert table.current("orders") is None
    assert not (tmp_path / "leases" / "orders.json").exists()


class RacedFiles(LocationFiles):
    """A lease folder where another run creates the lease just after this one looked and
    found none (the race is staged: the other run is a live process, pid 1)."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.raced = False

    def read(self, name: str) -> str | None:
        found = super().read(name)
        if found is None and not self.raced:
            self.raced = True
            other = {
                "table": "workflow-nightly",
                "holder": "workflow nightly",
                "host": socket.gethostname(),
                "pid": 1,
                "renewed_at": 1_000.0,
                "ttl_s": 120.0,
                "pid_started_at": started_at(1),
            }
            super().create(name, json.dumps(other))
        return found


def test_a_run_alone_lease_created_by_another_run_meanwhile_is_not_written_over(
    tmp_path: Path,
) -> None:
    files = RacedFiles(str(tmp_path / "leases"))
    with pytest.raises(LeaseHeldError, match=r"workflow nightly is already running \(pid 1 on"):
        TableLeases(files, Clock()).take_alone("workflow-nightly", "workflow nightly")
    held = json.loads(files.read("workflow-nightly.json") or "{}")
    assert held["pid"] == 1
