"""`quarantine replay`: after a rule is fixed, the records it rejected move to processed
exactly once, also when a replay crashed half-way and when it is run twice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from batch.quarantine_replay import (
    append_new_events,
    as_raw_rows,
    replay_app_id,
    replay_quarantine,
)
from streaming.transforms.check import check, passed
from streaming.transforms.shape import processed_rows
from streaming.transforms.spec import TableSpec
from streamlake.config.pipeline import Pipeline, Rule
from streamlake.lake.spark_delta import IdempotentDeltaAppend
from streamlake.produce.events import EventMix, events_for
from tests.support import lake_rows, run_process, with_lake, with_table, write_raw

pytestmark = [pytest.mark.integration, pytest.mark.spark]


def with_currencies(pipeline: Pipeline, currencies: list[str]) -> Pipeline:
    rules = [
        Rule(name=r.name, kind=r.kind, column=r.column, values=currencies)
        if r.name == "currency_known"
        else r
        for r in pipeline.tables["orders"].rules
    ]
    return with_table(pipeline, "orders", rules=rules)


def order_ids(rows: list[dict[str, Any]]) -> list[str]:
    return sorted(r["order_id"] for r in rows)


def quarantined_positions(local: Any) -> dict[str, str | None]:
    return {r["position"]: r["rule"] for r in lake_rows(local, "quarantine", "orders")}


def test_replay_moves_fixed_records_once_even_after_a_crash_and_a_second_run(
    spark: Any, settings: Any, loaded: Any, tmp_path: Path
) -> None:
    local = with_lake(settings, tmp_path)
    strict = with_currencies(loaded.pipeline, ["EUR", "USD"])
    events = list(events_for("orders", EventMix(300, bad_ratio=0.1, duplicate_ratio=0.1, seed=3)))
    write_raw(spark, local, "orders", [e.payload for e in events])
    run_process(spark, local, strict)

    before = quarantined_positions(local)
    rejected = {p for p, rule in before.items() if rule == "currency_known"}
    other_bad = {p for p, rule in before.items() if rule != "currency_known"}
    assert rejected and other_bad
    processed_before = lake_rows(local, "processed", "orders")
    payload = {str(i): json.loads(e.payload) for i, e in enumerate(events) if e.kind != "bad"}
    fixed_ids = {payload[p]["order_id"] for p in rejected}

    fixed = with_currencies(loaded.pipeline, ["EUR", "USD", "GBP", "SEK", "PLN"])
    # A replay that crashed after appending to processed, before deleting from quarantine.
    spec = TableSpec.of(spark, "orders", fixed.tables["orders"])
    fields = list(spec.fields)
    quarantine = spark.read.format("delta").load(local.lake.table_path("quarantine", "orders"))
    checked = check(
        as_raw_rows(spark, quarantine, local.lake.table_path("raw", "orders")), spec, fields
    )
    target = IdempotentDeltaAppend(
        local.lake.table_path("processed", "orders"), replay_app_id("orders"), ("event_date",)
    )
    moved, _ = append_new_events(spec, target, processed_rows(passed(checked), spec, fields), 1)
    assert moved == len(fixed_ids)

    first = replay_quarantine(spark, "orders", fixed, local)
    second = replay_quarantine(spark, "orders", fixed, local)

    processed = lake_rows(local, "processed", "orders")
    ids = order_ids(processed)
    assert len(ids) == len(set(ids)), "an event is in processed twice"
    assert set(ids) == {r["order_id"] for r in processed_before} | fixed_ids
    assert {r["order_id"] for r in processed_before}.isdisjoint(fixed_ids)
    assert set(quarantined_positions(local)) == other_bad
    # The crashed attempt had moved them; the replays only cleaned quarantine up.
    assert (first.moved, second.moved) == (0, 0)
    assert first.duplicates == len(rejected) - len(fixed_ids)
    assert first.examined == len(before) and second.examined == len(other_bad)
    assert sum(second.still_quarantined.values()) == len(other_bad)
    # Conservation still holds by position: processed + quarantine + counted duplicates.
    kept = {r["_position"] for r in processed}
    assert kept.isdisjoint(other_bad)
    for position in set(map(str, range(len(events)))) - kept - other_bad:
        assert payload[position]["order_id"] in set(ids)


def test_replay_without_a_fix_moves_nothing(
    spark: Any, settings: Any, loaded: Any, tmp_path: Path
) -> None:
    local = with_lake(settings, tmp_path)
    events = list(events_for("orders", EventMix(80, bad_ratio=0.25, seed=8)))
    write_raw(spark, local, "orders", [e.payload for e in events])
    run_process(spark, local, loaded.pipeline)
    before = quarantined_positions(local)
    processed_before = order_ids(lake_rows(local, "processed", "orders"))

    result = replay_quarantine(spark, "orders", loaded.pipeline, local)

    assert result.moved == 0 and result.examined == len(before) > 0
    assert quarantined_positions(local) == before
    assert order_ids(lake_rows(local, "processed", "orders")) == processed_before


def test_replay_refuses_to_run_while_the_process_job_holds_the_table(
    spark: Any, settings: Any, loaded: Any, tmp_path: Path
) -> None:
    from streaming.process import process_job
    from streamlake.errors import LeaseHeldError

    local = with_lake(settings, tmp_path)
    events = list(events_for("orders", EventMix(20, bad_ratio=0.3, seed=2)))
    write_raw(spark, local, "orders", [e.payload for e in events])
    job = process_job(spark, "process-orders", loaded.pipeline, local)  # built: holds the lease
    try:
        with pytest.raises(LeaseHeldError, match=r"process-orders .* is working on orders"):
            replay_quarantine(spark, "orders", loaded.pipeline, local)
    finally:
        job.on_stop()
    assert replay_quarantine(spark, "orders", loaded.pipeline, local).examined == 0
