"""`streamlake report` in Debian's headless chromium: the page opens with no network and no
console error, and every chart draws with data. The lake here is written by the heartbeat
recorder and delta-rs directly (no Spark); the demo's end-to-end test renders the report of
a real run the same way."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from streamlake.config import load_config
from streamlake.lake.job_status import JobBeat, JobFigures, append_beats
from streamlake.lake.tables import QUARANTINE
from tests.browser import render_in_chromium
from tests.conftest import CONFIGS

pytestmark = pytest.mark.integration

# Screenshots land here, kept after the run (gitignored).
OUTPUT = Path(os.environ.get("STREAMLAKE_TEST_OUTPUT", "test-output"))


def heartbeats(now: datetime) -> list[JobBeat]:
    """Two streaming jobs beating for a minute, and two batch runs, one failed."""
    beats = []
    for step in range(7):
        at = now - timedelta(seconds=60 - 10 * step)
        common = ("r1", "h", 1, "running", now - timedelta(seconds=61), at, 10.0)
        orders = JobFigures(None, 2, 500 + 40 * step, 55.0, source_lag=900 - 150 * step)
        clicks = JobFigures(None, 1, 300, 30.0, source_lag_s=max(0.0, 12.0 - 2 * step))
        beats.append(JobBeat("ingest-orders", "ingest", *common, figures=orders))  # type: ignore[arg-type]
        beats.append(JobBeat("ingest-clickstream", "ingest", *common, figures=clicks))  # type: ignore[arg-type]
    for job, state, error in (("compact", "stopped", None), ("curate", "failed", "boom")):
        start = now - timedelta(seconds=50)
        beats.append(
            JobBeat(job, job, "r2", "h", 1, state, start, start + timedelta(seconds=8), 10.0, error)
        )
    return beats


def quarantine_rows(count: int, kind: str, rule: str | None) -> pa.Table:
    now = datetime.now(UTC)
    values = {
        "payload": [b"{}"] * count,
        "source": ["kafka"] * count,
        "stream": ["orders"] * count,
        "partition": ["0"] * count,
        "position": [str(n) for n in range(count)],
        "error_kind": [kind] * count,
        "rule": [rule] * count,
        "error": ["bad"] * count,
        "quarantined_at": [now] * count,
    }
    names = set(QUARANTINE.names)
    return pa.table({k: v for k, v in values.items() if k in names})


def streamlake_report(lake: Path, out: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLAKE")}
    env.update(
        {
            "STREAMLAKE__LAKE__ROOT": str(lake),
            "STREAMLAKE__LOCAL__ENABLED": "false",
            "STREAMLAKE__KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9",
        }
    )
    command = [sys.executable, "-m", "streamlake", "--config", str(CONFIGS), "report"]
    return subprocess.run(
        [*command, "--out", str(out)], capture_output=True, text=True, env=env, timeout=300
    )


def test_every_chart_of_a_lake_with_data_draws_in_chromium(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    settings = load_config("local", CONFIGS, environ={}).settings
    settings = settings.model_copy(
        update={"lake": settings.lake.model_copy(update={"root": str(lake)})}
    )
    append_beats(settings.lake.meta_path("job_status"), settings, heartbeats(datetime.now(UTC)))
    for table, rows in (
        ("orders", quarantine_rows(7, "rule", "amount_positive")),
        ("orders", quarantine_rows(3, "parse", None)),
        ("clickstream", quarantine_rows(4, "schema", None)),
    ):
        write_deltalake(str(lake / "quarantine" / table), rows, mode="append")

    out = tmp_path / "report.html"
    result = streamlake_report(lake, out)

    assert result.returncode == 0, result.stderr
    assert f"report written to {out}" in result.stdout.replace("\n", "")
    rendered = render_in_chromium(out, OUTPUT / "report" / "with-data.png")
    assert rendered.errors == []
    assert rendered.sections == [
        "Pipeline",
        "Throughput",
        "Source lag",
        "Quarantine",
        "Tables",
        "Job runs",
    ]
    titles = [chart["title"] for chart in rendered.charts]
    assert len(titles) == 6, titles
    for chart in rendered.charts:
        assert chart["traces_with_data"] > 0 and chart["marks"] > 0, chart
    # Self-contained: the page loads no script, style or font from anywhere.
    page = out.read_text()
    assert "<script src" not in page and "cdn." not in page.split("</script>")[-1]
    assert (OUTPUT / "report" / "with-data.png").stat().st_size > 10_000


def test_a_lake_with_nothing_yet_says_so_instead_of_drawing_empty_charts(
    tmp_path: Path,
) -> None:
    out = tmp_path / "report.html"
    result = streamlake_report(tmp_path / "lake", out)

    assert result.returncode == 0, result.stderr
    rendered = render_in_chromium(out, OUTPUT / "report" / "empty.png")
    assert rendered.errors == []
    assert len(rendered.charts) == 1  # the pipeline's graph, from its configuration
    assert rendered.charts[0]["marks"] > 0
    page = out.read_text()
    assert "No streaming job has written a heartbeat yet." in page
    assert "Nothing is quarantined." in page
