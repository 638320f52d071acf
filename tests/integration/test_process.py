"""raw -> processed + quarantine on the shared SparkSession: conservation by id, rules,
drift policies, CDC, and a property test that nothing a producer sends breaks the job."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from streamlake.lake.tables import BATCH_METRICS
from streamlake.produce.events import EventMix, events_for
from tests.support import lake_rows, with_lake, with_table, write_raw
from tests.support import run_process as process

pytestmark = [pytest.mark.integration, pytest.mark.spark]


def test_every_raw_record_is_processed_quarantined_or_a_counted_duplicate(
    spark: Any, settings: Any, loaded: Any, tmp_path: Path
) -> None:
    local = with_lake(settings, tmp_path)
    events = list(events_for("orders", EventMix(600, bad_ratio=0.1, duplicate_ratio=0.08, seed=11)))
    write_raw(spark, local, "orders", [e.payload for e in events], commits=2)
    process(spark, local, loaded.pipeline)

    processed = lake_rows(local, "processed", "orders")
    quarantined = lake_rows(local, "quarantine", "orders")
    metrics = lake_rows(local, "_meta", "batch_metrics")
    kept = {r["_position"] for r in processed}
    bad = {r["position"] for r in quarantined}
    assert not kept & bad
    dropped = set(map(str, range(600))) - kept - bad
    # Each dropped record is a copy of an event that processed holds under another position.
    ids_kept = {r["order_id"] for r in processed}
    for position in dropped:
        assert json.loads(events[int(position)].payload)["order_id"] in ids_kept
    assert len(processed) == len(ids_kept)
    assert sum(m["duplicates"] for m in metrics) == len(dropped) > 0
    # Bad events are all in quarantine, each with a kind and a reason; good ones never are.
    kinds = {e.kind for e in events}
    assert kinds == {"good", "bad", "duplicate"}
    for position, event in enumerate(events):
        if event.kind == "bad":
            assert str(position) in bad, event.payload[:80]
    assert all(r["error_kind"] in ("parse", "schema", "rule") and r["error"] for r in quarantined)
    assert {r["error_kind"] for r in quarantined} >= {"parse", "rule"}
    parse_error = next(r for r in quarantined if r["error_kind"] == "parse")
    assert parse_error["error"].startswith(("invalid JSON", "payload is not UTF-8"))
    row = processed[0]
    assert row["_source"] == "kafka" and row["_stream"] == "orders"
    assert row["event_date"] == row["created_at"].date()
    assert isinstance(row["items"], list) and row["items"][0]["qty"] >= 1


def test_replaying_a_batch_writes_nothing_twice(
    spark: Any, settings: Any, loaded: Any, tmp_path: Path
) -> None:
    from streaming.process import ProcessBatchWriter, ProcessTargets
    from streaming.transforms.spec import TableSpec

    local = with_lake(settings, tmp_path)
    events = list(events_for("orders", EventMix(50, bad_ratio=0.2, seed=5)))
    write_raw(spark, local, "orders", [e.payload for e in events])
    spec = TableSpec.of(spark, "orders", loaded.pipeline.tables["orders"])
    targets = ProcessTargets.of(local, "process-orders", "orders", checkpoint=None)
    raw = spark.read.format("delta").load(local.lake.table_path("raw", "orders"))
    writer = ProcessBatchWriter(spec, targets)
    writer(raw, 0)
    writer(raw, 0)  # the same batch again, as after a crash before the commit log entry
    targets.metrics.flush()
    total = len(lake_rows(local, "processed", "orders")) + len(
        lake_rows(local, "quarantine", "orders")
    )
    assert total == 50


def test_a_failed_metrics_write_fails_no_batch_and_its_row_goes_with_the_next(
    spark: Any, settings: Any, loaded: Any, tmp_path: Path
) -> None:
    """Metrics are written in the background; when the metrics table cannot be written
    (S3 down, say) the batch still commits, and the row is written with the next batch's."""
    from pyspark.sql import functions as F

    from streaming.process import ProcessBatchWriter, ProcessTargets
    from streaming.transforms.spec import TableSpec

    local = with_lake(settings, tmp_path)
    events = list(events_for("orders", EventMix(40, seed=12)))
    write_raw(spark, local, "orders", [e.payload for e in events])
    spec = TableSpec.of(spark, "orders", loaded.pipeline.tables["orders"])
    targets = ProcessTargets.of(local, "process-orders", "orders", checkpoint=None)
    metrics_write = targets.metrics.target.write
    attempts: list[int] = []

    def down_once(frame: Any, version: int, **options: Any) -> None:
        attempts.append(version)
        if len(attempts) == 1:
            raise RuntimeError("the metrics table's store is down")
        metrics_write(frame, version, **options)

    targets.metrics.target.write = down_once  # type: ignore[method-assign]
    raw = spark.read.format("delta").load(local.lake.table_path("raw", "orders"))
    first_half = F.col("position").cast("int") < 20
    writer = ProcessBatchWriter(spec, targets)
    writer(raw.where(first_half), 0)
    targets.metrics.flush()
    assert len(lake_rows(local, "processed", "orders")) == 20, "the batch committed"
    assert lake_rows(local, "_meta", "batch_metrics") == []
    writer(raw.where(~first_half), 1)
    targets.metrics.flush()

    metrics = sorted(lake_rows(local, "_meta", "batch_metrics"), key=lambda m: m["batch_id"])
    assert [m["batch_id"] for m in metrics] == [0, 1]
    assert [m["processed"] for m in metrics] == [20, 20]
    assert attempts == [0, 1], "one retry, carrying both rows"


