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
