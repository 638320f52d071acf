"""The catalog job against the local AWS server's Glue API (through boto3, over HTTP):
databases, tables, columns, partitions and manifests as Athena and Spectrum would find
them, a quiet second run, schema changes, compaction and deletes."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest

from batch.catalog import sync_catalog
from batch.jobs import BatchRun, run_batch_job
from batch.report import BatchReport
from connectors.aws import aws_endpoint
from streamlake.config.pipeline import Catalog, Pipeline
from streamlake.config.settings import LakeSettings, Settings
from streamlake.errors import EXIT_JOB_FAILED, CatalogError
from streamlake.lake.delta_rs import open_delta_table
from streamlake.paths import checkout_root
from tests.support import CountingGlue, cli_env, orders_only_pipeline, write_config_dir

pytestmark = [pytest.mark.integration, pytest.mark.spark]

ORDERS_DDL = (
    "order_id STRING, n BIGINT, qty INT, amount DECIMAL(12,2), paid BOOLEAN, ratio DOUBLE, "
    "created_at TIMESTAMP, items ARRAY<STRUCT<sku: STRING, qty: INT>>, "
    "attrs MAP<STRING, STRING>, body BINARY, event_date DATE"
)
# The table the manifests are checked on: types DuckDB and delta-rs give back alike.
EVENTS_DDL = "id BIGINT, kind STRING, amount DECIMAL(10,2), event_date DATE"


@pytest.fixture
def glue(settings: Settings) -> Any:
    return aws_endpoint(settings).client("glue")


def one_table_pipeline(loaded: Any, **catalog: Any) -> Pipeline:
    """The demo pipeline cut to one table (`orders`), its Glue databases this test's alone."""
    return orders_only_pipeline(loaded.pipeline, "cat", catalog=Catalog(**catalog))


def catalog_run(pipeline: Pipeline, settings: Settings, spark: Any = None) -> BatchRun:
    """A run of the catalog job; with no ``spark`` the run must not need Spark."""

    def session() -> Any:
        assert spark is not None, "this run should not have needed Spark"
        return spark

    return BatchRun("catalog", pipeline, settings, spark_factory=session)


def spark_write(
    spark: Any, path: str, ddl: str, rows: list[tuple[Any, ...]], **options: str
) -> None:
    frame = spark.createDataFrame(rows, ddl)
    writer = frame.write.format("delta").mode("append").options(**options)
    if "event_date" in frame.columns:
        writer = writer.partitionBy("event_date")
    writer.save(path)


def date(text: str) -> Any:
    import datetime

    return datetime.date.fromisoformat(text)


def outcomes(report: BatchReport) -> dict[str, str]:
    return {t.table: t.action for t in report.tables}