def test_metrics_agree_with_the_data_after_a_failure_on_either_side_of_the_commit(
    spark: Any, settings: Any, loaded: Any, tmp_path: Path
) -> None:
    """A batch that fails before its data commits leaves no metrics; one that dies after
    its data committed gets, when Spark replays it, the counts its commit carries."""
    from dataclasses import replace

    from streaming.batch_metrics import MetricsRecorder
    from streaming.process import ProcessBatchWriter, ProcessTargets
    from streaming.transforms.spec import TableSpec

    class CrashError(Exception):
        pass

    def crash(*_args: Any, **_kwargs: Any) -> None:
        raise CrashError

    class FailingRecorder(MetricsRecorder):
        def record(self, *_args: Any) -> None:
            raise CrashError

    local = with_lake(settings, tmp_path)
    mix = EventMix(60, bad_ratio=0.2, duplicate_ratio=0.1, seed=8)
    write_raw(spark, local, "orders", [e.payload for e in events_for("orders", mix)])
    raw = spark.read.format("delta").load(local.lake.table_path("raw", "orders"))
    spec = TableSpec.of(spark, "orders", loaded.pipeline.tables["orders"])

    def writer(**broken: Any) -> ProcessBatchWriter:
        targets = ProcessTargets.of(local, "process-orders", "orders", checkpoint=None)
        if "processed" in broken:
            targets.processed.write = crash  # type: ignore[method-assign]
        if "metrics" in broken:
            failing = FailingRecorder(targets.metrics.job, targets.metrics.target)
            targets = replace(targets, metrics=failing)
        return ProcessBatchWriter(spec, targets)

    with pytest.raises(CrashError):
        writer(processed="fails")(raw, 0)
    assert lake_rows(local, "_meta", "batch_metrics") == []
    with pytest.raises(CrashError):
        writer(metrics="fails")(raw, 0)
    assert lake_rows(local, "_meta", "batch_metrics") == []

    writer()(raw, 0)  # the replay after the crash

    processed = lake_rows(local, "processed", "orders")
    quarantined = lake_rows(local, "quarantine", "orders")
    (metrics,) = lake_rows(local, "_meta", "batch_metrics")
    assert metrics["processed"] == len(processed) > 0
    assert sum(dict(metrics["quarantined_by_kind"]).values()) == len(quarantined) > 0
    assert metrics["duplicates"] == 60 - len(processed) - len(quarantined) > 0


