"""`streamlake query`: SQL over small Delta tables written with delta-rs (no Spark, no
services)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake
from typer.testing import CliRunner

from streamlake.cli.app import app
from streamlake.config import LoadedConfig, load_config
from streamlake.errors import EXIT_BAD_USAGE, EXIT_JOB_FAILED, StreamlakeError, UsageError
from streamlake.lake.query import QueryResult, run_query
from tests.conftest import CONFIGS

DAY_1, DAY_2 = date(2024, 5, 1), date(2024, 5, 2)


def at(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def write_lake(root: Path) -> None:
    """processed.orders (partitioned by event_date), curated.customers, and
    curated.by_hand, which the pipeline does not declare: a table written outside it."""
    orders = pa.table(
        {
            "order_id": ["o1", "o2", "o3"],
            "customer_id": ["c1", "c2", "c1"],
            "amount": pa.array(
                [Decimal("10.50"), Decimal("3.25"), Decimal("1.00")], pa.decimal128(12, 2)
            ),
            "created_at": pa.array(
                [at(DAY_1, 9), at(DAY_2, 10), at(DAY_2, 11)], pa.timestamp("us", tz="UTC")
            ),
            "event_date": [DAY_1, DAY_2, DAY_2],
        }
    )
    write_deltalake(str(root / "processed" / "orders"), orders, partition_by=["event_date"])
    customers = pa.table({"customer_id": ["c1", "c2"], "name": ["Ada", 'Bo, "B"']})
    write_deltalake(str(root / "curated" / "customers"), customers)
    write_deltalake(str(root / "curated" / "by_hand"), pa.table({"note": ["kept"]}))


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("query") / "lake"
    write_lake(root)
    return root


def config_for(lake: Path) -> LoadedConfig:
    return load_config("local", CONFIGS, environ={"STREAMLAKE__LAKE__ROOT": str(lake)})


def query(lake: Path, sql: str) -> QueryResult:
    config = config_for(lake)
    return run_query(sql, config.pipeline, config.settings)


def cli(lake: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The console script in a process of its own: errors go through its exit-code mapping."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLAKE")}
    env["STREAMLAKE__LAKE__ROOT"] = str(lake)
    command = [sys.executable, "-m", "streamlake", "--config", str(CONFIGS), "query", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)


def cli_output(lake: Path, *args: str) -> str:
    """The command in this process (faster), for what it prints on success."""
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("STREAMLAKE")}
    env |= {"STREAMLAKE__LAKE__ROOT": str(lake), "COLUMNS": "100"}
    result = CliRunner().invoke(app, ["--config", str(CONFIGS), "query", *args], env=env)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_a_join_and_aggregate_across_two_layers(lake: Path) -> None:
    result = query(
        lake,
        "select c.name, count(*) as orders, sum(o.amount) as revenue "
        "from processed.orders o join curated.customers c using (customer_id) "
        "group by c.name order by revenue desc",
    )
    assert result.columns == ("name", "orders", "revenue")
    assert result.rows == [("Ada", 2, Decimal("11.50")), ('Bo, "B"', 1, Decimal("3.25"))]
    assert not result.truncated


def test_a_table_the_pipeline_does_not_declare_is_found_on_a_local_lake(lake: Path) -> None:
    assert query(lake, "select note from curated.by_hand").records() == [{"note": "kept"}]


def test_a_partition_filter_reads_only_its_partition(tmp_path: Path) -> None:
    write_lake(tmp_path)
    # With the other day's files gone, a read of the whole table would fail: the filter
    # must reach the Arrow dataset and prune the partition before any file is opened.
    for parquet in (tmp_path / "processed" / "orders" / f"event_date={DAY_1}").iterdir():
        parquet.unlink()

    result = query(
        tmp_path,
        "select order_id, created_at from processed.orders "
        "where event_date = date '2024-05-02' order by order_id",
    )

    assert result.rows == [("o2", at(DAY_2, 10)), ("o3", at(DAY_2, 11))]
    with pytest.raises(StreamlakeError, match=r"^reading processed\.orders at ") as raised:
        query(tmp_path, "select count(*) from processed.orders")
    assert raised.value.exit_code == EXIT_JOB_FAILED


def test_ctes_case_and_statements_sqlglot_does_not_read(lake: Path) -> None:
    with_cte = query(
        lake,
        "with big as (select * from Processed.Orders where amount > 2) select count(*) from big",
    )
    assert with_cte.rows == [(2,)]
    # sqlglot keeps EXPLAIN as an opaque command: the table is found in the text.
    plan = query(lake, "explain select count(*) from processed.orders")
    assert "ARROW_SCAN" in str(plan.rows)


def test_max_rows_cuts_and_says_so(lake: Path) -> None:
    config = config_for(lake)
    sql = "select order_id from processed.orders order by order_id"
    result = run_query(sql, config.pipeline, config.settings, max_rows=2)
    assert result.rows == [("o1",), ("o2",)] and result.truncated


def test_json_format(lake: Path) -> None:
    output = cli_output(
        lake,
        "select order_id, amount, created_at, event_date, amount > 5 as big, "
        "null as nothing from processed.orders where order_id = 'o1'",
        "--format",
        "json",
    )
    assert output == (
        "[\n"
        "  {\n"
        '    "order_id": "o1",\n'
        '    "amount": "10.50",\n'
        '    "created_at": "2024-05-01T09:00:00+00:00",\n'
        '    "event_date": "2024-05-01",\n'
        '    "big": true,\n'
        '    "nothing": null\n'
        "  }\n"
        "]\n"
    )
    assert json.loads(output)[0]["amount"] == "10.50"


def test_csv_format(lake: Path) -> None:
    output = cli_output(
        lake,
        "select c.name, o.amount, o.created_at from processed.orders o "
        "join curated.customers c using (customer_id) order by o.order_id",
        "--format",
        "csv",
    )
    assert output == (
        "name,amount,created_at\n"
        "Ada,10.50,2024-05-01T09:00:00+00:00\n"
        '"Bo, ""B""",3.25,2024-05-02T10:00:00+00:00\n'
        "Ada,1.00,2024-05-02T11:00:00+00:00\n"
    )


