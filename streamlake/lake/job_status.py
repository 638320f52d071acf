"""Job heartbeats in ``_meta/job_status``: what each job was doing when it last said so.

A running job's ``JobStatusRecorder`` takes the job's metric points like any publisher and
writes one row per job every ``interval_s`` (and one when the job ends), through delta-rs
from a thread of its own: a write that fails is logged and the job goes on. ``latest_status``
and ``status_history`` read the rows back for ``streamlake status`` and the report; they
never ask Spark.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from streamlake.config.pipeline import Pipeline
from streamlake.config.settings import Settings
from streamlake.lake.delta_rs import append_contract_rows, read_rows
from streamlake.lake.tables import JOB_STATUS
from streamlake.metrics import MetricPoint, MetricsPublisher
from streamlake.process_identity import started_at as process_started_at
from streamlake.process_identity import still_running

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

State = Literal["running", "stopped", "failed"]
DEFAULT_INTERVAL_S = 15.0
# A running job silent for this many of its intervals is taken for lost.
LOST_AFTER_INTERVALS = 3
# How long a job's start waits for its first heartbeat row at most.
FIRST_BEAT_WAIT_S = 5.0
# Commits after which the writer compacts the table and checkpoints its log.
TIDY_EVERY = 200


@dataclass
class JobFigures:
    """What a heartbeat says of a job's batches: ``batches`` and ``rows`` since the previous
    heartbeat, the rest the latest known."""

    last_batch_at: datetime | None = None
    batches: int = 0
    rows: int = 0
    rows_per_s: float | None = None
    source_lag: int | None = None
    source_lag_s: float | None = None
    pending_versions: int | None = None


@dataclass(frozen=True)
class JobBeat:
    """One row of ``_meta/job_status`` (see ``JOB_STATUS``)."""

    job: str
    kind: str
    run_id: str
    host: str
    pid: int
    state: State
    started_at: datetime
    beat_at: datetime
    interval_s: float
    error: str | None = None
    figures: JobFigures = field(default_factory=JobFigures)
    # The process's start, which tells it from a later process given the same pid.
    pid_started_at: float = 0.0

    def lost(self, now: datetime, alive: bool | None = None) -> bool:
        """Whether a job this row calls running has stopped beating (killed, host gone).
        ``alive`` says whether its process still exists, where that can be known."""
        if self.state != "running":
            return False
        if alive is False:
            return True
        return now - self.beat_at > timedelta(seconds=LOST_AFTER_INTERVALS * self.interval_s)

    def row(self) -> dict[str, Any]:
        row = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "figures"}
        return row | asdict(self.figures)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> JobBeat:
        own = {f.name for f in fields(cls)}
        figures = JobFigures(**{f.name: row[f.name] for f in fields(JobFigures)})
        return cls(**{k: v for k, v in row.items() if k in own}, figures=figures)


@dataclass
class JobActivity:
    """One job's figures as its metric points come in, and a batch job's outcome point
    ("stopped": done, or "failed") with the start its duration point implies."""

    figures: JobFigures = field(default_factory=JobFigures)
    outcome: State | None = None
    started_at: datetime | None = None
    # Rows counted from the query's progress; until then (an inline process job has no
    # query of its own) from its batch counts.
    counted_by_query: bool = False

    def take(self, point: MetricPoint) -> None:
        name, value, figures = point.name, point.value, self.figures
        if name == "BatchRows" and not self.counted_by_query:
            self.counted_by_query, figures.batches, figures.rows = True, 0, 0
        if name == "BatchRows" or (name == "InputRows" and not self.counted_by_query):
            figures.batches += 1
            figures.rows += int(value)
            figures.last_batch_at = point.at
        elif name == "RowsPerSecond":
            figures.rows_per_s = value
        elif name == "SourceLag":
            figures.source_lag = int(value)
        elif name == "SourceLagAge":
            figures.source_lag_s = value
        elif name == "PendingVersions":
            figures.pending_versions = int(value)
        elif name == "JobFailed":
            self.outcome = "failed" if value else "stopped"
            figures.last_batch_at = point.at
        elif name == "JobDuration":
            self.started_at = point.at - timedelta(seconds=value)

    def taken(self) -> JobFigures:
        """The figures for a heartbeat; the counts start again from zero."""
        figures = replace(self.figures)
        self.figures.batches = self.figures.rows = 0
        return figures


class JobStatusRecorder(MetricsPublisher):
    """Heartbeats of the jobs one command runs (``jobs``: name -> kind). ``begin`` writes
    their first row and starts beating; ``finish`` writes their last (stopped, or failed
    with the error); points between feed the rows' counts and lag. The batch jobs in
    ``outcome_only`` (a command that runs them one after another among others) get one row
    each, when they end."""

    def __init__(
        self,
        path: str,
        settings: Settings,
        jobs: Mapping[str, str],
        interval_s: float = DEFAULT_INTERVAL_S,
        outcome_only: Collection[str] = (),
    ) -> None:
        super().__init__()
        self.path = path
        self.settings = settings
        self.jobs = dict(jobs)
        self.outcome_only = frozenset(outcome_only)
        self.interval_s = interval_s
        self.run_id = uuid.uuid4().hex[:12]
        self.started_at = datetime.now(UTC)
        self.pid_started_at = process_started_at()
        self._activity = {job: JobActivity() for job in self.jobs}
        self._reported: set[str] = set()  # outcome_only jobs whose row is written
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._first = threading.Event()
        self._thread: threading.Thread | None = None
        self._final: dict[str, str] = {}  # the last row's failed jobs, with their errors
        self._finished = False
        self._commits = 0
        # Rows written and rows that could not be (the points taken are not counted).
        self.written = 0
        self.unwritten = 0

    def begin(self) -> JobStatusRecorder:
        """Called when the jobs start: their first row, then one every ``interval_s``, all
        written by a thread of the recorder's own (a lake that does not answer never holds
        up the jobs: the first row is waited for a few seconds at most)."""
        self._thread = threading.Thread(target=self._beat_until_stopped, name="heartbeat")
        self._thread.daemon = True
        self._thread.start()
        self._first.wait(min(self.interval_s, FIRST_BEAT_WAIT_S))
        return self

    def submit(self, points: list[MetricPoint]) -> None:
        self.deliver(points)  # kept for the next row, not sent anywhere

    def deliver(self, points: list[MetricPoint]) -> None:
        with self._lock:
            for point in points:
                if point.job in self._activity:
                    self._activity[point.job].take(point)

    def finish(self, failure: BaseException | None = None, timeout_s: float = 30.0) -> None:
        """Called once when the command ends: each job's last row, failed for the job the
        failure names (every job when it names none), stopped for the others; waits at
        most ``timeout_s`` for it to be written."""
        if self._finished:
            return
        self._finished = True
        if failure is not None:
            named = getattr(failure, "job", "") or ""
            text = str(failure).strip().splitlines()[0][:500] if str(failure).strip() else ""
            error = text or type(failure).__name__
            failed = [named] if named in self.jobs else list(self.jobs)
            self._final = {job: error for job in failed}
        self._stop.set()
        if self._thread is None:
            self.beat("stopped", self._final)
            return
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.warning("the jobs' last heartbeat not written within %.0fs", timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        self.finish()

    def beat(self, state: State, failed: Mapping[str, str] | None = None) -> None:
        """Write one row per job: ``state``, or failed with its error for the jobs in
        ``failed``, or a batch job's own outcome."""
        now, failed = datetime.now(UTC), failed or {}
        beats = []
        with self._lock:
            for job, kind in self.jobs.items():
                activity = self._activity[job]
                started_at = self.started_at
                if job in self.outcome_only:
                    if activity.outcome is None or job in self._reported:
                        continue  # not ended yet, or its one row is written
                    self._reported.add(job)
                    started_at = activity.started_at or self.started_at
                job_state: State = "failed" if job in failed else activity.outcome or state
                host, pid = socket.gethostname(), os.getpid()
                beats.append(
                    JobBeat(
                        job,
                        kind,
                        self.run_id,
                        host,
                        pid,
                        job_state,
                        started_at,
                        now,
                        self.interval_s,
                        failed.get(job),
                        activity.taken(),
                        self.pid_started_at,
                    )
                )
        if beats:
            self.attempt_write(beats)

    def attempt_write(self, beats: list[JobBeat]) -> None:
        try:
            append_beats(self.path, self.settings, beats)
        except Exception as exc:  # a heartbeat never fails the job
            self.unwritten += len(beats)
            log.warning("job heartbeats not written to %s: %s", self.path, exc)
            return
        self.written += len(beats)
        self._commits += 1
        if self._commits % TIDY_EVERY == 0:
            tidy(self.path, self.settings)

    def _beat_until_stopped(self) -> None:
        self.beat("running")
        self._first.set()
        while not self._stop.wait(self.interval_s):
            self.beat("running")
        self.beat("stopped", self._final)


