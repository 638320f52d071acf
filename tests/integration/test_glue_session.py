"""On AWS Glue the session is Glue's: with ``spark.runtime: glue`` streamlake takes the
running session as it is and sets only what a running session accepts. (Glue itself cannot
run here; the test session stands in for the one Glue starts.)"""

from __future__ import annotations

from typing import Any

import pytest

from streamlake.spark_session import build_spark_session

pytestmark = pytest.mark.integration


def test_the_glue_runtime_takes_the_running_session_with_its_runtime_settings(
    spark: Any, settings: Any
) -> None:
    spark_settings = settings.spark.model_copy(
        update={
            "runtime": "glue",
            "shuffle_partitions": 3,
            "jars_dir": "/nonexistent",  # Glue's jars come with the job, not from a folder
            "conf": {"spark.sql.extensions": "ignored.Extension"},
        }
    )
    glue = settings.model_copy(update={"spark": spark_settings})
    before = spark.conf.get("spark.sql.shuffle.partitions")
    try:
        session = build_spark_session(glue)
        assert session is spark
        assert session.conf.get("spark.sql.shuffle.partitions") == "3"
        assert session.conf.get("spark.sql.session.timeZone") == "UTC"
        assert "DeltaSparkSessionExtension" in session.conf.get("spark.sql.extensions")
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", before)
