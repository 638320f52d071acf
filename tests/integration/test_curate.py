"""`batch run curate` on real Delta tables: curated values against an independent
recomputation (delta-rs and DuckDB), incremental runs that touch only changed dates, and the
current-state tables against a real DynamoDB table's final state.

The processed tables are written here directly, in the processed contract's columns that
curate reads (declared columns, lineage, event_date, and the CDC columns), so that each test
controls exactly which rows arrive in which run."""

from __future__ import annotations

import itertools
import random
import sys
import tempfile
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from batch.jobs import BatchRun, run_batch_job
from batch.report import BatchReport
from connectors.aws import aws_endpoint
from streamlake.config import LoadedConfig
from streamlake.config.pipeline import Pipeline
from streamlake.config.settings import Settings
from streamlake.lake.delta_rs import read_rows
from tests.conftest import CONFIGS
from tests.support import append_processed, cli_env, lake_rows, with_lake, write_config_dir

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

DAY = date(2026, 11, 20)


def curate(
    spark: SparkSession, settings: Settings, pipeline: Pipeline, only: str | None = None
) -> BatchReport:
    return run_batch_job(BatchRun("curate", pipeline, settings, lambda: spark, only=only))


def outcome(report: BatchReport, table: str) -> Any:
    return next(t for t in report.tables if t.table == table)


# -- daily_revenue and funnel ---------------------------------------------------------------


def orders(rng: random.Random, days: list[date], count: int) -> list[dict[str, Any]]:
    rows = []
    for _ in range(count):
        day = rng.choice(days)
        rows.append(
            {
                "order_id": str(uuid.UUID(int=rng.getrandbits(128))),
                "customer_id": f"c-{rng.randrange(20)}",
                "country": rng.choice(["DE", "FR", "US"]),
                "items": [],
                "amount": Decimal(rng.randrange(100, 50_000)) / 100,
                "currency": "EUR",
                "status": rng.choice(["created", "paid", "paid", "cancelled"]),
                "created_at": datetime(day.year, day.month, day.day, rng.randrange(24)),
            }
        )
    return rows


def clicks(rng: random.Random, days: list[date], sessions: int) -> list[dict[str, Any]]:
    rows = []
    steps = ["page_view", "add_to_cart", "checkout", "purchase"]
    for _ in range(sessions):
        day, session = rng.choice(days), uuid.uuid4().hex
        reached = rng.randrange(1, 5)
        for step in steps[:reached]:
            for _repeat in range(rng.randrange(1, 3)):
                rows.append(
                    {
                        "event_id": uuid.uuid4().hex,
                        "session_id": session,
                        "customer_id": None,
                        "event_type": step,
                        "url": "/",
                        "ts": datetime(day.year, day.month, day.day, rng.randrange(24)),
                    }
                )
    return rows


def expected_revenue(
    settings: Settings, left_out: str = "cancelled"
) -> dict[tuple[date, str], tuple[int, Decimal, float]]:
    processed = read_rows(settings.lake.table_path("processed", "orders"), settings)
    rows = duckdb.sql(
        "select event_date, country, count(*), sum(amount), avg(amount) from processed "
        f"where status <> '{left_out}' group by all"
    ).fetchall()
    assert processed is not None
    return {(d, c): (n, total, float(mean)) for d, c, n, total, mean in rows}


def expected_funnel(settings: Settings) -> dict[tuple[date, str], tuple[int, float | None]]:
    processed = read_rows(settings.lake.table_path("processed", "clickstream"), settings)
    assert processed is not None
    sessions: dict[tuple[date, str], set[str]] = defaultdict(set)
    for row in processed.to_pylist():
        sessions[(row["event_date"], row["event_type"])].add(row["session_id"])
    expected: dict[tuple[date, str], tuple[int, float | None]] = {}
    steps = ["page_view", "add_to_cart", "checkout", "purchase"]
    for day in {d for d, _ in sessions}:
        previous = None
        for step in steps:
            n = len(sessions[(day, step)])
            conversion = round(n / previous, 4) if previous else None
            expected[(day, step)] = (n, conversion)
            previous = n
    return expected


