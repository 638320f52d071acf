"""Spark with Delta on the shared session: local disk and s3a on the local S3, each table's
log read back by delta-rs as well."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from streamlake.lake.delta_rs import open_delta_table

pytestmark = [pytest.mark.integration, pytest.mark.spark]


def write_and_read(spark: Any, settings: Any, path: str) -> None:
    rows = [(i, f"event-{i}", i % 3) for i in range(250)]
    frame = spark.createDataFrame(rows, "id LONG, name STRING, part INT")
    frame.write.format("delta").partitionBy("part").save(path)
    frame.limit(50).write.format("delta").mode("append").save(path)

    back = spark.read.format("delta").load(path)
    assert back.count() == 300
    assert back.where("id = 7").collect()[0]["name"] == "event-7"

    table = open_delta_table(path, settings)
    assert table.version() == 1
    assert table.metadata().partition_columns == ["part"]
    arrow = table.to_pyarrow_table()
    assert arrow.num_rows == 300
    assert sorted(set(arrow.column("id").to_pylist())) == list(range(250))


def test_delta_on_local_disk(spark: Any, settings: Any, tmp_path: Any) -> None:
    write_and_read(spark, settings, str(tmp_path / "events"))


def test_delta_on_s3a_against_the_local_s3(spark: Any, settings: Any) -> None:
    path = f"s3a://shop-lake/tests/{uuid.uuid4().hex}/events"
    write_and_read(spark, settings, path)
    from connectors.aws import AwsEndpoint

    s3 = AwsEndpoint(settings.aws.region, settings.aws.endpoint_url, "testing", "testing").client(
        "s3"
    )
    key_prefix = path.split("shop-lake/", 1)[1]
    listed = s3.list_objects_v2(Bucket="shop-lake", Prefix=f"{key_prefix}/_delta_log/")
    assert any(o["Key"].endswith("00000000000000000001.json") for o in listed["Contents"])


def test_a_merge_adding_a_column_fills_it_and_a_rerun_changes_nothing(
    spark: Any, settings: Any, tmp_path: Any
) -> None:
    """An edited curated definition gains a column: the MERGE adds it to the table and fills
    it on rows whose other values are unchanged; the same rows again change nothing."""
    from streamlake.lake.spark_delta import merge_rows

    path = str(tmp_path / "curated")
    first = spark.createDataFrame([("a", 1), ("b", 2)], "k STRING, n INT")
    merge_rows(spark, path, first, ["k"])
    wider = spark.createDataFrame([("a", 1, "x"), ("b", 2, None)], "k STRING, n INT, note STRING")

    counts = merge_rows(spark, path, wider, ["k"])

    assert (counts.inserted, counts.updated, counts.deleted) == (0, 1, 0)
    rows = open_delta_table(path, settings).to_pyarrow_table().to_pylist()
    assert sorted(rows, key=lambda r: r["k"]) == [
        {"k": "a", "n": 1, "note": "x"},
        {"k": "b", "n": 2, "note": None},
    ]
    assert merge_rows(spark, path, wider, ["k"]).changed == 0


def test_a_merge_that_changed_no_row_is_not_a_change_of_data(
    spark: Any, settings: Any, tmp_path: Any
) -> None:
    """Freshness of a curated table goes by its last commit that changed rows: a MERGE of
    the rows the table already holds commits, and does not count."""
    from streamlake.lake.delta_rs import last_data_change
    from streamlake.lake.spark_delta import merge_rows

    path = str(tmp_path / "curated")
    rows = spark.createDataFrame([("a", 1), ("b", 2)], "k STRING, n INT")
    merge_rows(spark, path, rows, ["k"])
    merge_rows(spark, path, rows, ["k"])
    assert open_delta_table(path, settings).version() == 1
    change = last_data_change(path, settings, 1)
    assert change is not None and change[0] == 0
    merge_rows(spark, path, spark.createDataFrame([("a", 5)], "k STRING, n INT"), ["k"])
    change = last_data_change(path, settings, 2)
    assert change is not None and change[0] == 2