@pytest.mark.parametrize(
    ("policy", "added_goes_to"),
    [("evolve", "column"), ("strict", "quarantine"), ("rescue", "_rescued")],
)
def test_drift_policies(
    spark: Any, settings: Any, loaded: Any, tmp_path: Path, policy: str, added_goes_to: str
) -> None:
    local = with_lake(settings, tmp_path)
    pipeline = with_table(loaded.pipeline, "clickstream", drift=policy, rules=[])
    base = {
        "event_id": "e1",
        "session_id": "s1",
        "customer_id": None,
        "event_type": "page_view",
        "url": "https://shop.example/p/1",
        "ts": "2026-11-26T07:00:00Z",
    }
    added = dict(base, event_id="e2", referrer="https://search.example", score=7)
    changed = dict(base, event_id="e3", ts={"not": "a timestamp"})
    payloads = [json.dumps(p).encode() for p in (base, added, changed)]
    write_raw(spark, local, "clickstream", payloads, stream="clickstream")
    process(spark, local, pipeline, "process-clickstream")

    processed = {r["event_id"]: r for r in lake_rows(local, "processed", "clickstream")}
    quarantined = {r["position"]: r for r in lake_rows(local, "quarantine", "clickstream")}
    assert quarantined["2"]["error_kind"] == "schema"  # a changed type, under every policy
    assert "ts" in quarantined["2"]["error"]
    if added_goes_to == "column":
        assert processed["e2"]["referrer"] == "https://search.example"
        assert processed["e2"]["score"] == 7
        assert processed["e1"]["referrer"] is None
    elif added_goes_to == "quarantine":
        assert quarantined["1"]["error_kind"] == "drift"
        assert "referrer" in quarantined["1"]["error"] and "score" in quarantined["1"]["error"]
        assert set(processed) == {"e1"}
    else:
        assert json.loads(processed["e2"]["_rescued"]) == {
            "referrer": "https://search.example",
            "score": "7",
        }
        assert processed["e1"]["_rescued"] is None


def test_cdc_changes_become_typed_rows_with_operation_and_sequence(
    spark: Any, settings: Any, loaded: Any, tmp_path: Path
) -> None:
    local = with_lake(settings, tmp_path)

    def change(
        name: str, seq: int, new: dict[str, Any] | None, old: dict[str, Any] | None
    ) -> bytes:
        image = lambda d: None if d is None else {k: {"S": v} for k, v in d.items()}  # noqa: E731
        return json.dumps(
            {
                "event_id": f"ev{seq}",
                "event_name": name,
                "keys": {"customer_id": {"S": "c1"}},
                "new_image": image(new),
                "old_image": image(old),
                "sequence_number": str(1000 + seq),
                "approximate_creation_time": "2026-11-26T07:00:00+00:00",
            }
        ).encode()

    first = {
        "customer_id": "c1",
        "name": "Ada",
        "email": "ada@mail.example",
        "country": "GB",
        "tier": "gold",
        "updated_at": "2026-11-26T06:59:00Z",
    }
    payloads = [
        change("INSERT", 1, first, None),
        change("MODIFY", 2, dict(first, tier="silver"), first),
        change("REMOVE", 3, None, dict(first, tier="silver")),
    ]
    write_raw(spark, local, "customers", payloads, stream="customers")
    process(spark, local, loaded.pipeline, "process-customers")
    rows = sorted(lake_rows(local, "processed", "customers"), key=lambda r: r["_sequence_number"])
    assert [r["_op"] for r in rows] == ["insert", "modify", "remove"]
    assert [r["customer_id"] for r in rows] == ["c1", "c1", "c1"]
    assert [r["tier"] for r in rows] == ["gold", "silver", None]
    assert rows[0]["updated_at"].isoformat().startswith("2026-11-26T06:59")
    assert lake_rows(local, "quarantine", "customers") == []