def assert_curated_match(lake: Settings) -> None:
    revenue = {
        (r["order_date"], r["country"]): r for r in lake_rows(lake, "curated", "daily_revenue")
    }
    expected = expected_revenue(lake)
    assert set(revenue) == set(expected)
    for key, (n, total, mean) in expected.items():
        row = revenue[key]
        assert (row["orders"], row["revenue"]) == (n, total), key
        assert abs(float(row["avg_basket"]) - mean) <= 0.005, key
    funnel = {(r["day"], r["step"]): r for r in lake_rows(lake, "curated", "funnel")}
    assert {k: (r["sessions"], r["conversion"]) for k, r in funnel.items()} == expected_funnel(lake)


def last_merge_source_rows(spark: SparkSession, lake: Settings, table: str) -> int:
    from delta.tables import DeltaTable

    path = lake.lake.table_path("curated", table)
    merges = DeltaTable.forPath(spark, path).history().where("operation = 'MERGE'")
    newest = merges.orderBy("version", ascending=False).first()
    assert newest is not None
    return int(newest["operationMetrics"]["numSourceRows"])


def with_curated(pipeline: Pipeline, name: str, curated: Any) -> Pipeline:
    return pipeline.model_copy(update={"curated": {**pipeline.curated, name: curated}})


def changed_dates_of_last_commit(
    spark: SparkSession, lake: Settings, table: str, column: str
) -> set[date]:
    path = lake.lake.table_path("curated", table)
    from delta.tables import DeltaTable

    version = DeltaTable.forPath(spark, path).history(1).first()["version"]
    feed = (
        spark.read.format("delta")
        .option("readChangeFeed", "true")
        .option("startingVersion", version)
        .load(path)
    )
    return {row[0] for row in feed.select(column).distinct().collect()}


def test_curated_aggregates_equal_a_recomputation_after_appends_late_rows_and_a_rerun(
    spark: SparkSession, lake: Settings, loaded: LoadedConfig
) -> None:
    pipeline, rng = loaded.pipeline, random.Random(7)
    days = [DAY, DAY + timedelta(days=1), DAY + timedelta(days=2)]
    append_processed(spark, lake, pipeline, "orders", orders(rng, days, 80))
    append_processed(spark, lake, pipeline, "clickstream", clicks(rng, days[:2], 25))

    first = curate(spark, lake, pipeline)
    assert outcome(first, "curated.daily_revenue").action == "merged"
    assert_curated_match(lake)

    # A new day, and late orders and clicks for the first day.
    late_day, new_day = DAY, DAY + timedelta(days=3)
    append_processed(spark, lake, pipeline, "orders", orders(rng, [late_day, new_day], 15))
    append_processed(spark, lake, pipeline, "clickstream", clicks(rng, [late_day], 4))
    second = curate(spark, lake, pipeline)
    assert_curated_match(lake)
    revenue = outcome(second, "curated.daily_revenue")
    assert "(after v0)" in revenue.detail, revenue.detail
    # Only the dates with new rows were recomputed (the MERGE's source held their groups
    # alone) and rewritten.
    groups = {key for key in expected_revenue(lake) if key[0] in (late_day, new_day)}
    assert last_merge_source_rows(spark, lake, "daily_revenue") == len(groups)
    touched = changed_dates_of_last_commit(spark, lake, "daily_revenue", "order_date")
    assert touched <= {late_day, new_day} and new_day in touched
    assert changed_dates_of_last_commit(spark, lake, "funnel", "day") <= {late_day}

    third = curate(spark, lake, pipeline)
    ran = {t.table: (t.action, t.rows_changed) for t in third.tables if t.action != "skipped"}
    assert ran == {"curated.daily_revenue": ("unchanged", 0), "curated.funnel": ("unchanged", 0)}
    assert "processed.customers has no data yet" in outcome(third, "curated.customers").detail
    assert_curated_match(lake)

    # An edited definition is recomputed over every date, not only over changed ones.
    edited = pipeline.curated["daily_revenue"].model_copy(
        update={
            "sql": (pipeline.curated["daily_revenue"].sql or "").replace(
                "where status <> 'cancelled'", "where status <> 'paid'"
            )
        }
    )
    fourth = curate(spark, lake, with_curated(pipeline, "daily_revenue", edited), "daily_revenue")
    assert "(whole)" in outcome(fourth, "curated.daily_revenue").detail
    revenue = {
        (r["order_date"], r["country"]): r["orders"]
        for r in lake_rows(lake, "curated", "daily_revenue")
    }
    assert revenue == {k: n for k, (n, _t, _m) in expected_revenue(lake, "paid").items()}


