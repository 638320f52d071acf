"""`batch run quality` over tables written by Spark: every rule kind passes on clean data
and fails, naming the rule and the rows at fault, once a fault is seeded (a missing value, a
duplicate key, an order whose customer does not exist, too few rows, a stale table); each
run's results land in `_meta/quality_results` with the versions they read; a blocking
failure exits 1 with one line through the command line, a non-blocking one exits 0."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from deltalake import DeltaTable

from batch.jobs import BatchRun, run_batch_job
from batch.report import BatchReport
from streamlake.config import LoadedConfig
from streamlake.config.pipeline import Pipeline
from streamlake.config.settings import Settings
from streamlake.lake.query import run_query
from tests.conftest import CONFIGS
from tests.support import append_processed, cli_env, write_config_dir

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

CUSTOMERS = "customer_id STRING, email STRING, _sequence_number STRING"

RULES: dict[str, list[dict[str, Any]]] = {
    "processed.orders": [
        {
            "name": "orders_complete",
            "kind": "completeness",
            "column": "customer_id",
            "min_ratio": 1,
        },
        {"name": "orders_unique", "kind": "uniqueness", "columns": ["order_id"]},
        {
            "name": "orders_customer_known",
            "kind": "referential",
            "columns": ["customer_id"],
            "reference": "curated.customers",
        },
        {"name": "orders_fresh", "kind": "freshness", "max_age": "1 hour"},
    ],
    "processed.clickstream": [
        {"name": "clicks_fresh", "kind": "freshness", "max_age": "1 hour", "blocking": False}
    ],
    "curated.customers": [
        {"name": "customers_enough", "kind": "row_count", "min": 10},
        {"name": "customers_changed_lately", "kind": "freshness", "max_age": "1 hour"},
    ],
}


@pytest.fixture
def pipeline(loaded: LoadedConfig) -> Pipeline:
    data = loaded.pipeline.model_dump(mode="json", exclude_none=True)
    data["quality"] = RULES
    return Pipeline.model_validate(data)


def order(number: int, customer: str | None) -> dict[str, Any]:
    return {"order_id": f"o-{number}", "customer_id": customer, "status": "paid"}


def quality(spark: SparkSession, lake: Settings, pipeline: Pipeline) -> BatchReport:
    return run_batch_job(BatchRun("quality", pipeline, lake, lambda: spark))


def results_of_last_run(lake: Settings, pipeline: Pipeline) -> dict[str, dict[str, Any]]:
    """The newest run's rows of _meta.quality_results by rule, read as a user would."""
    found = run_query(
        "select * from _meta.quality_results where run_id = (select run_id from "
        "_meta.quality_results order by checked_at desc limit 1)",
        pipeline,
        lake,
    )
    return {row["rule"]: row for row in found.records()}


def version(lake: Settings, layer: str, table: str) -> int:
    return int(DeltaTable(lake.lake.table_path(layer, table)).version())


