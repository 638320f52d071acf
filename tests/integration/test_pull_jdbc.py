"""JDBC incremental pulls from the real local PostgreSQL (started by the session's stack),
through Spark's jdbc source and the pom's driver, into real Delta tables; credentials from
the local Secrets Manager."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from batch.jobs import BatchRun, run_batch_job
from batch.report import BatchReport
from connectors.jdbc import database
from connectors.jdbc.endpoint import JdbcEndpoint, jdbc_endpoint
from streamlake.config.pipeline import Pipeline
from streamlake.config.settings import Settings
from streamlake.lake.spark_delta import table_version
from streamlake.paths import checkout_root
from streamlake.produce.events import SyntheticEvent
from tests.conftest import free_ports
from tests.support import (
    PRODUCTS_DDL,
    cli_env,
    jdbc_pipeline,
    lake_rows,
    raw_rows,
    run_process,
    write_config_dir,
)

pytestmark = pytest.mark.integration

BASE = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def db(settings: Settings) -> JdbcEndpoint:
    """The local connection, its credentials read from the local Secrets Manager."""
    return jdbc_endpoint("shop_db", settings)


@pytest.fixture
def source_table(db: JdbcEndpoint) -> Iterator[str]:
    """A products table of this test's own in the local database."""
    name = f"public.products_{uuid.uuid4().hex[:8]}"
    database.ensure_table(db, name, PRODUCTS_DDL, ["product_id"], "updated_at")
    yield name
    with database.connected(db) as connection:
        connection.execute(f"drop table {database.quoted(name)}".encode())


def upsert(db: JdbcEndpoint, table: str, *rows: tuple[str, str, int]) -> None:
    """(product id, price, minutes after BASE of updated_at) inserted or updated."""
    upsert_at(db, table, *[(p, price, BASE + timedelta(minutes=m)) for p, price, m in rows])


def upsert_at(db: JdbcEndpoint, table: str, *rows: tuple[str, str, datetime]) -> None:
    """(product id, price, updated_at) inserted or updated."""
    sink = database.UpsertSink(db, table, ["product_id"])
    for product_id, price, updated_at in rows:
        item = {
            "product_id": product_id,
            "name": f"Product {product_id}",
            "category": "outdoor",
            "price": Decimal(price),
            "stock": 5,
            "updated_at": updated_at,
        }
        sink.send(SyntheticEvent(product_id, b"", item=item))
    sink.flush()
    sink.close()


def pull(pipeline: Pipeline, lake: Settings, spark: Any) -> BatchReport:
    return run_batch_job(BatchRun("pull-products", pipeline, lake, lambda: spark))


def versions(lake: Settings) -> Counter[tuple[str, str]]:
    """(product id, updated_at) of each raw row, counted."""
    found: Counter[tuple[str, str]] = Counter()
    for row in raw_rows(lake, "products"):
        payload = json.loads(row["payload"])
        found[(payload["product_id"], payload["updated_at"])] += 1
    return found


