"""process-orders killed with SIGKILL at random points and restarted: every raw record
ends once in processed or quarantine, or is a counted duplicate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from streaming.checkpoint_guard import Recovery
from streamlake.errors import CheckpointError
from streamlake.produce.events import EventMix, events_for
from tests.support import (
    cli_job,
    kill_at_random_points,
    lake_rows,
    run_process,
    with_lake,
    write_raw,
)

pytestmark = [pytest.mark.integration, pytest.mark.spark]


# In `make soak`; `make test` kills every job at random in tests/e2e/test_chaos.py.
@pytest.mark.soak
def test_sigkill_and_restart_write_every_record_once(
    spark: Any, stack_env: dict[str, str], settings: Any, loaded: Any, tmp_path: Path
) -> None:
    local = with_lake(settings, tmp_path)
    events = list(events_for("orders", EventMix(600, bad_ratio=0.1, duplicate_ratio=0.05, seed=9)))
    write_raw(spark, local, "orders", [e.payload for e in events], commits=24)
    jobs = dict(loaded.pipeline.jobs)
    jobs["process-orders"] = jobs["process-orders"].model_copy(
        update={"trigger": "1 second", "max_files_per_trigger": 2}
    )
    pipeline = loaded.pipeline.model_copy(update={"jobs": jobs})
    job = cli_job(tmp_path, stack_env, pipeline, "process-orders")
    kill_at_random_points(job, rounds=2, commit_timeout_s=180)
    final = job.start("--available-now")
    assert final.wait(timeout=600) == 0, job.log.read_text()[-3000:]

    processed = lake_rows(local, "processed", "orders")
    quarantined = lake_rows(local, "quarantine", "orders")
    kept = [r["_position"] for r in processed]
    bad = [r["position"] for r in quarantined]
    assert len(kept) == len(set(kept)) and len(bad) == len(set(bad)), "a record was written twice"
    assert not set(kept) & set(bad)
    ids_kept = [r["order_id"] for r in processed]
    good_ids = {json.loads(e.payload)["order_id"] for e in events if e.kind != "bad"}
    assert sorted(ids_kept) == sorted(good_ids), "each good event once, its duplicates dropped"
    bad_positions = {str(i) for i, e in enumerate(events) if e.kind == "bad"}
    assert set(bad) == bad_positions, "quarantine holds exactly the bad records"


def test_a_checkpoint_restored_from_an_older_copy_stops_then_recovers_from_the_table(
    spark: Any, settings: Any, loaded: Any, tmp_path: Path
) -> None:
    """An older copy of the checkpoint would run its next batches under batch ids the table
    already holds, and Delta would skip them as written: the job refuses to start, and
    --recover from-table resumes after the last raw version the table recorded."""
    local = with_lake(settings, tmp_path)
    events = list(events_for("orders", EventMix(90, seed=4)))
    write_raw(spark, local, "orders", [e.payload for e in events[:30]], commits=1)
    run_process(spark, local, loaded.pipeline)
    checkpoint = Path(local.lake.checkpoint_path("process-orders"))
    old_copy = tmp_path / "old-checkpoint"
    shutil.copytree(checkpoint, old_copy)
    write_raw(spark, local, "orders", [e.payload for e in events[30:60]], first_position=30)
    run_process(spark, local, loaded.pipeline)
    shutil.rmtree(checkpoint)
    shutil.copytree(old_copy, checkpoint)
    write_raw(spark, local, "orders", [e.payload for e in events[60:]], first_position=60)

    with pytest.raises(CheckpointError, match="older than the table"):
        run_process(spark, local, loaded.pipeline)
    run_process(spark, local, loaded.pipeline, recover=Recovery.FROM_TABLE)

    ids = [r["order_id"] for r in lake_rows(local, "processed", "orders")]
    assert sorted(ids) == sorted(json.loads(e.payload)["order_id"] for e in events)