def test_each_rule_kind_passes_on_clean_data_and_fails_on_its_fault(
    spark: SparkSession, lake: Settings, pipeline: Pipeline
) -> None:
    now = datetime.now(UTC)
    customers = [(f"c-{n}", f"c{n}@mail.example", str(n)) for n in range(10)]
    customers_path = lake.lake.table_path("curated", "customers")
    spark.createDataFrame(customers, CUSTOMERS).write.format("delta").save(customers_path)
    clean = [order(n, f"c-{n % 10}") for n in range(20)]
    append_processed(spark, lake, pipeline, "orders", clean, now)

    first = quality(spark, lake, pipeline)
    assert first.failed is None, first.failed
    actions = {t.table: (t.action, t.detail) for t in first.tables}
    assert actions["processed.orders"] == ("passed", "4 rules: 4 passed")
    assert actions["curated.customers"] == ("passed", "2 rules: 2 passed")
    assert actions["processed.clickstream"] == (
        "skipped",
        "1 rule: processed.clickstream not written yet",
    )
    recorded = results_of_last_run(lake, pipeline)
    assert {r: v["status"] for r, v in recorded.items()} == {
        "orders_complete": "passed",
        "orders_unique": "passed",
        "orders_customer_known": "passed",
        "orders_fresh": "passed",
        "clicks_fresh": "skipped",
        "customers_enough": "passed",
        "customers_changed_lately": "passed",
    }
    assert recorded["orders_unique"]["table_version"] == version(lake, "processed", "orders") == 0
    assert recorded["orders_customer_known"]["reference_version"] == 0

    # The faults: an order without a customer, an order id twice, an order of a customer
    # that does not exist, a customer deleted (its two orders orphaned, one row too few),
    # and a clickstream whose newest row arrived three hours ago.
    faults = [order(100, None), order(0, "c-0"), order(101, "c-404")]
    append_processed(spark, lake, pipeline, "orders", faults, now)
    from delta.tables import DeltaTable as SparkDeltaTable

    SparkDeltaTable.forPath(spark, customers_path).delete("customer_id = 'c-9'")
    click = {"event_id": "e-1", "session_id": "s-1", "event_type": "page_view", "url": "/"}
    append_processed(spark, lake, pipeline, "clickstream", [click], now - timedelta(hours=3))

    second = quality(spark, lake, pipeline)
    recorded = results_of_last_run(lake, pipeline)
    failing = {
        rule: (row["failing_rows"], row["rows_checked"])
        for rule, row in recorded.items()
        if row["status"] == "failed"
    }
    assert failing == {
        "orders_complete": (1, 23),
        "orders_unique": (1, 23),
        "orders_customer_known": (3, 22),
        "customers_enough": (1, 9),
        "clicks_fresh": (None, 1),
    }
    assert recorded["orders_fresh"]["status"] == "passed"
    assert recorded["customers_changed_lately"]["status"] == "passed"  # a DELETE changes rows
    # The versions each rule read, and its measure against its threshold.
    assert recorded["orders_unique"]["table_version"] == version(lake, "processed", "orders") == 1
    assert recorded["orders_customer_known"]["reference_version"] == 1
    assert recorded["customers_enough"]["table_version"] == version(lake, "curated", "customers")
    assert float(recorded["clicks_fresh"]["value"]) == pytest.approx(3 * 3600, abs=120)
    assert float(recorded["clicks_fresh"]["threshold_max"]) == 3600

    details = {t.table: t.detail for t in second.tables}
    assert details["processed.orders"] == (
        "4 rules: 1 passed; "
        "orders_complete failed: 1 of 23 rows have no customer_id (95.65% < 100%); "
        "orders_unique failed: 1 of 23 rows repeat another row's order_id (1 key repeated) "
        "(95.65% < 100%); "
        "orders_customer_known failed: 3 of 22 rows have a customer_id not found in "
        "curated.customers.customer_id (86.36% < 100%)"
    )
    assert details["curated.customers"].startswith(
        "2 rules: 1 passed; customers_enough failed: 9 rows, 1 fewer than min 10"
    )
    assert details["processed.clickstream"].startswith(
        "1 rule: 0 passed; clicks_fresh failed (non-blocking): the newest _ingest_ts is 3h 0m old"
    )
    assert second.failed == (
        "processed.orders: quality rule orders_complete failed: 1 of 23 rows have no "
        "customer_id (95.65% < 100%) (and 3 more blocking rules failed)"
    )


def test_a_blocking_failure_exits_1_with_one_line_and_a_warning_exits_0(
    spark: SparkSession,
    lake: Settings,
    pipeline: Pipeline,
    stack_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from streamlake.cli.app import main

    now = datetime.now(UTC)
    orders = [order(1, "c-1"), order(1, "c-1"), order(2, "c-2")]
    append_processed(spark, lake, pipeline, "orders", orders, now)
    click = {"event_id": "e-1", "session_id": "s-1", "event_type": "page_view", "url": "/"}
    append_processed(spark, lake, pipeline, "clickstream", [click], now - timedelta(days=2))
    config_dir = write_config_dir(tmp_path / "configs", pipeline, CONFIGS / "local.yaml")
    for key, value in cli_env(stack_env, tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("COLUMNS", "100")

    def batch_run(table: str) -> tuple[int, str, str]:
        monkeypatch.setattr(
            sys,
            "argv",
            [
                "streamlake",
                "--config",
                str(config_dir),
                "batch",
                "run",
                "quality",
                "--table",
                table,
            ],
        )
        with pytest.raises(SystemExit) as exit_info:
            main()
        out, err = capsys.readouterr()
        return int(exit_info.value.code or 0), out, err

    code, out, err = batch_run("clickstream")
    assert code == 0, out + err
    warnings = [line for line in err.splitlines() if "clicks_fresh" in line]
    assert len(warnings) == 1 and "WARNING" in warnings[0], err
    assert "failed (non-blocking): the newest _ingest_ts is 2d 0h old (> 1 hour)" in warnings[0]

    code, out, err = batch_run("processed.orders")
    assert code == 1, out + err
    failures = [line for line in out.splitlines() if line.startswith("quality failed:")]
    # The customer rule is skipped: curated.customers is not written in this lake.
    assert failures == [
        "quality failed: processed.orders: quality rule orders_unique failed: 1 of 3 rows "
        "repeat another row's order_id (1 key repeated) (66.66% < 100%)"
    ], out