hostile = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    st.sampled_from(
        [
            b'{"order_id": ',
            b"[1, 2",
            b"NaN",
            b"Infinity",
            b'{"amount": NaN}',
            b'{"amount": Infinity}',
            b"\xff\xfe\xfd",
            b"null",
            b"[]",
            b'"text"',
        ]
    ),
    st.integers(1, 200).map(lambda depth: ("[" * depth + "]" * depth).encode()),
    st.integers(1, 60).map(lambda depth: ('{"a":' * depth + "1" + "}" * depth).encode()),
    st.integers(10_000, 200_000).map(lambda n: json.dumps({"order_id": "x" * n}).encode()),
    st.dictionaries(
        st.sampled_from(["order_id", "customer_id", "country", "items", "amount", "created_at"]),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(),
            st.floats(),
            st.text(max_size=20),
            st.lists(st.integers(), max_size=3),
        ),
    ).map(lambda d: json.dumps(d).encode()),
)


@hypothesis_settings(
    max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), database=None
)
@given(payloads=st.lists(hostile, min_size=1, max_size=25))
def test_hostile_payloads_each_land_somewhere_with_a_reason(
    spark: Any,
    settings: Any,
    loaded: Any,
    tmp_path_factory: pytest.TempPathFactory,
    payloads: list[bytes],
) -> None:
    local = with_lake(settings, tmp_path_factory.mktemp("hostile"))
    write_raw(spark, local, "orders", payloads)
    process(spark, local, loaded.pipeline)
    processed = lake_rows(local, "processed", "orders")
    quarantined = lake_rows(local, "quarantine", "orders")
    metrics = lake_rows(local, "_meta", "batch_metrics")
    assert len(processed) + len(quarantined) + sum(m["duplicates"] for m in metrics) == len(
        payloads
    )
    assert all(r["error_kind"] and r["error"] for r in quarantined)


def test_payloads_past_the_parsers_limits_are_quarantined_with_a_reason(
    spark: Any, settings: Any, loaded: Any, tmp_path: Path
) -> None:
    """Nesting past the JSON parsers' depth limits, a payload past VARIANT's 16 MiB, and
    duplicate keys: none may stop the job; each ends as a row with its reason."""
    local = with_lake(settings, tmp_path)
    good = json.loads(next(iter(events_for("orders", EventMix(1, seed=1)))).payload)
    payloads = {
        "arrays 2,000 deep": ("[" * 2_000 + "]" * 2_000).encode(),
        "arrays 100,000 deep": ("[" * 100_000 + "]" * 100_000).encode(),
        "objects 100,000 deep": ('{"a":' * 100_000 + "1" + "}" * 100_000).encode(),
        "17 MiB string": json.dumps({**good, "note": "x" * (17 << 20)}).encode(),
        "duplicate keys": json.dumps(good)[:-1].encode() + b', "order_id": "again"}',
    }
    write_raw(spark, local, "orders", list(payloads.values()))
    process(spark, local, loaded.pipeline)

    processed = lake_rows(local, "processed", "orders")
    quarantined = {int(r["position"]): r for r in lake_rows(local, "quarantine", "orders")}
    assert len(processed) + len(quarantined) == len(payloads)
    assert all(r["error_kind"] and r["error"] for r in quarantined.values())
    for position in (0, 1, 2):  # too deep for the parsers: not JSON they can read
        assert quarantined[position]["error_kind"] == "parse", quarantined[position]["error"]
    assert "nested deeper" in quarantined[1]["error"]
    # The 17 MiB string is a valid order with one more field: it is processed, not dropped.
    assert [r["_position"] for r in processed] == ["3"]
    assert quarantined[4]["error"] == "invalid JSON: duplicate key 'order_id' in an object"