# -- current state from CDC --------------------------------------------------------------------


CUSTOMER_FIELDS = ("name", "email", "country", "tier", "updated_at")


def apply_to_dynamodb(client: Any, table: str, operations: list[tuple[int, str, str]]) -> None:
    start = datetime(2026, 11, 20, 12, tzinfo=UTC)
    for index, (key, operation, tier) in enumerate(operations):
        customer_id = f"c-{key}"
        if operation == "delete":
            client.delete_item(TableName=table, Key={"customer_id": {"S": customer_id}})
            continue
        stamp = (start + timedelta(seconds=index)).isoformat()
        item = {
            "customer_id": {"S": customer_id},
            "name": {"S": f"name {index}"},
            "email": {"S": f"c{key}.{index}@mail.example"},
            "country": {"S": "DE"},
            "tier": {"S": tier},
            "updated_at": {"S": stamp},
        }
        client.put_item(TableName=table, Item=item)


def stream_records(endpoint: Any, stream_arn: str) -> list[dict[str, Any]]:
    streams = endpoint.client("dynamodbstreams")
    records = []
    for shard in streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator)
            records += page["Records"]
            iterator = page.get("NextShardIterator") if page["Records"] else None
    return records


def as_processed(record: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB stream record as the process job writes it to processed.customers."""
    change = record["dynamodb"]
    image = {k: next(iter(v.values())) for k, v in change.get("NewImage", {}).items()}
    updated = image.get("updated_at")
    return {
        "customer_id": change["Keys"]["customer_id"]["S"],
        **{f: image.get(f) for f in CUSTOMER_FIELDS if f != "updated_at"},
        "updated_at": datetime.fromisoformat(updated).replace(tzinfo=None) if updated else None,
        "_op": {"INSERT": "insert", "MODIFY": "modify", "REMOVE": "remove"}[record["eventName"]],
        "_sequence_number": change["SequenceNumber"],
    }


def final_items(client: Any, table: str) -> dict[str, tuple[Any, ...]]:
    items = client.scan(TableName=table)["Items"]
    found = {}
    for item in items:
        plain = {k: next(iter(v.values())) for k, v in item.items()}
        plain["updated_at"] = datetime.fromisoformat(plain["updated_at"]).replace(tzinfo=None)
        found[plain["customer_id"]] = tuple(plain[f] for f in CUSTOMER_FIELDS)
    return found


def assert_history_consistent(
    history: list[dict[str, Any]], final: dict[str, tuple[Any, ...]]
) -> None:
    by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in history:
        by_key[row["customer_id"]].append(row)
    for key, versions in by_key.items():
        versions.sort(key=lambda r: (len(r["_sequence_number"]), r["_sequence_number"]))
        for earlier, later in itertools.pairwise(versions):
            assert earlier["valid_to"] is not None, key
            assert earlier["valid_from"] <= earlier["valid_to"] <= later["valid_from"], key
        current = [v for v in versions if v["is_current"]]
        if key in final:
            assert len(current) == 1 and current[0] is versions[-1], key
            assert tuple(naive(current[0][f]) for f in CUSTOMER_FIELDS) == final[key], key
        else:
            assert current == [], key
    assert set(final) <= set(by_key)


def naive(value: Any) -> Any:
    return value.astimezone(UTC).replace(tzinfo=None) if isinstance(value, datetime) else value


OPERATIONS = st.lists(
    st.tuples(
        st.integers(0, 3),
        st.sampled_from(["put", "put", "delete"]),
        st.sampled_from(["bronze", "silver", "gold"]),
    ),
    min_size=3,
    max_size=14,
)


@hypothesis_settings(
    max_examples=2,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(operations=OPERATIONS, shuffle_seed=st.integers(0, 2**16), runs=st.integers(1, 3))
def test_current_state_ends_in_the_dynamodb_tables_final_state_whatever_the_arrival_order(
    spark: SparkSession,
    settings: Settings,
    loaded: LoadedConfig,
    operations: list[tuple[int, str, str]],
    shuffle_seed: int,
    runs: int,
) -> None:
    endpoint = aws_endpoint(settings)
    client = endpoint.client("dynamodb")
    table = f"customers-{uuid.uuid4().hex[:8]}"
    created = client.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "customer_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "customer_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    apply_to_dynamodb(client, table, operations)
    changes = [
        as_processed(r)
        for r in stream_records(endpoint, created["TableDescription"]["LatestStreamArn"])
    ]
    # Delivered out of order: shuffled, in a few runs.
    random.Random(shuffle_seed).shuffle(changes)
    lake = with_lake(settings, Path(tempfile.mkdtemp(prefix="curate-cdc-")))
    pipeline = loaded.pipeline
    for part in range(runs):
        batch = changes[part::runs]
        if batch:
            append_processed(spark, lake, pipeline, "customers", batch)
        curate(spark, lake, pipeline, only="customers")

    final = final_items(client, table)
    state = {
        r["customer_id"]: tuple(naive(r[f]) for f in CUSTOMER_FIELDS)
        for r in lake_rows(lake, "curated", "customers")
    }
    assert state == final
    assert_history_consistent(lake_rows(lake, "curated", "customers_history"), final)


def customer_change(
    key: str, sequence: int, op: str = "modify", tier: str = "gold"
) -> dict[str, Any]:
    """One change of processed.customers as the process job writes it."""
    if op == "remove":
        return {"customer_id": key, "_op": op, "_sequence_number": str(sequence)}
    return {
        "customer_id": key,
        "name": f"{key} {sequence}",
        "email": f"{key}@mail.example",
        "country": "DE",
        "tier": tier,
        "updated_at": datetime(2026, 11, 20, 12) + timedelta(seconds=sequence),
        "_op": op,
        "_sequence_number": str(sequence),
    }


def two_customers_curated(spark: SparkSession, lake: Settings, pipeline: Pipeline) -> None:
    """c-1 and c-2 inserted, and curated.customers built from them."""
    changes = [customer_change("c-1", 100), customer_change("c-2", 101)]
    append_processed(spark, lake, pipeline, "customers", changes)
    curate(spark, lake, pipeline, only="customers")


def state_tiers(lake: Settings) -> dict[str, str]:
    return {r["customer_id"]: r["tier"] for r in lake_rows(lake, "curated", "customers")}


def test_a_crash_between_the_tombstone_and_the_state_still_deletes_and_keeps_it_deleted(
    spark: SparkSession, lake: Settings, loaded: LoadedConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The delete's tombstone is written, then the run dies before the state table: the rerun
    reads the same changes and removes the key, and an older change arriving after that does
    not bring it back."""
    import batch.curated_state

    pipeline = loaded.pipeline
    two_customers_curated(spark, lake, pipeline)
    append_processed(spark, lake, pipeline, "customers", [customer_change("c-1", 200, "remove")])

    def killed(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("killed after the tombstones")

    with monkeypatch.context() as patch:
        patch.setattr(batch.curated_state, "apply_to_state", killed)
        with pytest.raises(RuntimeError, match="killed"):
            curate(spark, lake, pipeline, only="customers")
    tombstones = lake_rows(lake, "_meta", "cdc_tombstones")
    assert [(t["key"], t["sequence_number"]) for t in tombstones] == [
        ('{"customer_id":"c-1"}', "200")
    ]
    assert set(state_tiers(lake)) == {"c-1", "c-2"}  # the state was not written

    curate(spark, lake, pipeline, only="customers")
    assert set(state_tiers(lake)) == {"c-2"}
    append_processed(spark, lake, pipeline, "customers", [customer_change("c-1", 150, "modify")])
    curate(spark, lake, pipeline, only="customers")
    assert set(state_tiers(lake)) == {"c-2"}
    history = lake_rows(lake, "curated", "customers_history")
    assert not [r for r in history if r["customer_id"] == "c-1" and r["is_current"]]


def test_a_change_feed_that_cannot_be_read_rebuilds_the_state_from_the_whole_input(
    spark: SparkSession,
    lake: Settings,
    loaded: LoadedConfig,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The change feed was switched off for some commits: the run says so and rebuilds the
    state, its history and the tombstones from the whole input, which ends right."""
    pipeline = loaded.pipeline
    path = lake.lake.table_path("processed", "customers")
    two_customers_curated(spark, lake, pipeline)
    spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES (delta.enableChangeDataFeed = false)")
    changes = [customer_change("c-2", 300, "remove"), customer_change("c-3", 301, tier="silver")]
    append_processed(spark, lake, pipeline, "customers", changes)

    report = curate(spark, lake, pipeline, only="customers")

    assert "(whole)" in outcome(report, "curated.customers").detail
    assert any("cannot be read" in r.getMessage() for r in caplog.records)
    assert state_tiers(lake) == {"c-1": "gold", "c-3": "silver"}
    current = {
        r["customer_id"] for r in lake_rows(lake, "curated", "customers_history") if r["is_current"]
    }
    assert current == {"c-1", "c-3"}
    tombstones = lake_rows(lake, "_meta", "cdc_tombstones")
    assert [t["key"] for t in tombstones] == ['{"customer_id":"c-2"}']


# -- bad input ---------------------------------------------------------------------------------


def test_a_curated_sql_naming_a_missing_column_is_a_one_line_config_error(
    spark: SparkSession,
    lake: Settings,
    loaded: LoadedConfig,
    stack_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from streamlake.cli.app import main

    pipeline = loaded.pipeline
    append_processed(spark, lake, pipeline, "orders", orders(random.Random(1), [DAY], 5))
    broken = pipeline.curated["daily_revenue"].model_copy(
        update={
            "sql": "select event_date as order_date, country, sum(discount) as off "
            "from processed.orders group by 1, 2"
        }
    )
    bad = pipeline.model_copy(update={"curated": {"daily_revenue": broken}, "quality": {}})
    config_dir = write_config_dir(tmp_path / "configs", bad, CONFIGS / "local.yaml")
    for key, value in cli_env(stack_env, tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(
        sys, "argv", ["streamlake", "--config", str(config_dir), "batch", "run", "curate"]
    )
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1, error
    assert "curated.daily_revenue.sql" in error and "discount" in error, error


def test_a_curated_sql_giving_two_rows_for_a_key_is_refused_before_writing(
    spark: SparkSession, lake: Settings, loaded: LoadedConfig
) -> None:
    from streamlake.errors import ConfigError

    pipeline = loaded.pipeline
    append_processed(spark, lake, pipeline, "orders", orders(random.Random(2), [DAY], 20))
    by_status = pipeline.curated["daily_revenue"].model_copy(
        update={
            "sql": "select event_date as order_date, country, status, count(*) as orders "
            "from processed.orders group by event_date, country, status"
        }
    )
    with pytest.raises(ConfigError) as refused:
        curate(spark, lake, with_curated(pipeline, "daily_revenue", by_status), "daily_revenue")
    assert refused.value.exit_code == 2
    assert "curated.daily_revenue.keys" in str(refused.value)
    assert "rows for one key" in str(refused.value)
    assert not (Path(lake.lake.table_path("curated", "daily_revenue")) / "_delta_log").exists()