def at(minutes: int) -> str:
    return (BASE + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


def test_three_pulls_bring_each_row_version_once_and_a_pull_with_nothing_new_writes_nothing(
    spark: Any, lake: Settings, db: JdbcEndpoint, source_table: str
) -> None:
    pipeline = jdbc_pipeline(source_table, overlap="5 minutes")
    upsert(db, source_table, ("p1", "10.00", 0), ("p2", "20.00", 1), ("p3", "30.00", 2))
    first = pull(pipeline, lake, spark)
    assert first.tables[0].rows_changed == 3

    # An update of p1 and a new product; the overlap re-reads p2 and p3, already in raw.
    upsert(db, source_table, ("p1", "11.00", 3), ("p4", "40.00", 4))
    second = pull(pipeline, lake, spark)
    assert second.tables[0].rows_changed == 2

    upsert(db, source_table, ("p2", "21.00", 10), ("p1", "12.00", 11), ("p5", "50.00", 12))
    third = pull(pipeline, lake, spark)
    assert third.tables[0].rows_changed == 3

    expected = {
        ("p1", at(0)), ("p2", at(1)), ("p3", at(2)), ("p1", at(3)), ("p4", at(4)),
        ("p2", at(10)), ("p1", at(11)), ("p5", at(12)),
    }  # fmt: skip
    assert versions(lake) == Counter(expected)

    raw_path = lake.lake.table_path("raw", "products")
    before = table_version(spark, raw_path)
    idle = pull(pipeline, lake, spark)
    assert (idle.tables[0].action, idle.tables[0].rows_changed) == ("unchanged", 0)
    assert table_version(spark, raw_path) == before

    # Committed late: its updated_at is 2 minutes before the newest pulled, within the
    # 5-minute overlap, so the next pull still finds it.
    upsert(db, source_table, ("p6", "60.00", 10))
    late = pull(pipeline, lake, spark)
    assert late.tables[0].rows_changed == 1
    assert versions(lake) == Counter(expected | {("p6", at(10))})

    run_process(spark, lake, pipeline, job="process-products")
    processed = lake_rows(lake, "processed", "products")
    assert sorted((r["product_id"], r["price"]) for r in processed) == [
        ("p1", Decimal("10.00")), ("p1", Decimal("11.00")), ("p1", Decimal("12.00")),
        ("p2", Decimal("20.00")), ("p2", Decimal("21.00")), ("p3", Decimal("30.00")),
        ("p4", Decimal("40.00")), ("p5", Decimal("50.00")), ("p6", Decimal("60.00")),
    ]  # fmt: skip
    raw = raw_rows(lake, "products")
    assert {(r["source"], r["stream"], r["partition"]) for r in raw} == {("jdbc", source_table, "")}
    assert {r["position"] for r in raw} >= {f"{at(11)[:-1]}|p1"}

    # A row stamped a year ahead (a skewed clock) does not move later pulls past real
    # changes: its bookmark counts as the time of the pull that took it.
    now = datetime.now(UTC)
    upsert_at(db, source_table, ("p7", "70.00", now + timedelta(days=365)))
    assert pull(pipeline, lake, spark).tables[0].rows_changed == 1
    upsert_at(db, source_table, ("p8", "80.00", datetime.now(UTC)))
    assert pull(pipeline, lake, spark).tables[0].rows_changed == 1
    assert {"p7", "p8"} <= {product for product, _ in versions(lake)}


def run_pull_cli(
    tmp_path: Path, stack_env: dict[str, str], pipeline: Pipeline, **connection: str
) -> subprocess.CompletedProcess[str]:
    config = write_config_dir(
        tmp_path / "configs", pipeline, checkout_root() / "configs" / "local.yaml"
    )
    env = cli_env(stack_env, tmp_path)
    env.update({f"STREAMLAKE__JDBC__SHOP_DB__{k.upper()}": v for k, v in connection.items()})
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "streamlake",
            "--config",
            str(config),
            "batch",
            "run",
            "pull-products",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.mark.parametrize("failure", ["wrong password", "unreachable database"])
def test_a_failed_pull_is_a_one_line_error_with_exit_1_and_the_bookmark_stays(
    spark: Any,
    lake: Settings,
    db: JdbcEndpoint,
    source_table: str,
    stack_env: dict[str, str],
    tmp_path: Path,
    failure: str,
) -> None:
    pipeline = jdbc_pipeline(source_table)
    upsert(db, source_table, ("p1", "10.00", 0), ("p2", "20.00", 1))
    assert pull(pipeline, lake, spark).tables[0].rows_changed == 2
    raw_path = lake.lake.table_path("raw", "products")
    version = table_version(spark, raw_path)
    upsert(db, source_table, ("p3", "30.00", 2))

    if failure == "wrong password":
        connection = {"secret": "null", "username": db.user, "password": "not-the-password"}
        expected = f'password authentication failed for user "{db.user}"'
    else:
        (closed_port,) = free_ports(1)
        connection = {"url": f"jdbc:postgresql://127.0.0.1:{closed_port}/shop"}
        expected = f"Connection to 127.0.0.1:{closed_port} refused"
    result = run_pull_cli(tmp_path, stack_env, pipeline, **connection)

    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1, result.stderr
    assert expected in errors[0] and "jdbc connection shop_db" in errors[0]
    assert "not-the-password" not in result.stderr
    assert table_version(spark, raw_path) == version
    assert len(raw_rows(lake, "products")) == 2

    # With the connection as configured, the next pull takes up where the last one ended.
    assert pull(pipeline, lake, spark).tables[0].rows_changed == 1


def test_positions_sort_as_bookmarks_and_keys_never_read_alike(spark: Any) -> None:
    """Integer bookmarks (negative ones too) and composite keys whose values hold the
    separator, written by Spark as a pull writes them."""
    from connectors.jdbc.bookmark import Bookmark

    ids = Bookmark("id", "integer", ("a", "b"), 10)
    rows = [(-5, "x|y", "z"), (-5, "x", "y|z"), (3, "x\\", "|z"), (10**12, "p", "q")]
    frame = spark.createDataFrame(rows, "id LONG, a STRING, b STRING")
    positions = [r[0] for r in frame.select(ids.position()).collect()]
    assert len(set(positions)) == len(rows)
    by_position = sorted(zip(positions, rows, strict=True))
    assert [row[0] for _, row in by_position] == sorted(row[0] for row in rows)
    assert ids.value_of(by_position[-1][0]) == 10**12
    assert ids.lower_bound(by_position[-1][0]) == 10**12 - 10


def test_a_pull_overtaken_by_another_run_of_its_job_writes_nothing(
    spark: Any,
    lake: Settings,
    db: JdbcEndpoint,
    source_table: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two runs of one pull job at once: the second to commit finds its pull number taken
    and Delta skips its append, so no row lands twice. (The race is staged: the other run
    commits while this one reads the database.)"""
    from batch import pull as pull_job

    pipeline = jdbc_pipeline(source_table)
    upsert(db, source_table, ("p1", "10.00", 0), ("p2", "20.00", 1))
    read_rows = pull_job.new_rows

    def overtaken(*args: Any) -> Any:
        monkeypatch.setattr(pull_job, "new_rows", read_rows)
        other = pull(pipeline, lake, spark)  # the other run, start to commit
        assert other.tables[0].rows_changed == 2
        return read_rows(*args)

    monkeypatch.setattr(pull_job, "new_rows", overtaken)
    report = pull(pipeline, lake, spark)
    assert (report.tables[0].action, report.tables[0].rows_changed) == ("skipped", 0)
    assert versions(lake) == Counter({("p1", at(0)): 1, ("p2", at(1)): 1})