def test_a_future_dated_event_is_quarantined_and_deduplication_goes_on(
    spark: Any, settings: Any, loaded: Any, tmp_path: Path
) -> None:
    """One event dated 2099 used to become the watermark's reference: every later event
    was late and the dedup scan looked at 2099 only, so a repeated order was kept twice."""
    local = with_lake(settings, tmp_path)
    future, repeated, untimed = (
        json.loads(e.payload) for e in events_for("orders", EventMix(3, seed=21))
    )
    future["created_at"] = "2099-01-01T00:00:00Z"
    del untimed["created_at"]
    first = [json.dumps(o).encode() for o in (future, repeated)]
    write_raw(spark, local, "orders", first)
    process(spark, local, loaded.pipeline)
    again = [json.dumps(o).encode() for o in (repeated, untimed)]
    write_raw(spark, local, "orders", again, first_position=2)
    process(spark, local, loaded.pipeline)

    processed = {r["order_id"]: r for r in lake_rows(local, "processed", "orders")}
    assert sorted(processed) == sorted([repeated["order_id"], untimed["order_id"]])
    assert not processed[repeated["order_id"]]["_late"]
    assert processed[untimed["order_id"]]["_event_time_missing"]
    assert not processed[repeated["order_id"]]["_event_time_missing"]
    (quarantined,) = lake_rows(local, "quarantine", "orders")
    assert (quarantined["error_kind"], quarantined["rule"]) == ("rule", "event_time_not_in_future")
    assert "2099-01-01" in quarantined["error"]
    metrics = lake_rows(local, "_meta", "batch_metrics")
    assert sum(m["duplicates"] for m in metrics) == 1
    assert sum(m["no_event_time"] for m in metrics) == 1


def test_records_without_an_event_id_are_never_taken_for_duplicates(
    spark: Any, settings: Any, loaded: Any, tmp_path: Path
) -> None:
    orders = [json.loads(e.payload) for e in events_for("orders", EventMix(3, seed=31))]
    payloads = [json.dumps(o).encode() for o in orders]
    # A table with no event id: the same offsets in two partitions are different records.
    no_id = with_table(loaded.pipeline, "orders", event_id=None)
    local = with_lake(settings, tmp_path / "no-id")
    write_raw(spark, local, "orders", payloads, partition="0")
    write_raw(spark, local, "orders", payloads, partition="1")
    process(spark, local, no_id)
    assert len(lake_rows(local, "processed", "orders")) == 6

    # A null event id says nothing about sameness: both such records are kept.
    rules = [r for r in loaded.pipeline.tables["orders"].rules if r.kind != "not_null"]
    nullable = with_table(loaded.pipeline, "orders", rules=rules)
    unkeyed = [json.dumps({**o, "order_id": None}).encode() for o in orders[:2]]
    local = with_lake(settings, tmp_path / "null-id")
    write_raw(spark, local, "orders", [*unkeyed, payloads[2], payloads[2]])
    process(spark, local, nullable)
    processed = lake_rows(local, "processed", "orders")
    assert sorted(str(r["order_id"]) for r in processed) == sorted(
        ["None", "None", orders[2]["order_id"]]
    )
    (metrics,) = lake_rows(local, "_meta", "batch_metrics")
    assert (metrics["processed"], metrics["duplicates"]) == (3, 1)


def test_metrics_an_earlier_version_wrote_as_text_become_typed_counts(
    spark: Any, settings: Any, tmp_path: Path
) -> None:
    from streaming.batch_metrics import ensure_metrics_table

    local = with_lake(settings, tmp_path)
    path = local.lake.meta_path("batch_metrics")
    # The first version's columns: counts by kind as text, no no_event_time.
    old_schema = ", ".join(
        f"{name} {'STRING' if kind.startswith('MAP') else kind}"
        for name, kind in BATCH_METRICS.columns
        if name != "no_event_time"
    )
    counts = (10, 7, 3, 0, 0, 0.3, True)
    old_rows = [("process-orders", 0, *counts, "parse=2,rule=1", None)]
    old_rows.append(("process-orders", 1, *counts, "", None))
    spark.createDataFrame(old_rows, old_schema).write.format("delta").save(path)

    ensure_metrics_table(spark, path)
    ensure_metrics_table(spark, path)  # a second start finds it typed and leaves it

    rows = sorted(lake_rows(local, "_meta", "batch_metrics"), key=lambda r: r["batch_id"])
    assert [dict(r["quarantined_by_kind"]) for r in rows] == [{"parse": 2, "rule": 1}, {}]
    assert [r["processed"] for r in rows] == [7, 7]
    assert [r["no_event_time"] for r in rows] == [None, None]


