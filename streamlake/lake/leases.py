"""Table leases: which job works on a table's processed and quarantine data now, so that a
quarantine replay and the table's process job do not write them at the same time.

A lease is a small JSON file under ``<lake>/_meta/leases/``, renewed by its holder while it
runs and dropped when it stops; one a crashed holder left expires ``ttl_s`` after its last
renewal. Taking a lease checks, then writes: two jobs starting within the same instant
could both take it, which this does not rule out (S3 offers no lock without another
service); the process job's own checkpoint guard and Delta's transaction checks remain.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from streamlake.errors import LeaseHeldError
from streamlake.lake.files import LocationFiles
from streamlake.process_identity import started_at, still_running

DEFAULT_TTL_S = 120.0
# The leases' folder, as LakeSettings.meta_path(LEASES).
LEASES = "leases"


@dataclass(frozen=True)
class Lease:
    table: str
    holder: str  # a job name, e.g. process-orders, or replay-orders
    host: str
    pid: int
    renewed_at: float
    ttl_s: float
    # The holder process's start: with the pid, tells it from a later process given the
    # same pid (0: a lease written before this was recorded).
    pid_started_at: float = 0.0

    def expired(self, now: float) -> bool:
        return now > self.renewed_at + self.ttl_s


@dataclass
class TableLeases:
    """The leases under one location (``LakeSettings.meta_path('leases')``)."""

    files: LocationFiles
    clock: Callable[[], float] = field(default=time.time)

    def current(self, table: str) -> Lease | None:
        """The table's lease, None if there is none or it expired."""
        return self._valid(self.files.read(f"{table}.json"))

    def _valid(self, text: str | None) -> Lease | None:
        if text is None:
            return None
        try:
            lease = Lease(**json.loads(text))
        except (ValueError, TypeError):
            return None  # a lease cut short by a crash holds nothing
        return None if lease.expired(self.clock()) else lease

    def take(self, table: str, holder: str, ttl_s: float = DEFAULT_TTL_S) -> None:
        """Take or renew the table's lease for ``holder``; raise if another job holds it,
        or another process of the same job still runs on this host. Otherwise the same job
        takes over its own lease: a job restarted after a crash goes on."""
        held = self.current(table)
        if held is not None and held.holder == holder and self._other_live_process(held):
            raise LeaseHeldError(
                f"{holder} is already running (pid {held.pid} on {held.host}), working on {table}",
                f"wait for it to end, or stop pid {held.pid}",
                table=table,
                holder=held.holder,
            )
        if held is not None and held.holder != holder:
            raise LeaseHeldError(
                f"{held.holder} (pid {held.pid} on {held.host}) is working on {table}, "
                f"lease renewed {self.clock() - held.renewed_at:.0f}s ago",
                f"stop {held.holder} first, or wait: a lease its holder no longer renews "
                f"expires {held.ttl_s:.0f}s after its last renewal",
                table=table,
                holder=held.holder,
            )
        lease = Lease(
            table, holder, socket.gethostname(), os.getpid(), self.clock(), ttl_s, started_at()
        )
        self.files.write(f"{table}.json", json.dumps(asdict(lease)))

    def take_alone(self, name: str, holder: str, ttl_s: float = DEFAULT_TTL_S) -> None:
        """Take or renew lease ``name`` for this process, refusing while any other process
        holds it, the same job's included, on any host (one run at a time). A new lease is
        created atomically; one its holder left behind (expired, or its process gone from
        this host) is taken over, and read back to see who won a race to take it over."""
        # One read decides between creating and taking over: a file that appeared after it
        # is another run's, which the create then loses to.
        found = self.files.read(f"{name}.json")
        held = self._valid(found)
        if held is not None and not self._mine(held) and not self._dead_here(held):
            raise self._refusal(name, held)
        lease = Lease(
            name, holder, socket.gethostname(), os.getpid(), self.clock(), ttl_s, started_at()
        )
        text = json.dumps(asdict(lease))
        if found is None:
            if self.files.create(f"{name}.json", text):
                return
        else:
            self.files.write(f"{name}.json", text)
        won = self.current(name)
        if won is None or not self._mine(won):
            raise self._refusal(name, won or held or lease)

    @staticmethod
    def _mine(lease: Lease) -> bool:
        return (lease.host, lease.pid) == (socket.gethostname(), os.getpid())

    @staticmethod
    def _dead_here(lease: Lease) -> bool:
        return lease.host == socket.gethostname() and not still_running(
            lease.pid, lease.pid_started_at
        )

    def _refusal(self, name: str, held: Lease) -> LeaseHeldError:
        return LeaseHeldError(
            f"{held.holder} is already running (pid {held.pid} on {held.host}, lease renewed "
            f"{max(0.0, self.clock() - held.renewed_at):.0f}s ago)",
            f"wait for it to end, or stop pid {held.pid}: a lease its holder no longer renews "
            f"expires {held.ttl_s:.0f}s after its last renewal",
            table=name,
            holder=held.holder,
        )

    @staticmethod
    def _other_live_process(lease: Lease) -> bool:
        """A lease of another process on this host that is still alive. On another host
        liveness cannot be told, and the same job takes the lease over, as after a crash
        (a job restarted on another machine goes on at once)."""
        if lease.host != socket.gethostname() or lease.pid == os.getpid():
            return False
        return still_running(lease.pid, lease.pid_started_at)

    def release(self, table: str, holder: str) -> None:
        """Drop the table's lease if ``holder`` (this process) has it."""
        held = self.current(table)
        if held is not None and (held.holder, held.host, held.pid) == (
            holder,
            socket.gethostname(),
            os.getpid(),
        ):
            self.files.delete(f"{table}.json")
