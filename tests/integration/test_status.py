"""A real `streamlake stream run` seen from outside while it runs and after: its Prometheus
endpoint serves the batches' values, `streamlake status` shows it running and lagging
(exit 1), then lost once killed (exit 1), then stopped and healthy after a clean run
(exit 0)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streamlake.config.pipeline import Notifications
from tests.integration.test_ingest_kafka import new_topic, produce
from tests.support import CliJob, cli_job, kill_hard, one_source_pipeline, poll

pytestmark = [pytest.mark.integration, pytest.mark.spark]

RECORDS = 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def status(job: CliJob) -> tuple[int, dict[str, dict[str, Any]]]:
    """`streamlake status --json`: its exit code and the jobs it shows, by name."""
    command = [sys.executable, "-m", "streamlake", "--config", str(job.config_dir)]
    result = subprocess.run(
        [*command, "status", "--json"], capture_output=True, text=True, env=job.env, timeout=60
    )
    assert result.returncode in (0, 1) and result.stdout.startswith("["), result.stderr
    return result.returncode, {row["job"]: row for row in json.loads(result.stdout)}


def scrape(port: int) -> dict[str, float]:
    """The endpoint's samples for the job, by metric name."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
    except OSError:
        return {}  # not serving yet
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.labels.get("job") == "ingest-events" and sample.labels.get("table") == "events"
    }


def test_prometheus_and_status_follow_a_running_job_its_kill_and_a_clean_run(
    settings: Any, stack_env: dict[str, str], tmp_path: Path
) -> None:
    bootstrap = settings.bootstrap_servers
    topic = new_topic(bootstrap, partitions=1)
    produce(bootstrap, topic, RECORDS)
    pipeline = one_source_pipeline(
        {"kind": "kafka", "topic": topic, "max_offsets_per_trigger": 15}, trigger="2 seconds"
    ).model_copy(update={"notifications": Notifications(source_lag_records=50)})
    port = free_port()
    job = cli_job(
        tmp_path,
        {
            **stack_env,
            "STREAMLAKE__METRICS__PROMETHEUS_PORT": str(port),
            "STREAMLAKE__METRICS__HEARTBEAT_S": "1",
        },
        pipeline,
    )
    code, jobs = status(job)
    assert (code, jobs["ingest-events"]["state"]) == (0, "never")

    process = job.start()
    try:
        # During the run: the rows counted so far and the lag add up to what was produced.
        def consistent() -> dict[str, float] | None:
            found = scrape(port)
            read = found.get("streamlake_batch_rows_total", 0)
            lag = found.get("streamlake_source_lag_records")
            return found if read > 0 and lag is not None and read + lag == RECORDS else None

        served = poll(consistent, 180, "the Prometheus endpoint to serve the batches")
        assert served["streamlake_source_lag_records"] > 50
        assert served["streamlake_batch_duration_seconds"] > 0

        def lagging() -> tuple[int, dict[str, Any]] | None:
            code, jobs = status(job)
            row = jobs["ingest-events"]
            return (code, row) if row["state"] == "running" and row["lagging"] else None

        code, row = poll(lagging, 60, "status to show the job running and lagging")
        assert code == 1
        assert row["source_lag"] > 50 and row["note"] == "lag past 50 records"
    finally:
        kill_hard(process)

    code, jobs = status(job)
    assert (code, jobs["ingest-events"]["state"]) == (1, "lost")
    assert "no heartbeat since" in jobs["ingest-events"]["note"]

    finished = job.run("--until-idle", "3")
    assert finished.returncode == 0, finished.stderr[-3000:]
    code, jobs = status(job)
    row = jobs["ingest-events"]
    assert (code, row["state"], row["lagging"], row["source_lag"]) == (0, "stopped", False, 0)
