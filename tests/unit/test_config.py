"""Configuration: good files load; each kind of bad file exits 2 with a one-line message."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from streamlake.config import load_config
from streamlake.config.pipeline import Rule
from streamlake.errors import ConfigError
from streamlake.paths import checkout_root

CONFIGS = checkout_root() / "configs"


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    target = tmp_path / "configs"
    shutil.copytree(CONFIGS, target)
    return target


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLAKE")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "streamlake", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=60,
    )


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_every_environment_loads() -> None:
    for env in ("local", "dev", "staging", "prod"):
        config = load_config(
            env, CONFIGS, environ={"STREAMLAKE__KAFKA__BOOTSTRAP_SERVERS": "b-1.msk:9098"}
        )
        assert config.settings.env == env
        assert set(config.pipeline.tables) == {
            "orders",
            "clickstream",
            "customers",
            "returns",
            "products",
        }


def test_local_environment_derives_loopback_endpoints() -> None:
    settings = load_config("local", CONFIGS, environ={}).settings
    assert settings.kafka.bootstrap_servers == "127.0.0.1:19092"
    assert settings.aws.endpoint_url == "http://127.0.0.1:15000"
    assert settings.lake.table_path("raw", "orders") == ".streamlake/lake/raw/orders"


def test_override_variables_change_nested_keys_with_types() -> None:
    settings = load_config(
        "local",
        CONFIGS,
        environ={
            "STREAMLAKE__SPARK__SHUFFLE_PARTITIONS": "3",
            "STREAMLAKE__LOCAL__AWS_PORT": "4566",
        },
    ).settings
    assert settings.spark.shuffle_partitions == 3
    assert settings.aws.endpoint_url == "http://127.0.0.1:4566"


def test_config_show_json_prints_the_resolved_configuration(config_dir: Path) -> None:
    result = run_cli("--config", str(config_dir), "config", "show", "--json")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["settings"]["lake"]["root"] == ".streamlake/lake"
    assert shown["settings"]["aws"]["access_key_id"] == "**********"
    assert shown["pipeline"]["sources"]["orders"]["partitions"] == 3


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        (
            "local.yaml",
            "  driver_memory: 2g",
            "  driver_memory: 2g\n  drivr_cores: 2",
            "local.yaml: spark.drivr_cores: unknown key",
        ),
        (
            "local.yaml",
            "kafka_port: 19092",
            "kafka_port: lots",
            "local.yaml: local.kafka_port: Input should be a valid integer",
        ),
        (
            "pipeline.yaml",
            "    topic: orders\n",
            "",
            "pipeline.yaml: sources.orders.topic: required key is missing",
        ),
        (
            "pipeline.yaml",
            "    drift: evolve",
            "    drift: loose",
            "pipeline.yaml: tables.orders.drift: Input should be 'evolve', 'strict' or 'rescue'",
        ),
        (
            "pipeline.yaml",
            "  ingest-orders: {kind: ingest, table: orders",
            "  ingest-orders: {kind: ingest, table: order",
            "pipeline.yaml: jobs.ingest-orders.table: no table named 'order'",
        ),
        (
            "pipeline.yaml",
            "    format: json\n",
            "    format: avro\n",
            "pipeline.yaml: tables.orders: format avro needs an avro block (registry, schema_name)",
        ),
        (
            "pipeline.yaml",
            "    format: json\n",
            "    format: avro\n    avro: {registry: glue, schema_name: orders}\n",
            "pipeline.yaml: tables.orders.avro: a glue registry needs registry_name",
        ),
        (
            "pipeline.yaml",
            "  create_databases: true\n",
            "  databases: {gold: shop_gold}\n",
            "pipeline.yaml: catalog.databases: gold: not a layer (layers: raw, processed, "
            "quarantine, curated)",
        ),
        (
            "pipeline.yaml",
            "  create_databases: true\n",
            "  databases: {raw: shop_processed}\n",
            "pipeline.yaml: catalog.databases: raw and processed are both in 'shop_processed'",
        ),
        (
            "local.yaml",
            "lake:\n",
            "lake: [\n",
            "local.yaml: line 5, column 18: invalid YAML: expected ',' or ']'",
        ),
    ],
    ids=[
        "unknown-key",
        "wrong-type",
        "missing-field",
        "bad-choice",
        "bad-reference",
        "avro-without-registry",
        "glue-without-registry-name",
        "catalog-layer-unknown",
        "catalog-layers-share-a-database",
        "bad-yaml",
    ],
)
def test_bad_file_exits_2_with_one_line(
    config_dir: Path, file: str, old: str, new: str, expected: str
) -> None:
    edit(config_dir / file, old, new)
    result = run_cli("--config", str(config_dir), "config", "show")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(config_dir / file) in lines[0]
    assert expected.split(": ", 1)[1] in lines[0]
    assert "Traceback" not in result.stderr


def test_bad_override_names_the_variable(config_dir: Path) -> None:
    result = run_cli(
        "--config",
        str(config_dir),
        "config",
        "show",
        env={"STREAMLAKE__SPARK__UI_ENABLED": "maybe"},
    )
    assert result.returncode == 2
    assert "environment variable STREAMLAKE__SPARK__UI_ENABLED: spark.ui_enabled:" in result.stderr


def test_unknown_environment_lists_the_known_ones(config_dir: Path) -> None:
    result = run_cli("--config", str(config_dir), "--env", "qa", "config", "show")
    assert result.returncode == 2
    assert "no configuration for environment 'qa'" in result.stderr
    assert "known environments: dev, local, prod, staging" in result.stderr


def test_non_local_environment_requires_bootstrap_servers_to_reach_kafka() -> None:
    settings = load_config("prod", CONFIGS, environ={}).settings
    with pytest.raises(ConfigError) as caught:
        settings.bootstrap_servers  # noqa: B018 (the property is what is checked)
    assert caught.value.key == "kafka.bootstrap_servers"
    assert "STREAMLAKE__KAFKA__BOOTSTRAP_SERVERS" in str(caught.value)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "amount DECIMAL(12,2), currency",
            "amount DECIMAL(12,2), currency STRNG",
            "tables.orders.schema_ddl: unknown data type 'STRNG'",
        ),
        (
            "event_time: created_at",
            "event_time: created",
            "tables.orders: event_time 'created' is not a column of schema_ddl",
        ),
        (
            "event_id: order_id",
            "event_id: id",
            "tables.orders: event_id 'id' is not a column of schema_ddl",
        ),
        (
            'column: country, pattern: "^[A-Z]{2}$"',
            'column: country, pattern: "^[A-Z{2}$"',
            "tables.orders.rules[2].pattern: not a valid regular expression",
        ),
        (
            "kind: not_null, column: order_id}",
            "kind: type, column: order_id, type: UUIDX}",
            "tables.orders.rules[0].type: unknown data type 'UUIDX'",
        ),
        (
            "{name: amount_positive, kind: range, column: amount",
            "{name: amount_positive, kind: range, column: amuont",
            "tables.orders: rules[3] (amount_positive): column 'amuont' is not a column",
        ),
        (
            'expr: "size(items) > 0"',
            'expr: "size(items) >"',
            "tables.orders.rules[6].expr: not a Spark SQL expression: Required keyword: "
            "'expression' missing for GT",
        ),
        (
            'expr: "size(items) > 0"',
            'expr: "size(itemz) > 0 AND exists(items, i -> i.qty > 0)"',
            "tables.orders: rules[6] (items_not_empty): expr reads itemz, not columns",
        ),
        (
            "trigger: 5 seconds}",
            "trigger: 5 secs}",
            "jobs.ingest-orders.trigger: String should match pattern",
        ),
        (
            "tables:\n  orders:",
            "tables:\n  ../orders:",
            "tables.../orders: String should match pattern",
        ),
        (
            "ingest-orders: {kind: ingest, table: orders, trigger: 5 seconds}",
            "ingest-orders: {kind: ingest, table: orders, trigger: 5 seconds, mode: inline}",
            "jobs.ingest-orders: mode: inline is for process jobs",
        ),
        (
            "  ingest-orders: {kind: ingest, table: orders, trigger: 5 seconds}\n"
            "  ingest-clickstream: {kind: ingest, table: clickstream, trigger: 5 seconds}\n"
            "  ingest-customers: {kind: ingest, table: customers, trigger: 5 seconds}\n"
            "  process-orders: {kind: process, table: orders, trigger: 10 seconds}",
            "  ingest-clickstream: {kind: ingest, table: clickstream, trigger: 5 seconds}\n"
            "  ingest-customers: {kind: ingest, table: customers, trigger: 5 seconds}\n"
            "  process-orders: {kind: process, table: orders, trigger: 10 seconds, mode: inline}",
            "jobs.process-orders.mode: inline needs an ingest job of 'orders'",
        ),
        (
            "  process-orders: {kind: process, table: orders, trigger: 10 seconds}",
            "  process-orders: {kind: process, table: orders, trigger: 10 seconds}\n"
            "  process-orders-now: {kind: process, table: orders, mode: inline}",
            "jobs.process-orders-now.mode: inline processes 'orders', so does process-orders",
        ),
        (
            "compaction: {zorder_by: [customer_id]}",
            "compaction: {zorder_by: [customer]}",
            "tables.orders: compaction.zorder_by: 'customer' is not a column of schema_ddl",
        ),
        (
            "compaction: {zorder_by: [customer_id]}",
            "compaction: {retention: 30 minutes}",
            "tables.orders.compaction.retention: retention '30 minutes' is under 1 hour",
        ),
        (
            "inputs: [orders]",
            "inputs: [order]",
            "curated.daily_revenue.inputs[0]: no table named 'order'",
        ),
        (
            "inputs: [customers]",
            "inputs: [orders]",
            "curated.customers: kind current_state needs a cdc input, 'orders' is not one",
        ),
        (
            "keys: [customer_id]\n    history",
            "keys: [id]\n    history",
            "curated.customers.keys: 'id' is not a column of 'customers'",
        ),
        (
            "date_column: order_date\n    sql: >-",
            "date_column: order_date\n    sqlx: >-",
            "curated.daily_revenue",
        ),
        (
            "keys: [order_date, country]",
            "keys: [country]",
            "curated.daily_revenue: date_column 'order_date' must be one of keys",
        ),
        (
            "    date_column: order_date\n",
            "    date_column: order_date\n    compaction: {zorder_by: [country]}\n",
            "curated.daily_revenue: compaction.zorder_by applies to processed tables",
        ),
        (
            "  processed.orders:\n    - {name: orders_present",
            "  gold.orders:\n    - {name: orders_present",
            "quality.gold.orders: 'gold' is not a layer (layers: raw, processed, quarantine, "
            "curated)",
        ),
        (
            "  processed.orders:\n    - {name: orders_present",
            "  orders:\n    - {name: orders_present",
            "quality.orders: 'orders' is not a layer.table name (e.g. processed.orders)",
        ),
        (
            "  processed.orders:\n    - {name: orders_present",
            "  processed.order:\n    - {name: orders_present",
            "quality.processed.order: no table named 'order'",
        ),
        (
            "  curated.customers:\n    - {name: customers_unique",
            "  curated.customer:\n    - {name: customers_unique",
            "quality.curated.customer: no curated table named 'customer' (curated: customers, "
            "customers_history, daily_revenue, funnel)",
        ),
        (
            "column: customer_id, min_ratio: 0.99}",
            "column: custmer_id, min_ratio: 0.99}",
            "quality.processed.orders[1] (orders_customer_complete): 'custmer_id' is not a "
            "column of processed.orders",
        ),
        (
            "columns: [customer_id]}\n    - {name: customers_email_complete",
            "columns: [valid_from]}\n    - {name: customers_email_complete",
            "quality.curated.customers[0] (customers_unique): 'valid_from' is not a column of "
            "curated.customers",
        ),
        (
            "column: customer_id, min_ratio: 0.99}",
            "column: customer_id}",
            "quality.processed.orders[1]: quality rule kind 'completeness' needs min_ratio",
        ),
        (
            "{name: orders_present, kind: row_count, min: 1}",
            "{name: orders_present, kind: row_count, min: 1, max_age: 1 day}",
            "quality.processed.orders[0]: quality rule kind 'row_count' takes no max_age (it "
            "takes min, max)",
        ),
        (
            "{name: orders_present, kind: row_count, min: 1}",
            "{name: orders_present, kind: row_count, min: 10, max: 1}",
            "quality.processed.orders[0]: min 10 is more than max 1",
        ),
        (
            "{name: orders_fresh, kind: freshness, max_age: 1 day}",
            "{name: orders_fresh, kind: freshness, max_age: 1 hr}",
            "quality.processed.orders[3].max_age: String should match pattern",
        ),
        (
            "{name: orders_fresh, kind: freshness, max_age: 1 day}",
            "{name: orders_present, kind: freshness, max_age: 1 day}",
            "quality.processed.orders[3] (orders_present): a rule of processed.orders has this "
            "name already",
        ),
        (
            "reference: curated.customers, min_ratio",
            "reference: curated.customer, min_ratio",
            "quality.processed.orders[4] (orders_customer_known): reference: no curated table "
            "named 'customer'",
        ),
        (
            "reference: curated.customers, min_ratio",
            "reference: curated.customers, reference_columns: [id], min_ratio",
            "quality.processed.orders[4] (orders_customer_known): 'id' is not a column of "
            "curated.customers",
        ),
        (
            "  quality: {kind: quality}\n",
            "  quality: {kind: qualty}\n",
            "jobs.quality.kind: Input should be",
        ),
        (
            "path: s3://shop-delivery/curated/daily_revenue/",
            "path: gs://shop-delivery/curated/daily_revenue/",
            "crawlers.daily_revenue_export.path: 'gs://shop-delivery/curated/daily_revenue/': "
            "a crawler reads a local folder or s3://bucket/prefix",
        ),
        (
            "daily_revenue/\n    format: json\n",
            "daily_revenue/\n    table: orders_manifest\n    database: shop_raw\n",
            "crawlers.daily_revenue_export: shop_raw.orders_manifest is where the catalog job "
            "registers a lake table",
        ),
        (
            "daily_revenue/\n    format: json\n",
            "daily_revenue/\n    table: customers_history\n    database: shop_curated\n",
            "crawlers.daily_revenue_export: shop_curated.customers_history is where the catalog "
            "job registers a lake table",
        ),
        (
            "    table: processed.orders\n    stream: shop-big-orders\n",
            "    table: processed.order\n    stream: shop-big-orders\n",
            "exports.big_orders.table: no lake table 'processed.order'",
        ),
        (
            "    stream: shop-big-orders\n",
            "    stream: shop-big-order\n",
            "exports.big_orders.stream: 'shop-big-order' is not one of firehose "
            "(shop-curated-orders, shop-big-orders)",
        ),
        (
            "  topic: shop-alerts\n",
            "  topic: shop-alert\n",
            "notifications.topic: 'shop-alert' is not one of sns_topics (shop-alerts) nor a "
            "topic ARN",
        ),
        (
            "crawlers:\n  daily_revenue_export:",
            "crawlers: {}\nunused:\n  daily_revenue_export:",
            "unused: unknown key",
        ),
        (
            "crawlers:\n  daily_revenue_export:\n",
            "crawlers:\n  other:\n    path: exports/\n    table: daily_revenue_export\n"
            "  daily_revenue_export:\n",
            "crawlers.daily_revenue_export: other registers shop_landing.daily_revenue_export as "
            "well",
        ),
    ],
    ids=[
        "schema-type",
        "event-time",
        "event-id",
        "regex",
        "rule-type",
        "rule-column",
        "custom-sql-syntax",
        "custom-sql-column",
        "trigger",
        "table-escaping-the-lake",
        "inline-ingest-job",
        "inline-without-ingest",
        "inline-beside-another",
        "zorder-column",
        "retention-under-an-hour",
        "curated-input",
        "current-state-needs-cdc",
        "current-state-key",
        "sql-needs-sql",
        "date-column-not-a-key",
        "zorder-on-curated",
        "quality-layer",
        "quality-not-layer-dot-table",
        "quality-table",
        "quality-curated-table",
        "quality-processed-column",
        "quality-current-state-column",
        "quality-argument-missing",
        "quality-argument-of-another-kind",
        "quality-row-count-bounds",
        "quality-max-age",
        "quality-rule-name-twice",
        "quality-reference-table",
        "quality-reference-column",
        "quality-job-kind",
        "crawler-path",
        "crawler-over-a-lake-table",
        "crawler-over-a-history-table",
        "export-table",
        "export-stream",
        "notification-topic",
        "crawler-unknown-key",
        "two-crawlers-one-table",
    ],
)
def test_what_a_job_would_fail_on_is_refused_when_the_config_loads(
    config_dir: Path, old: str, new: str, expected: str
) -> None:
    edit(config_dir / "pipeline.yaml", old, new)
    result = run_cli("--config", str(config_dir), "config", "show")
    assert result.returncode == 2, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"{config_dir / 'pipeline.yaml'}: {expected}" in lines[0]


def test_a_java_named_group_is_a_valid_pattern() -> None:
    rule = Rule(name="r", kind="regex", column="c", pattern=r"^(?<area>\d{3})-(?<=-)\d+$")
    assert rule.pattern is not None and "(?<area>" in rule.pattern


def test_env_references_keep_secrets_out_of_the_file(config_dir: Path) -> None:
    edit(
        config_dir / "local.yaml",
        "  security_protocol: PLAINTEXT\n",
        "  security_protocol: PLAINTEXT\n"
        "  options: {sasl.jaas.config: 'password=\"${env:KAFKA_PASSWORD}\";'}\n",
    )
    loaded = load_config("local", config_dir, environ={"KAFKA_PASSWORD": "s3cret"})
    assert loaded.settings.kafka.options["sasl.jaas.config"] == 'password="s3cret";'
    with pytest.raises(ConfigError) as caught:
        load_config("local", config_dir, environ={})
    assert "kafka.options.sasl.jaas.config" in str(caught.value)
    assert "KAFKA_PASSWORD" in str(caught.value)


def test_an_inline_process_job_is_run_by_its_ingest_job(config_dir: Path) -> None:
    edit(
        config_dir / "pipeline.yaml",
        "process-orders: {kind: process, table: orders, trigger: 10 seconds}",
        "process-orders: {kind: process, table: orders, trigger: 10 seconds, mode: inline}",
    )
    result = run_cli("--config", str(config_dir), "stream", "run", "process-orders")
    assert result.returncode == 2
    assert "process-orders runs inside ingest-orders (mode: inline)" in result.stderr
    assert "run ingest-orders" in result.stderr


def test_quality_rules_load_per_table_and_run_after_curate() -> None:
    pipeline = load_config("local", CONFIGS, environ={}).pipeline
    assert pipeline.jobs["quality"].kind == "quality"
    steps = pipeline.workflows["nightly"].steps
    assert steps.index("quality") == steps.index("curate") + 1
    kinds = {rule.kind for rules in pipeline.quality.values() for rule in rules}
    assert kinds == {"completeness", "uniqueness", "referential", "row_count", "freshness"}
    known = pipeline.quality["processed.orders"][4]
    assert (known.reference, known.reference_key, known.blocking) == (
        "curated.customers",
        ["customer_id"],
        False,
    )


@pytest.mark.parametrize(
    ("table", "rule"),
    [
        # A current-state table's history companion, with its validity columns.
        (
            "curated.customers_history",
            {"kind": "uniqueness", "columns": ["customer_id", "valid_from"]},
        ),
        # Processed system columns, and raw's contract.
        ("processed.orders", {"kind": "freshness", "column": "_ingest_ts", "max_age": "2 hours"}),
        ("raw.orders", {"kind": "completeness", "column": "key", "min_ratio": 0.5}),
        # A curated SQL table's columns are checked when the job reads the table.
        ("curated.daily_revenue", {"kind": "completeness", "column": "anything", "min_ratio": 1}),
        (
            "processed.clickstream",
            {
                "kind": "referential",
                "columns": ["customer_id"],
                "reference": "curated.customers_history",
                "min_ratio": 0.5,
            },
        ),
    ],
    ids=["history-table", "processed-system-column", "raw-contract", "curated-sql", "reference"],
)
def test_quality_rules_name_declared_tables_and_their_columns(
    table: str, rule: dict[str, object]
) -> None:
    pipeline = load_config("local", CONFIGS, environ={}).pipeline
    data = pipeline.model_dump(mode="json", exclude_none=True)
    data["quality"] = {table: [{"name": "r", **rule}]}
    checked = type(pipeline).model_validate(data)
    assert checked.quality[table][0].blocking is True


def next_two_am(after: datetime) -> datetime:
    today = after.replace(hour=2, minute=0, second=0, microsecond=0)
    return today if today > after else today + timedelta(days=1)


def test_workflow_list_gives_each_workflow_s_next_scheduled_time() -> None:
    before = datetime.now(UTC)
    result = run_cli("--config", str(CONFIGS), "workflow", "list", "--json")
    after = datetime.now(UTC)
    assert result.returncode == 0, result.stderr
    nightly, pulled, arrived = json.loads(result.stdout)
    assert nightly["steps"] == ["compact", "curate", "quality", "catalog", "export"]
    assert nightly["jobs"]["curate"] == {
        "on_success": ["compact"],
        "on_failure": [],
        "on_completion": [],
    }
    assert nightly["schedule"] == "cron(0 2 * * ? *)"
    assert datetime.fromisoformat(nightly["next"]) in {next_two_am(before), next_two_am(after)}
    assert (pulled["workflow"], pulled["schedule"]) == ("products-pull", "rate(15 minutes)")
    assert before < datetime.fromisoformat(pulled["next"]) <= after + timedelta(minutes=15)
    # Started by new files: no next time.
    assert (arrived["workflow"], arrived["on_arrival"], arrived["next"]) == (
        "returns-arrived",
        "returns",
        None,
    )


def test_a_workflow_schedule_aws_would_refuse_is_a_config_error(config_dir: Path) -> None:
    edit(
        config_dir / "pipeline.yaml", 'schedule: "cron(0 2 * * ? *)"', 'schedule: "cron(0 2 * * *)"'
    )
    result = run_cli("--config", str(config_dir), "workflow", "list")
    assert result.returncode == 2
    assert "workflows.nightly.schedule" in result.stderr
    assert "AWS cron has six fields" in result.stderr
