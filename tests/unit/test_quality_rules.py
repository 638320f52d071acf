"""The quality job's measurements over small Delta tables written with delta-rs (no Spark,
no services): one version per table, the missing-table policy, commit-time freshness past
compaction, and the columns checked against the tables as written. Recording the results
with Spark is left to tests/integration/test_quality.py."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

import batch.quality as quality
from batch.jobs import BatchRun
from batch.quality_rules import RuleResult, duration, percent
from batch.report import BatchReport
from streamlake.config import load_config
from streamlake.config.pipeline import Pipeline
from streamlake.config.settings import Settings
from streamlake.errors import ConfigError, UsageError
from streamlake.lake.delta_rs import last_data_change
from tests.conftest import CONFIGS
from tests.support import with_lake


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return with_lake(load_config("local", CONFIGS, environ={}).settings, tmp_path)


def pipeline_with(rules: dict[str, list[dict[str, Any]]]) -> Pipeline:
    pipeline = load_config("local", CONFIGS, environ={}).pipeline
    data = pipeline.model_dump(mode="json", exclude_none=True)
    data["quality"] = rules
    return Pipeline.model_validate(data)


def write(settings: Settings, layer: str, name: str, columns: dict[str, Any]) -> None:
    write_deltalake(settings.lake.table_path(layer, name), pa.table(columns), mode="append")


def orders(ids: list[str], customers: list[str | None], age: timedelta) -> dict[str, Any]:
    stamps = [datetime.now(UTC) - age] * len(ids)
    return {
        "order_id": ids,
        "customer_id": customers,
        "_ingest_ts": pa.array(stamps, pa.timestamp("us", tz="UTC")),
    }


def run_quality(
    settings: Settings,
    pipeline: Pipeline,
    monkeypatch: pytest.MonkeyPatch,
    only: str | None = None,
) -> tuple[BatchReport, list[RuleResult]]:
    """The job with its results caught where it would append them with Spark."""
    recorded: list[RuleResult] = []
    monkeypatch.setattr(quality, "record_results", lambda _run, results: recorded.extend(results))

    def no_spark() -> Any:
        raise AssertionError("measuring needs no Spark")

    run = BatchRun("quality", pipeline, settings, no_spark, only=only)
    return quality.run(run), recorded


def by_rule(results: list[RuleResult]) -> dict[str, RuleResult]:
    return {r.rule.name: r for r in results}


def test_each_kind_measures_and_names_the_rows_at_fault(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(settings, "curated", "customers", {"customer_id": ["c1", "c2"], "email": ["a@b", None]})
    write(
        settings,
        "processed",
        "orders",
        orders(["o1", "o2", "o2", "o3", "o4"], ["c1", "c2", "c2", "c9", None], timedelta(hours=2)),
    )
    pipeline = pipeline_with(
        {
            "processed.orders": [
                {
                    "name": "complete",
                    "kind": "completeness",
                    "column": "customer_id",
                    "min_ratio": 0.9,
                },
                {"name": "unique", "kind": "uniqueness", "columns": ["order_id"]},
                {
                    "name": "known",
                    "kind": "referential",
                    "columns": ["customer_id"],
                    "reference": "curated.customers",
                    "min_ratio": 0.5,
                },
                {"name": "few", "kind": "row_count", "max": 4, "blocking": False},
                {"name": "fresh", "kind": "freshness", "max_age": "1 hour"},
            ]
        }
    )
    report, results = run_quality(settings, pipeline, monkeypatch)
    found = by_rule(results)
    assert (found["complete"].status, found["complete"].failing_rows) == ("failed", 1)
    assert found["complete"].detail == "1 of 5 rows have no customer_id (80% < 90%)"
    assert (found["unique"].status, found["unique"].failing_rows) == ("failed", 1)
    assert found["unique"].value == pytest.approx(0.8)
    # Rows with no customer are completeness's concern; one of four keyed rows is an orphan.
    assert (found["known"].status, found["known"].failing_rows) == ("passed", 1)
    assert found["known"].value == pytest.approx(0.75) and found["known"].reference_version == 0
    assert (found["few"].status, found["few"].failing_rows, found["few"].value) == ("failed", 1, 5)
    assert found["fresh"].status == "failed" and found["fresh"].value == pytest.approx(7200, abs=60)
    assert found["fresh"].detail == "the newest _ingest_ts is 2h 0m old (> 1 hour)"
    assert {r.table_version for r in results} == {0}

    (outcome,) = report.tables
    assert outcome.action == "failed" and outcome.detail.startswith("5 rules: 1 passed; complete")
    assert "few failed (non-blocking): 5 rows, 1 more than max 4" in outcome.detail
    # The first blocking failure, its table and its count; the others counted.
    assert report.failed == (
        "processed.orders: quality rule complete failed: 1 of 5 rows have no customer_id "
        "(80% < 90%) (and 2 more blocking rules failed)"
    )


def test_a_run_reads_each_table_at_the_version_it_opened(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(settings, "processed", "orders", orders(["o1"], ["c1"], timedelta(0)))
    write(settings, "processed", "orders", orders(["o2"], ["c2"], timedelta(0)))
    pipeline = pipeline_with(
        {
            "processed.orders": [
                {"name": "rows", "kind": "row_count", "min": 1, "max": 2},
                {"name": "unique", "kind": "uniqueness", "columns": ["order_id"]},
            ]
        }
    )
    opened = quality.open_snapshots

    def open_then_append(*args: Any) -> Any:
        snapshots = opened(*args)
        # A writer commits duplicates after the run opened the table: the rules still read
        # version 1.
        write(settings, "processed", "orders", orders(["o1", "o2"], ["c", "c"], timedelta(0)))
        return snapshots

    monkeypatch.setattr(quality, "open_snapshots", open_then_append)
    _report, results = run_quality(settings, pipeline, monkeypatch)
    assert [(r.status, r.rows_checked, r.table_version) for r in results] == [
        ("passed", 2, 1),
        ("passed", 2, 1),
    ]
    assert DeltaTable(settings.lake.table_path("processed", "orders")).version() == 2


def test_a_table_not_written_yet_is_skipped_unless_it_must_hold_rows(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(settings, "processed", "orders", orders(["o1"], ["c1"], timedelta(0)))
    pipeline = pipeline_with(
        {
            "processed.clickstream": [
                {
                    "name": "sessions",
                    "kind": "completeness",
                    "column": "session_id",
                    "min_ratio": 1,
                },
                {"name": "fresh", "kind": "freshness", "max_age": "1 hour"},
            ],
            "curated.daily_revenue": [{"name": "some", "kind": "row_count", "min": 1}],
            "processed.orders": [
                {
                    "name": "known",
                    "kind": "referential",
                    "columns": ["customer_id"],
                    "reference": "curated.customers",
                }
            ],
        }
    )
    report, results = run_quality(settings, pipeline, monkeypatch)
    statuses = {r.rule.name: (r.status, r.detail) for r in results}
    assert statuses["sessions"] == ("skipped", "processed.clickstream not written yet")
    assert statuses["fresh"][0] == "skipped"
    assert statuses["some"] == (
        "failed",
        "curated.daily_revenue not written yet: 0 rows, 1 fewer than min 1",
    )
    assert statuses["known"] == ("skipped", "reference curated.customers not written yet")
    actions = {t.table: t.action for t in report.tables}
    assert actions == {
        "processed.clickstream": "skipped",
        "curated.daily_revenue": "failed",
        "processed.orders": "skipped",
    }
    assert report.failed is not None and "curated.daily_revenue: quality rule some" in report.failed


def test_curated_freshness_is_the_last_commit_that_changed_rows(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = settings.lake.table_path("curated", "daily_revenue")
    write(settings, "curated", "daily_revenue", {"country": ["DE"], "orders": [1]})
    write(settings, "curated", "daily_revenue", {"country": ["FR"], "orders": [2]})
    written = DeltaTable(path).history(1)[0]["timestamp"]
    time.sleep(0.05)
    DeltaTable(path).optimize.compact()  # rewrites files, changes no row
    assert DeltaTable(path).version() == 2
    change = last_data_change(path, settings, 2)
    assert change is not None and change[0] == 1
    assert change[1] == datetime.fromtimestamp(written / 1000, UTC)

    pipeline = pipeline_with(
        {"curated.daily_revenue": [{"name": "fresh", "kind": "freshness", "max_age": "1 day"}]}
    )
    _report, (result,) = run_quality(settings, pipeline, monkeypatch)
    assert result.status == "passed" and result.table_version == 2
    assert result.detail.startswith("the last change of rows (v1) is ")


def test_columns_are_checked_against_the_tables_as_written(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(settings, "curated", "daily_revenue", {"country": ["DE"], "orders": [1]})
    missing = pipeline_with(
        {
            "curated.daily_revenue": [
                {"name": "ok", "kind": "row_count", "min": 1},
                {"name": "bad", "kind": "completeness", "column": "revenue", "min_ratio": 1},
            ]
        }
    )
    with pytest.raises(ConfigError) as caught:
        run_quality(settings, missing, monkeypatch)
    assert caught.value.key == "quality.curated.daily_revenue[1]"
    assert "'revenue' is not a column of curated.daily_revenue" in str(caught.value)

    not_a_time = pipeline_with(
        {
            "curated.daily_revenue": [
                {"name": "fresh", "kind": "freshness", "column": "country", "max_age": "1 day"}
            ]
        }
    )
    with pytest.raises(ConfigError, match="a VARCHAR column: it needs a timestamp or a date"):
        run_quality(settings, not_a_time, monkeypatch)


def test_table_option_selects_the_rules_of_one_table(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(settings, "processed", "orders", orders(["o1"], ["c1"], timedelta(0)))
    pipeline = pipeline_with(
        {
            "processed.orders": [{"name": "some", "kind": "row_count", "min": 1}],
            "curated.funnel": [{"name": "some", "kind": "row_count", "min": 1}],
        }
    )
    report, results = run_quality(settings, pipeline, monkeypatch, only="processed.orders")
    assert [t.table for t in report.tables] == ["processed.orders"] and report.failed is None
    assert [r.table for r in results] == ["processed.orders"]
    with pytest.raises(UsageError, match="no quality rules for 'customers'"):
        run_quality(settings, pipeline, monkeypatch, only="customers")


@pytest.mark.parametrize(
    ("ratio", "shown"),
    [
        (1.0, "100%"),
        (0.99, "99%"),
        (0.9075, "90.75%"),
        (0.99999, "99.99%"),
        (0.29, "29%"),
        (0, "0%"),
    ],
)
def test_percent_never_rounds_a_failing_ratio_up_to_its_threshold(ratio: float, shown: str) -> None:
    assert percent(ratio) == shown


def test_duration_in_words() -> None:
    assert [duration(s) for s in (2.5, 45, 200, 7_500, 300_000)] == [
        "2.5s",
        "45s",
        "3m 20s",
        "2h 5m",
        "3d 11h",
    ]