def append_beats(path: str, settings: Settings, beats: list[JobBeat]) -> None:
    """Append ``beats`` in one commit (creating the table at the first)."""
    append_contract_rows(path, settings, JOB_STATUS, [beat.row() for beat in beats])


def tidy(path: str, settings: Settings) -> None:
    """Bin-pack the table's small files and checkpoint its log, so that reading it stays
    quick however long jobs run; best effort (another writer may be at it)."""
    from streamlake.lake.delta_rs import open_delta_table

    try:
        table = open_delta_table(path, settings)
        table.optimize.compact()
        table.create_checkpoint()
    except Exception as exc:
        log.info("job status table not tidied this time: %s", exc)


def status_history(path: str, settings: Settings, since: datetime | None = None) -> list[JobBeat]:
    """Every row (from ``since`` on), oldest first; empty when no job ever beat."""
    table = read_rows(path, settings)
    if table is None:
        return []
    beats = [JobBeat.from_row(row) for row in table.to_pylist()]
    if since is not None:
        beats = [b for b in beats if b.beat_at >= since]
    return sorted(beats, key=lambda b: b.beat_at)


def latest_status(path: str, settings: Settings) -> dict[str, JobBeat]:
    """Each job's newest row."""
    newest: dict[str, JobBeat] = {}
    for beat in status_history(path, settings):
        newest[beat.job] = beat
    return newest