def test_registers_databases_tables_columns_partitions_and_a_second_run_writes_nothing(
    spark: Any, loaded: Any, lake: Settings, glue: Any
) -> None:
    import datetime
    from decimal import Decimal

    pipeline = one_table_pipeline(loaded)
    processed = lake.lake.table_path("processed", "orders")
    created = datetime.datetime(2024, 5, 1, 12, 0)
    rows = [
        (f"o{i}", i, i % 3, Decimal("9.50"), True, 0.5, created, [("sku", 1)], {"a": "b"}, b"x", d)
        for i, d in enumerate([date("2024-05-01"), date("2024-05-02"), date("2024-05-03")] * 2)
    ]
    spark_write(spark, processed, ORDERS_DDL, rows)
    # Curated tables found on disk: one plain, one Delta writes no manifest for.
    spark_write(
        spark,
        lake.lake.table_path("curated", "daily"),
        "country STRING, revenue DOUBLE",
        [("SE", 1.0)],
    )
    with_dv = lake.lake.table_path("curated", "events_dv")
    spark.sql(
        f"CREATE TABLE delta.`{with_dv}` (id BIGINT) USING delta "
        "TBLPROPERTIES ('delta.enableDeletionVectors' = 'true')"
    )

    report = sync_catalog(catalog_run(pipeline, lake, spark), glue)

    assert outcomes(report) == {
        "raw.orders": "skipped",
        "processed.orders": "registered",
        "quarantine.orders": "skipped",
        "curated.daily": "registered",
        "curated.events_dv": "registered",
    }
    registered = next(t for t in report.tables if t.table == "processed.orders")
    assert registered.detail.endswith("+3 partitions")
    assert registered.rows_changed is None
    skipped = [t.detail for t in report.tables if t.action == "skipped"]
    assert skipped == ["not written yet", "not written yet"]
    name = pipeline.name
    databases = {d["Name"] for d in glue.get_databases()["DatabaseList"]}
    # Only the layers with a written table get a database.
    assert {f"{name}_processed", f"{name}_curated"} <= databases
    assert f"{name}_raw" not in databases

    table = glue.get_table(DatabaseName=f"{name}_processed", Name="orders")["Table"]
    storage = table["StorageDescriptor"]
    assert [(c["Name"], c["Type"]) for c in storage["Columns"]] == [
        ("order_id", "string"),
        ("n", "bigint"),
        ("qty", "int"),
        ("amount", "decimal(12,2)"),
        ("paid", "boolean"),
        ("ratio", "double"),
        ("created_at", "timestamp"),
        ("items", "array<struct<sku:string,qty:int>>"),
        ("attrs", "map<string,string>"),
        ("body", "binary"),
    ]
    assert table["PartitionKeys"] == [{"Name": "event_date", "Type": "date"}]
    assert storage["Location"] == str(Path(processed).resolve())
    assert table["TableType"] == "EXTERNAL_TABLE"
    version = open_delta_table(processed, lake).version()
    assert table["Parameters"] == {
        "table_type": "DELTA",
        "classification": "delta",
        "EXTERNAL": "TRUE",
        "streamlake.delta_version": str(version),
    }

    manifest = glue.get_table(DatabaseName=f"{name}_processed", Name="orders_manifest")["Table"]
    manifest_storage = manifest["StorageDescriptor"]
    assert manifest_storage["InputFormat"] == "org.apache.hadoop.hive.ql.io.SymlinkTextInputFormat"
    assert (
        manifest_storage["OutputFormat"]
        == "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
    )
    assert manifest_storage["SerdeInfo"]["SerializationLibrary"] == (
        "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    )
    assert manifest_storage["Location"] == f"{Path(processed).resolve()}/_symlink_format_manifest/"
    assert manifest_storage["Columns"] == storage["Columns"]
    assert manifest["PartitionKeys"] == table["PartitionKeys"]
    partitions = glue_partitions(glue, f"{name}_processed", "orders_manifest")
    assert sorted(partitions) == ["2024-05-01", "2024-05-02", "2024-05-03"]
    for value, partition in partitions.items():
        location = partition["StorageDescriptor"]["Location"]
        assert location == f"{manifest_storage['Location']}event_date={value}/"
        assert (Path(location) / "manifest").is_file()

    daily = glue.get_table(DatabaseName=f"{name}_curated", Name="daily")["Table"]
    assert daily["PartitionKeys"] == []
    assert glue.get_table(DatabaseName=f"{name}_curated", Name="daily_manifest")
    dv_outcome = next(t for t in report.tables if t.table == "curated.events_dv")
    assert "no events_dv_manifest: deletion vectors are enabled" in dv_outcome.detail
    with pytest.raises(glue.exceptions.EntityNotFoundException):
        glue.get_table(DatabaseName=f"{name}_curated", Name="events_dv_manifest")

    counting = CountingGlue(glue)
    again = sync_catalog(catalog_run(pipeline, lake, spark), counting)
    assert counting.writes == []
    assert set(outcomes(again).values()) == {"skipped", "unchanged"}
    unchanged = glue.get_table(DatabaseName=f"{name}_processed", Name="orders")["Table"]
    assert unchanged["VersionId"] == table["VersionId"]


def test_manifests_follow_appends_schema_changes_compaction_and_deletes(
    spark: Any, loaded: Any, lake: Settings, glue: Any
) -> None:
    from decimal import Decimal

    from delta.tables import DeltaTable

    pipeline = one_table_pipeline(loaded)
    database = f"{pipeline.name}_processed"
    path = lake.lake.table_path("processed", "orders")
    days = [date("2024-06-01"), date("2024-06-02")]
    for start in (0, 100):  # two appends: several files per partition
        rows = [(start + i, "view", Decimal("1.25"), days[i % 2]) for i in range(20)]
        spark_write(spark, path, EVENTS_DDL, rows)
    run = catalog_run(pipeline, lake, spark)
    assert outcomes(sync_catalog(run, glue))["processed.orders"] == "registered"
    assert_spectrum_sees_the_table(glue, database, path, lake)

    # An added column, in an old partition and a new one.
    spark_write(
        spark,
        path,
        f"{EVENTS_DDL}, note STRING",
        [
            (500, "buy", Decimal("3.00"), days[0], "new"),
            (501, "buy", None, date("2024-06-03"), None),
        ],
        mergeSchema="true",
    )
    before = glue_partitions(glue, database, "orders_manifest")
    report = sync_catalog(run, glue)
    outcome = report.tables[1]
    assert (outcome.table, outcome.action) == ("processed.orders", "updated")
    assert "+1 partition" in outcome.detail and "2 partitions updated" in outcome.detail
    table = glue.get_table(DatabaseName=database, Name="orders")["Table"]
    assert table["StorageDescriptor"]["Columns"][-1] == {"Name": "note", "Type": "string"}
    after = glue_partitions(glue, database, "orders_manifest")
    for value in ("2024-06-01", "2024-06-02"):
        # The old partitions keep their place and now carry the new column as well.
        old, new = before[value]["StorageDescriptor"], after[value]["StorageDescriptor"]
        assert new["Location"] == old["Location"]
        assert [c["Name"] for c in new["Columns"]] == ["id", "kind", "amount", "note"]
    assert_spectrum_sees_the_table(glue, database, path, lake)

    delta = DeltaTable.forPath(spark, path)
    files_before = len(open_delta_table(path, lake).file_uris())
    delta.optimize().executeCompaction()
    assert len(open_delta_table(path, lake).file_uris()) < files_before
    assert sync_catalog(run, glue).tables[1].action == "unchanged"  # the same partitions
    assert_spectrum_sees_the_table(glue, database, path, lake)

    delta.delete("event_date = '2024-06-02'")  # a whole partition
    delta.delete("id = 4")  # a row: its file is rewritten
    report = sync_catalog(run, glue)
    assert "-1 partition" in report.tables[1].detail
    assert sorted(glue_partitions(glue, database, "orders_manifest")) == [
        "2024-06-01",
        "2024-06-03",
    ]
    assert not (Path(path) / "_symlink_format_manifest" / "event_date=2024-06-02").exists()
    assert_spectrum_sees_the_table(glue, database, path, lake)


def test_on_s3_manifests_name_s3_paths_and_history_tables_are_registered(
    spark: Any, loaded: Any, settings: Settings, glue: Any
) -> None:
    """A lake on S3 (the local AWS server): Delta names its files s3a://, which Spectrum does
    not read, so the manifests the catalog leaves must say s3://, and list exactly delta-rs's
    active files. The SCD type 2 companion of a declared curated table is registered too,
    though an S3 lake is never listed."""
    from decimal import Decimal

    root = f"s3a://shop-lake/tests/{uuid.uuid4().hex}"
    lake = settings.model_copy(
        update={"lake": LakeSettings(root=f"{root}/lake", checkpoint_root=f"{root}/cp")}
    )
    full: Pipeline = loaded.pipeline
    pipeline = one_table_pipeline(loaded).model_copy(
        update={"curated": {"customers": full.curated["customers"]}, "tables": full.tables}
    )
    path = lake.lake.table_path("processed", "orders")
    rows = [(i, "view", Decimal("1.25"), date(f"2024-06-0{1 + i % 2}")) for i in range(10)]
    spark_write(spark, path, EVENTS_DDL, rows)
    history = lake.lake.table_path("curated", "customers_history")
    spark_write(spark, history, "customer_id STRING, valid_from TIMESTAMP", [("c-1", None)])

    report = sync_catalog(catalog_run(pipeline, lake, spark), glue)

    assert outcomes(report)["curated.customers_history"] == "registered"
    database = f"{pipeline.name}_processed"
    s3 = aws_endpoint(settings).client("s3")
    active = set(open_delta_table(path, lake).file_uris())
    listed = set()
    for value, partition in glue_partitions(glue, database, "orders_manifest").items():
        location = partition["StorageDescriptor"]["Location"]
        assert location.startswith("s3://"), location
        bucket, key = location.removeprefix("s3://").split("/", 1)
        text = s3.get_object(Bucket=bucket, Key=f"{key.rstrip('/')}/manifest")["Body"].read()
        lines = text.decode().split()
        assert lines and all(line.startswith("s3://") for line in lines), (value, lines)
        listed |= {unquote(line) for line in lines}
    assert listed == {unquote(uri) for uri in active}


def test_a_run_against_a_missing_database_stops_before_writing(
    loaded: Any, lake: Settings, glue: Any
) -> None:
    import pyarrow as pa
    from deltalake import write_deltalake

    pipeline = one_table_pipeline(loaded, create_databases=False)
    write_deltalake(lake.lake.table_path("raw", "orders"), pa.table({"id": [1]}))
    counting = CountingGlue(glue)
    with pytest.raises(CatalogError) as raised:
        sync_catalog(catalog_run(pipeline, lake), counting)
    message = str(raised.value)
    assert "\n" not in message
    assert f"{pipeline.name}_raw" in message and "create_databases is false" in message
    assert raised.value.exit_code == EXIT_JOB_FAILED
    assert counting.writes == []


def test_a_missing_database_through_the_command_line(
    loaded: Any, stack_env: dict[str, str], tmp_path: Path
) -> None:
    import pyarrow as pa
    from deltalake import write_deltalake

    pipeline = one_table_pipeline(loaded, create_databases=False)
    configs = write_config_dir(
        tmp_path / "configs", pipeline, checkout_root() / "configs" / "local.yaml"
    )
    write_deltalake(str(tmp_path / "lake" / "raw" / "orders"), pa.table({"id": [1]}))
    result = subprocess.run(
        [sys.executable, "-m", "streamlake", "--config", str(configs), "batch", "run", "catalog"],
        capture_output=True,
        text=True,
        env=cli_env(stack_env, tmp_path),
        timeout=300,
    )
    assert result.returncode == EXIT_JOB_FAILED, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"{pipeline.name}_raw" in lines[0] and "does not exist" in lines[0]


def test_the_job_is_registered_by_kind(loaded: Any, lake: Settings) -> None:
    """`batch run catalog` reaches this job through the registry of batch job kinds."""
    pipeline = one_table_pipeline(loaded)
    report = run_batch_job(catalog_run(pipeline, lake))
    assert report.kind == "catalog"
    assert {t.action for t in report.tables} == {"skipped"}


def glue_partitions(glue: Any, database: str, table: str) -> dict[str, dict[str, Any]]:
    """The table's partitions by their (single) value."""
    pages = glue.get_paginator("get_partitions").paginate(DatabaseName=database, TableName=table)
    return {p["Values"][0]: p for page in pages for p in page["Partitions"]}


def manifest_files(location: str) -> set[str]:
    """The data files a partition's symlink manifest lists, as local paths."""
    lines = (Path(location) / "manifest").read_text().split()
    return {unquote(urlparse(line).path) for line in lines}


def assert_spectrum_sees_the_table(glue: Any, database: str, path: str, settings: Settings) -> None:
    """What a Hive reader of the manifest table sees is the Delta table: each partition's
    manifest lists exactly its active files, and reading them (partition values from Glue,
    columns by name as Spectrum maps Parquet) gives delta-rs's rows."""
    import duckdb

    delta = open_delta_table(path, settings)
    partitions = glue_partitions(glue, database, "orders_manifest")
    assert sorted(partitions) == sorted(p["event_date"] for p in delta.partitions())
    table = glue.get_table(DatabaseName=database, Name="orders_manifest")["Table"]
    columns = [c["Name"] for c in table["StorageDescriptor"]["Columns"]]
    seen = []
    for value, partition in partitions.items():
        files = manifest_files(partition["StorageDescriptor"]["Location"])
        assert files, value
        active = delta.file_uris(file_pruning_predicate=[("event_date", "=", value)])
        assert files == {str(Path(f)) for f in active}, value
        relation = duckdb.sql(
            f"select * from read_parquet({sorted(files)!r}, union_by_name = true)"
        )
        for row in relation.fetchall():
            record = dict(zip(relation.columns, row, strict=True))
            seen.append((*[record.get(c) for c in columns], date(value)))
    expected = [
        tuple(r[c] for c in [*columns, "event_date"]) for r in delta.to_pyarrow_table().to_pylist()
    ]
    assert sorted(seen, key=repr) == sorted(expected, key=repr)
