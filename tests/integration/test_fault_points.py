"""Crashes at fixed points, made deterministic with the fault-point setting: the job kills
itself (SIGKILL) right after a Delta commit, before what must follow it; run again, it
writes every record exactly once."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from streamlake.produce.events import EventMix, events_for
from tests.integration.test_quarantine_replay import quarantined_positions, with_currencies
from tests.support import (
    CliJob,
    cli_job,
    committed_batches,
    coordinates,
    lake_rows,
    one_source_pipeline,
    raw_rows,
    run_process,
    with_lake,
    write_raw,
)

pytestmark = [pytest.mark.integration, pytest.mark.spark]

KILLED = -9


def crashing_at(job: CliJob, point: str) -> CliJob:
    return dataclasses.replace(job, env={**job.env, "STREAMLAKE__FAULT_POINT": point})


def test_ingest_killed_between_the_raw_commit_and_the_commit_log(
    stack_env: dict[str, str], settings: Any, tmp_path: Path
) -> None:
    bootstrap = settings.bootstrap_servers
    topic = f"t-{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, 2, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for n in range(300):
        producer.send(topic, value=json.dumps({"n": n}).encode())
    producer.flush()
    job = cli_job(tmp_path, stack_env, one_source_pipeline({"kind": "kafka", "topic": topic}))

    crashed = crashing_at(job, "after-raw-commit").run("--available-now")

    assert crashed.returncode == KILLED, crashed.stderr[-2000:]
    assert "fault point after-raw-commit reached" in crashed.stderr
    local = with_lake(settings, tmp_path)
    assert len(raw_rows(local)) == 300  # the batch landed...
    assert committed_batches(job.checkpoint) == 0  # ...but Spark never logged it done
    for n in range(300, 400):
        producer.send(topic, value=json.dumps({"n": n}).encode())
    producer.flush()
    producer.close()
    again = job.run("--available-now")
    assert again.returncode == 0, again.stderr[-3000:]
    rows = raw_rows(local)
    assert sorted(json.loads(r["payload"])["n"] for r in rows) == list(range(400))
    assert len(set(coordinates(rows))) == 400


@pytest.mark.parametrize(
    "point",
    # In `make soak`, for the suite's time budget: the inline kill below and the ingest
    # kill cover kills between idempotent commits in `make test`.
    [
        pytest.param("after-quarantine-commit", marks=pytest.mark.soak),
        pytest.param("after-processed-commit", marks=pytest.mark.soak),
    ],
)
def test_process_killed_between_its_commits(
    point: str, stack_env: dict[str, str], settings: Any, loaded: Any, spark: Any, tmp_path: Path
) -> None:
    local = with_lake(settings, tmp_path)
    events = list(events_for("orders", EventMix(200, bad_ratio=0.2, duplicate_ratio=0.1, seed=6)))
    write_raw(spark, local, "orders", [e.payload for e in events])
    job = cli_job(tmp_path, stack_env, loaded.pipeline, "process-orders")

    crashed = crashing_at(job, point).run("--available-now")

    assert crashed.returncode == KILLED, crashed.stderr[-2000:]
    assert lake_rows(local, "quarantine", "orders")
    held = lake_rows(local, "processed", "orders")
    assert bool(held) == (point == "after-processed-commit")
    again = job.run("--available-now")
    assert again.returncode == 0, again.stderr[-3000:]

    each_order_once(local, events)


def inline_orders(pipeline: Any, topic: str) -> Any:
    """The demo pipeline with orders from ``topic``, processed inside ingest-orders."""
    sources = {
        **pipeline.sources,
        "orders": pipeline.sources["orders"].model_copy(update={"topic": topic}),
    }
    process = pipeline.jobs["process-orders"].model_copy(update={"mode": "inline"})
    return pipeline.model_copy(
        update={"sources": sources, "jobs": {**pipeline.jobs, "process-orders": process}}
    )


@pytest.mark.parametrize(
    "point",
    [
        "after-raw-commit",
        pytest.param("after-quarantine-commit", marks=pytest.mark.soak),
        pytest.param("after-processed-commit", marks=pytest.mark.soak),
    ],
)
def test_inline_processing_killed_between_its_commits(
    point: str, stack_env: dict[str, str], settings: Any, loaded: Any, tmp_path: Path
) -> None:
    """One hop: ingest-orders writes raw, quarantine and processed in each batch. Killed
    after any of those commits and run again, every record is in raw once and in processed
    or quarantine once (or a counted duplicate)."""
    bootstrap = settings.bootstrap_servers
    topic = f"orders-{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, 1, 1)])
    admin.close()
    events = list(events_for("orders", EventMix(200, bad_ratio=0.2, duplicate_ratio=0.1, seed=9)))
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for event in events:
        producer.send(topic, value=event.payload)
    producer.flush()
    producer.close()
    local = with_lake(settings, tmp_path)
    job = cli_job(tmp_path, stack_env, inline_orders(loaded.pipeline, topic), "ingest-orders")

    crashed = crashing_at(job, point).run("--available-now")

    assert crashed.returncode == KILLED, crashed.stderr[-2000:]
    assert len(raw_rows(local, "orders")) == 200
    assert bool(lake_rows(local, "quarantine", "orders")) == (point != "after-raw-commit")
    assert bool(lake_rows(local, "processed", "orders")) == (point == "after-processed-commit")
    again = job.run("--available-now")
    assert again.returncode == 0, again.stderr[-3000:]

    assert len(set(coordinates(raw_rows(local, "orders")))) == len(raw_rows(local, "orders"))
    duplicates = each_order_once(local, events)
    assert duplicates, "the mix has duplicates"
    metrics = lake_rows(local, "_meta", "batch_metrics")
    assert {m["job"] for m in metrics} == {"process-orders"}
    assert sum(m["duplicates"] for m in metrics) == len(duplicates)


def each_order_once(local: Any, events: list[Any]) -> set[str]:
    """Every record of ``events`` (raw positions 0..) is in processed or quarantine once, or
    a counted duplicate of an event processed holds; the batch metrics agree. Returns the
    positions dropped as duplicates."""
    processed = lake_rows(local, "processed", "orders")
    quarantined = lake_rows(local, "quarantine", "orders")
    kept = [r["_position"] for r in processed]
    bad = [r["position"] for r in quarantined]
    assert len(kept) == len(set(kept)) and len(bad) == len(set(bad)), "a record twice"
    ids = [r["order_id"] for r in processed]
    assert len(ids) == len(set(ids)), "an event twice in processed"
    assert {str(p) for p, e in enumerate(events) if e.kind == "bad"} <= set(bad)
    assert not set(kept) & set(bad)
    duplicates = set(map(str, range(len(events)))) - set(kept) - set(bad)
    for position in duplicates:
        assert json.loads(events[int(position)].payload)["order_id"] in set(ids)
    metrics = lake_rows(local, "_meta", "batch_metrics")
    assert sum(m["processed"] for m in metrics) == len(processed)
    assert sum(m["quarantined"] for m in metrics) == len(quarantined)
    return duplicates


# In `make soak`: the suite's time budget; a close equivalent stays in `make test`.
@pytest.mark.soak
def test_replay_killed_between_its_append_and_its_delete(
    stack_env: dict[str, str], settings: Any, loaded: Any, spark: Any, tmp_path: Path
) -> None:
    local = with_lake(settings, tmp_path)
    events = list(events_for("orders", EventMix(150, bad_ratio=0.1, seed=12)))
    write_raw(spark, local, "orders", [e.payload for e in events])
    run_process(spark, local, with_currencies(loaded.pipeline, ["EUR", "USD"]))
    before = quarantined_positions(local)
    rejected = {p for p, rule in before.items() if rule == "currency_known"}
    assert rejected
    fixed = with_currencies(loaded.pipeline, ["EUR", "USD", "GBP", "SEK", "PLN"])
    job = cli_job(tmp_path, stack_env, fixed, "process-orders")

    def replay(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "streamlake", "--config", str(job.config_dir)]
        return subprocess.run(
            [*command, "quarantine", "replay", "orders", "--json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )

    crashed = replay({**job.env, "STREAMLAKE__FAULT_POINT": "after-replay-append"})
    assert crashed.returncode == KILLED, crashed.stderr[-2000:]
    assert set(quarantined_positions(local)) == set(before)  # nothing deleted yet
    again = replay(job.env)
    assert again.returncode == 0, again.stderr[-3000:]

    processed = lake_rows(local, "processed", "orders")
    ids = [r["order_id"] for r in processed]
    assert len(ids) == len(set(ids)), "an event twice in processed"
    assert set(quarantined_positions(local)) == set(before) - rejected
    moved = {r["_position"] for r in processed} & rejected
    assert moved and all(
        json.loads(events[int(p)].payload)["order_id"] in set(ids) for p in rejected
    )