def test_table_format(lake: Path) -> None:
    output = cli_output(
        lake,
        "select order_id, amount, null as note from processed.orders order by order_id",
        "--limit",
        "2",
    )
    assert output == (
        "┏━━━━━━━━━━┳━━━━━━━━┳━━━━━━┓\n"
        "┃ order_id ┃ amount ┃ note ┃\n"
        "┡━━━━━━━━━━╇━━━━━━━━╇━━━━━━┩\n"
        "│ o1       │  10.50 │ null │\n"
        "│ o2       │   3.25 │ null │\n"
        "└──────────┴────────┴──────┘\n"
        "first 2 rows shown (--limit 2); the query has more\n"
    )
    assert cli_output(lake, "select count(*) as n from processed.orders").endswith("\n1 row\n")


def test_an_unknown_table_names_it_and_lists_the_tables(lake: Path) -> None:
    with pytest.raises(UsageError) as raised:
        query(lake, "select * from processed.ordres")
    assert raised.value.exit_code == EXIT_BAD_USAGE
    assert str(raised.value) == (
        "no table processed.ordres in the lake (tables: curated.by_hand, curated.customers, "
        "processed.orders)"
    )

    result = cli(lake, "select * from processed.ordres")

    assert result.returncode == EXIT_BAD_USAGE
    assert result.stdout == ""
    assert result.stderr.splitlines() == [f"error: {raised.value}"]


def test_a_syntax_error_is_one_line_of_bad_usage(lake: Path) -> None:
    result = cli(lake, "selec * from processed.orders")

    assert result.returncode == EXIT_BAD_USAGE
    assert result.stderr.splitlines() == ['error: Parser Error: syntax error at or near "selec"']


def test_binder_errors_and_files_outside_the_lake_are_bad_usage(lake: Path) -> None:
    with pytest.raises(UsageError, match=r'^Binder Error: .*"nope"') as raised:
        query(lake, "select nope from processed.orders")
    assert "\n" not in str(raised.value)
    with pytest.raises(UsageError, match=r"^Permission Error"):
        query(lake, "select * from read_csv('/etc/hostname')")
    with pytest.raises(UsageError, match="one SQL statement at a time, got 2"):
        query(lake, "select 1; select 2")


def test_a_declared_table_not_written_yet_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as raised:
        query(tmp_path / "lake", "select count(*) from processed.orders")
    assert raised.value.exit_code == EXIT_BAD_USAGE
    assert str(raised.value) == (
        "processed.orders has no data yet: run the process job process-orders"
    )