@dataclass(frozen=True)
class RecentCounts:
    """A process job's quarantined and duplicate rows over a recent window."""

    quarantined: int = 0
    duplicates: int = 0


def recent_counts(path: str, settings: Settings, since: datetime) -> dict[str, RecentCounts]:
    """Per job, the quarantined and duplicate rows of its batches recorded in
    ``_meta/batch_metrics`` (at ``path``) from ``since`` on."""
    table = read_rows(path, settings, ["job", "quarantined", "duplicates", "recorded_at"])
    found: dict[str, RecentCounts] = {}
    for row in [] if table is None else table.to_pylist():
        if row["recorded_at"] is None or row["recorded_at"] < since:
            continue
        seen = found.get(row["job"], RecentCounts())
        found[row["job"]] = RecentCounts(
            seen.quarantined + int(row["quarantined"] or 0),
            seen.duplicates + int(row["duplicates"] or 0),
        )
    return found


@dataclass(frozen=True)
class JobView:
    """A job as ``streamlake status`` shows it: ``state`` running, stopped, failed, lost
    (it stopped beating without saying it stopped) or never (no heartbeat yet); ``lagging``
    says how far past its threshold the job's source lag is (None: it is not)."""

    job: str
    kind: str
    state: str
    beat: JobBeat | None = None
    lagging: tuple[str, str] | None = None
    recent: RecentCounts = field(default_factory=RecentCounts)

    @property
    def unhealthy(self) -> bool:
        return self.state in ("failed", "lost") or self.lagging is not None


def assess_jobs(
    pipeline: Pipeline,
    latest: Mapping[str, JobBeat],
    recent: Mapping[str, RecentCounts],
    now: datetime,
) -> list[JobView]:
    """Every job of ``pipeline`` (and any other that beat), from its newest heartbeat."""
    views = []
    for name in [*pipeline.jobs, *sorted(set(latest) - set(pipeline.jobs))]:
        beat = latest.get(name)
        kind = pipeline.jobs[name].kind if name in pipeline.jobs else (beat.kind if beat else "")
        counts = recent.get(name, RecentCounts())
        if beat is None:
            views.append(JobView(name, kind, "never", recent=counts))
            continue
        state: str = beat.state
        if beat.lost(now, process_alive(beat.host, beat.pid, beat.pid_started_at)):
            state = "lost"
        lagging = None
        if state == "running":
            figures = beat.figures
            lagging = pipeline.notifications.lag_past_threshold(
                figures.source_lag, figures.source_lag_s
            )
        views.append(JobView(name, kind, state, beat, lagging, counts))
    return views


def process_alive(host: str, pid: int, pid_started_at: float) -> bool | None:
    """Whether the process that wrote a row still runs, when it ran on this host (None:
    cannot tell)."""
    if host != socket.gethostname():
        return None
    return still_running(pid, pid_started_at)