def test_an_event_older_than_the_watermark_is_kept_and_flagged_late(
    spark: Any, settings: Any, loaded: Any, tmp_path: Path
) -> None:
    """The watermark (10 minutes behind the newest event seen) flags what arrives later
    than that; a late event is still processed, with ``_late`` set."""
    from datetime import UTC, datetime, timedelta

    local = with_lake(settings, tmp_path)
    recent, old, fresh = (json.loads(e.payload) for e in events_for("orders", EventMix(3, seed=5)))
    now = datetime.now(UTC)
    recent["created_at"] = (now - timedelta(minutes=1)).isoformat()
    old["created_at"] = (now - timedelta(hours=3)).isoformat()
    fresh["created_at"] = (now - timedelta(minutes=2)).isoformat()
    write_raw(spark, local, "orders", [json.dumps(recent).encode()])
    process(spark, local, loaded.pipeline)
    write_raw(
        spark, local, "orders", [json.dumps(o).encode() for o in (old, fresh)], first_position=1
    )
    process(spark, local, loaded.pipeline)

    late = {r["order_id"]: r["_late"] for r in lake_rows(local, "processed", "orders")}
    assert late == {recent["order_id"]: False, old["order_id"]: True, fresh["order_id"]: False}
    assert sum(m["late"] for m in lake_rows(local, "_meta", "batch_metrics")) == 1


def test_an_event_repeated_in_a_later_batch_or_run_is_dropped(
    spark: Any, settings: Any, loaded: Any, tmp_path: Path
) -> None:
    """Batches that repeat nothing skip the lookup in processed (the run keeps the recent
    keys); a repeat in the run's next batch, or in a new run, is still found and dropped."""
    from streaming.process import ProcessBatchWriter, ProcessTargets
    from streaming.transforms.spec import TableSpec

    local = with_lake(settings, tmp_path)
    a, b, c, d = (e.payload for e in events_for("orders", EventMix(4, seed=21)))
    spec = TableSpec.of(spark, "orders", loaded.pipeline.tables["orders"])
    raw_path = local.lake.table_path("raw", "orders")
    from pyspark.sql import functions as F

    def batch(payloads: list[bytes], first: int) -> Any:
        write_raw(spark, local, "orders", payloads, first_position=first)
        positions = [str(first + i) for i in range(len(payloads))]
        return spark.read.format("delta").load(raw_path).where(F.col("position").isin(positions))

    def run() -> ProcessBatchWriter:
        return ProcessBatchWriter(spec, ProcessTargets.of(local, "process-orders", "orders", None))

    first_run = run()
    first_run(batch([a, b], 0), 0)
    first_run(batch([a, c], 2), 1)  # a again, in the same run
    first_run.targets.metrics.flush()
    second_run = run()
    second_run(batch([b, d], 4), 2)  # b again, after a restart
    second_run.targets.metrics.flush()

    ids = [r["order_id"] for r in lake_rows(local, "processed", "orders")]
    assert sorted(ids) == sorted(json.loads(p)["order_id"] for p in (a, b, c, d))
    kept = {r["order_id"]: r["_position"] for r in lake_rows(local, "processed", "orders")}
    assert kept[json.loads(a)["order_id"]] == "0" and kept[json.loads(b)["order_id"]] == "1"
    assert sum(m["duplicates"] for m in lake_rows(local, "_meta", "batch_metrics")) == 2
