"""`streamlake demo` end to end, as a user runs it, on the shared local stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import duckdb
import pytest
from deltalake import DeltaTable

from streamlake.lake.tables import SOURCE_COORDINATES
from tests.browser import render_in_chromium
from tests.conftest import CONFIGS
from tests.integration.test_report import OUTPUT

pytestmark = pytest.mark.integration


def coordinates_in(path: Path, prefix: str) -> list[tuple[str, ...]]:
    """Each row's source coordinates (lineage columns in processed start with ``_``)."""
    names = [prefix + name for name in SOURCE_COORDINATES]
    rows = DeltaTable(str(path)).to_pyarrow_table(columns=names).to_pylist()
    return [tuple(row[name] for name in names) for row in rows]


def test_demo_accounts_for_every_produced_record(stack_env: dict[str, str], tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLAKE")}
    env.update(stack_env)
    env["STREAMLAKE__LAKE__ROOT"] = str(tmp_path / "lake")
    env["STREAMLAKE__LAKE__CHECKPOINT_ROOT"] = str(tmp_path / "checkpoints")

    def streamlake(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "streamlake", "--config", str(CONFIGS), *args]
        return subprocess.run(
            command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900
        )

    result = streamlake("demo", "--count", "400", "--seed", "3", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    output = json.loads(result.stdout.strip().splitlines()[-1])
    figures = output["sources"]
    assert figures["orders"]["produced"] == 400 and figures["clickstream"]["produced"] == 400
    assert figures["customers"]["produced"] == 100
    for source, line in figures.items():
        quarantined = sum(line["quarantined"].values())
        assert line["raw_added"] == line["produced"] == line["raw_total"], source
        assert line["processed"] + quarantined + line["duplicates"] == line["raw_added"], source
        assert line["processed"] > 0, source
    assert sum(figures["orders"]["quarantined"].values()) > 0  # the demo mixes in bad events
    for table in ("orders", "clickstream", "customers"):
        for layer in ("raw", "processed"):
            assert (tmp_path / "lake" / layer / table / "_delta_log").is_dir()
    # The figures agree with the tables themselves, read without Spark: each raw record is
    # in processed or in quarantine once, or is a duplicate the metrics counted.
    for table, line in figures.items():
        raw = coordinates_in(tmp_path / "lake" / "raw" / table, "")
        processed = coordinates_in(tmp_path / "lake" / "processed" / table, "_")
        quarantine_dir = tmp_path / "lake" / "quarantine" / table
        quarantined = coordinates_in(quarantine_dir, "") if quarantine_dir.is_dir() else []
        assert len(raw) == len(set(raw)) == line["raw_total"], table
        assert len(processed) == len(set(processed)) == line["processed"], table
        assert len(quarantined) == sum(line["quarantined"].values()), table
        assert not set(processed) & set(quarantined), table
        assert set(processed) | set(quarantined) <= set(raw), table
        assert len(raw) - len(processed) - len(quarantined) == line["duplicates"], table
    # The batch steps ran, and the curated tables agree with processed, read without Spark.
    assert [(b["job"], b["failed"]) for b in output["batch"]] == [
        ("compact", None),
        ("curate", None),
        ("quality", None),
        ("catalog", None),
        ("export", None),
    ]
    # They ran as the nightly workflow, whose run the run log keeps.
    nightly = output["workflow"]
    assert nightly["state"] == "succeeded", nightly
    assert [(j["job"], j["state"]) for j in nightly["jobs"]] == [
        (job, "succeeded") for job in ("compact", "curate", "quality", "catalog", "export")
    ]
    history = streamlake("workflow", "history", "nightly", "--json")
    assert history.returncode == 0, history.stdout + history.stderr
    [logged] = json.loads(history.stdout)
    assert (logged["run_id"], logged["state"]) == (nightly["run_id"], "succeeded")
    # Each batch job's start and success reached the notification topic's subscriber.
    published = Counter((n["event"], n["job"]) for n in output["notifications"])
    for job in ("compact", "curate", "quality", "catalog", "export"):
        assert published[("job_started", job)] == published[("job_succeeded", job)] == 1, job
    lake = tmp_path / "lake"
    tables = duckdb.connect()
    for layer, name in (("processed", "orders"), ("curated", "daily_revenue")):
        tables.register(name, DeltaTable(str(lake / layer / name)).to_pyarrow_table())
    expected = tables.execute(
        "select count(*), sum(amount) from orders where status <> 'cancelled'"
    ).fetchone()
    assert (
        tables.execute("select sum(orders), sum(revenue) from daily_revenue").fetchone() == expected
    )
    # The exports sent every big order and every daily revenue row once (a first export).
    (exported,) = [b for b in output["batch"] if b["job"] == "export"]
    sent = {t["table"]: t["rows_changed"] for t in exported["tables"]}
    (big,) = tables.execute("select count(*) from orders where amount > 400").fetchone() or (0,)
    (days,) = tables.execute("select count(*) from daily_revenue").fetchone() or (0,)
    assert sent == {
        "processed.orders -> shop-big-orders": big,
        "curated.daily_revenue -> shop-curated-orders": days,
    }
    # The KCL consumer sent an SNS alert for every purchase of this run (and the demo waited
    # for them all before it ended).
    clicks = DeltaTable(str(lake / "processed" / "clickstream")).to_pyarrow_table(
        columns=["event_id", "event_type"]
    )
    purchases = {row["event_id"] for row in clicks.to_pylist() if row["event_type"] == "purchase"}
    assert purchases and purchases <= set(output["purchase_alerts"])
    # The demo ends with the report of its run: every chart draws with data in chromium, and
    # the heartbeats behind it show each job's run.
    rendered = render_in_chromium(Path(output["report"]), OUTPUT / "report" / "demo.png")
    assert rendered.errors == []
    assert nightly["run_id"] in Path(output["report"]).read_text()  # its workflow run
    assert len(rendered.charts) == 6
    for chart in rendered.charts:
        assert chart["traces_with_data"] > 0 and chart["marks"] > 0, chart
    status = streamlake("status", "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    states = {row["job"]: row["state"] for row in json.loads(status.stdout)}
    for job in ("ingest-orders", "process-orders", "compact", "curate", "export"):
        assert states[job] == "stopped", (job, states)
    # Every batch's and job's metrics went to CloudWatch on the local server.
    assert output["metrics"]["namespace"] == "Streamlake/shop"
    assert output["metrics"]["sent"] > 0 and output["metrics"]["failed"] == 0
    customers = DeltaTable(str(lake / "curated" / "customers")).to_pyarrow_table()
    assert 0 < customers.num_rows <= figures["customers"]["processed"]
    assert "streamlake query" not in result.stdout  # --json prints the figures only
    # Local state is its owner's only: no file or folder the demo wrote is readable by others.
    written = [p for root in ("lake", "checkpoints") for p in (tmp_path / root).rglob("*")]
    assert written and all(p.stat().st_mode & 0o077 == 0 for p in written)
    # Nothing was fixed, so a replay through the CLI re-checks everything and moves nothing.
    replay = streamlake("quarantine", "replay", "orders", "--json")
    assert replay.returncode == 0, replay.stdout + replay.stderr
    result_json = replay.stdout[replay.stdout.index("{") :]
    replayed = json.loads(result_json)
    assert replayed["moved"] == 0
    assert replayed["examined"] == sum(figures["orders"]["quarantined"].values())
    assert replayed["still_quarantined"] == figures["orders"]["quarantined"]
