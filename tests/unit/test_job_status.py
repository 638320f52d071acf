"""Job heartbeats: what the recorder writes to ``_meta/job_status`` from a job's metric
points, and how ``streamlake status`` judges a job from its newest row."""

from __future__ import annotations

import dataclasses
import os
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

from streamlake.config.pipeline import Notifications, Pipeline
from streamlake.config.settings import Settings
from streamlake.errors import JobError
from streamlake.lake.job_status import (
    JobBeat,
    JobFigures,
    JobStatusRecorder,
    RecentCounts,
    assess_jobs,
    latest_status,
    status_history,
)
from streamlake.metrics import MetricPoint, job_points, progress_points
from tests.support import one_source_pipeline

FIGURES = {f.name for f in dataclasses.fields(JobFigures)}


def recorder(tmp_path: Path, jobs: dict[str, str]) -> JobStatusRecorder:
    settings = Settings.model_validate({"kafka": {"bootstrap_servers": "127.0.0.1:9"}})
    # A long interval: the test writes every row itself.
    return JobStatusRecorder(str(tmp_path / "job_status"), settings, jobs, interval_s=3600)


def batch(job: str, rows: int, lag: int | None) -> list[MetricPoint]:
    fields = {"job": job, "rows": rows, "rows_per_s": rows / 2, "duration_ms": 2000}
    return progress_points({**fields, "source_lag": lag}, "events")


def test_rows_count_since_the_last_heartbeat_and_keep_the_latest_lag(tmp_path: Path) -> None:
    status = recorder(tmp_path, {"ingest-events": "ingest"}).begin()
    status.publish(batch("ingest-events", 100, 900))
    status.publish(batch("ingest-events", 50, 850))
    status.beat("running")
    status.beat("running")  # nothing since: no rows, the lag as it was
    status.finish()
    rows = status_history(status.path, status.settings)
    figures = [(r.state, r.figures.batches, r.figures.rows, r.figures.source_lag) for r in rows]
    assert figures == [
        ("running", 0, 0, None),
        ("running", 2, 150, 850),
        ("running", 0, 0, 850),
        ("stopped", 0, 0, 850),
    ]
    assert rows[-1].figures.rows_per_s == 25.0
    assert rows[-1].figures.last_batch_at is not None
    assert {r.run_id for r in rows} == {status.run_id}
    assert (rows[0].host, rows[0].pid) == (socket.gethostname(), os.getpid())


def test_a_failure_marks_the_job_it_names_and_stops_the_others(tmp_path: Path) -> None:
    jobs = {"ingest-events": "ingest", "process-events": "process"}
    status = recorder(tmp_path, jobs).begin()
    status.finish(JobError("the source went away", job="process-events"))
    latest = latest_status(status.path, status.settings)
    assert latest["process-events"].state == "failed"
    assert latest["process-events"].error == "job process-events: the source went away"
    assert latest["ingest-events"].state == "stopped"


def test_a_batch_job_ends_with_its_own_outcome(tmp_path: Path) -> None:
    status = recorder(tmp_path, {"compact": "compact"}).begin()
    status.publish(job_points("compact", 3.5, failed=True, rows=[]))
    status.beat("running")
    status.finish()
    assert latest_status(status.path, status.settings)["compact"].state == "failed"


def beat(job: str, state: str, age_s: float, **fields: object) -> JobBeat:
    now = datetime.now(UTC)
    values: dict[str, object] = {
        "job": job,
        "kind": "ingest",
        "run_id": "r",
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "state": state,
        "started_at": now - timedelta(hours=1),
        "beat_at": now - timedelta(seconds=age_s),
        "interval_s": 10.0,
        **{k: v for k, v in fields.items() if k not in FIGURES},
    }
    figures = JobFigures(**{k: v for k, v in fields.items() if k in FIGURES})  # type: ignore[arg-type]
    return JobBeat(**values, figures=figures)  # type: ignore[arg-type]


def test_status_tells_running_lagging_lost_and_failed_apart() -> None:
    pipeline: Pipeline = one_source_pipeline({"kind": "kafka", "topic": "t"})
    pipeline = pipeline.model_copy(
        update={"notifications": Notifications(source_lag_records=100, source_lag_seconds=60)}
    )
    now = datetime.now(UTC)
    views = {
        v.job: v
        for v in assess_jobs(
            pipeline,
            {
                "ingest-events": beat("ingest-events", "running", 5, source_lag=40),
                "behind": beat("behind", "running", 5, source_lag_s=75.0),
                "silent": beat("silent", "running", 31),
                "gone": beat("gone", "running", 1, pid=2**22 + 7),  # no such process
                "broken": beat("broken", "failed", 1, error="boom"),
                "done": beat("done", "stopped", 1, source_lag=5000),
            },
            {"ingest-events": RecentCounts(3, 4)},
            now,
        )
    }
    assert (views["ingest-events"].state, views["ingest-events"].unhealthy) == ("running", False)
    assert views["ingest-events"].recent == RecentCounts(3, 4)
    assert views["behind"].lagging == ("75.0 s", "60 s") and views["behind"].unhealthy
    assert views["silent"].state == "lost"  # three intervals without a heartbeat
    assert views["gone"].state == "lost"  # its process is gone from this host
    assert views["broken"].state == "failed" and views["broken"].unhealthy
    # A stopped job is not lagging, whatever its last lag was.
    assert (views["done"].state, views["done"].unhealthy) == ("stopped", False)


def test_a_batch_job_among_others_gets_one_row_when_it_ends(tmp_path: Path) -> None:
    jobs = {"ingest-events": "ingest", "compact": "compact"}
    status = JobStatusRecorder(
        str(tmp_path / "job_status"),
        Settings.model_validate({"kafka": {"bootstrap_servers": "127.0.0.1:9"}}),
        jobs,
        interval_s=3600,
        outcome_only=["compact"],
    ).begin()
    status.beat("running")
    status.publish(job_points("compact", 4.0, failed=False, rows=[]))
    status.beat("running")
    status.finish()
    rows = [
        (r.job, r.state) for r in status_history(status.path, status.settings) if r.job == "compact"
    ]
    assert rows == [("compact", "stopped")]
    (compact,) = [r for r in status_history(status.path, status.settings) if r.job == "compact"]
    assert 3.5 < (compact.beat_at - compact.started_at).total_seconds() < 60
