"""The Spark settings streamlake applies, checked without starting Spark."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamlake.config import load_config
from streamlake.errors import SetupError
from streamlake.paths import checkout_root
from streamlake.spark_session import spark_conf

CONFIGS = checkout_root() / "configs"


def test_local_session_uses_delta_local_jars_and_loopback() -> None:
    settings = load_config("local", CONFIGS, environ={}).settings
    conf = spark_conf(settings, cores=2)
    jars = conf["spark.jars"].split(",")
    assert any("delta-spark_2.13-4.2.0.jar" in jar for jar in jars)
    assert any("spark-sql-kafka-0-10_2.13-4.1.1.jar" in jar for jar in jars)
    assert any("hadoop-aws-3.4.2.jar" in jar for jar in jars)
    assert "spark.jars.packages" not in conf
    assert conf["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    assert conf["spark.sql.shuffle.partitions"] == "2"
    assert conf["spark.driver.bindAddress"] == "127.0.0.1"
    assert conf["spark.hadoop.fs.permissions.umask-mode"] == "077"
    assert conf["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:15000"
    assert conf["spark.hadoop.fs.s3a.path.style.access"] == "true"


def test_real_aws_uses_the_default_credential_chain() -> None:
    settings = load_config(
        "prod", CONFIGS, environ={"STREAMLAKE__KAFKA__BOOTSTRAP_SERVERS": "b-1:9098"}
    ).settings
    conf = spark_conf(settings, cores=2)
    assert "spark.hadoop.fs.s3a.endpoint" not in conf
    assert "spark.hadoop.fs.s3a.access.key" not in conf
    assert conf["spark.sql.shuffle.partitions"] == "64"
    assert "spark.driver.bindAddress" not in conf


def test_missing_jars_say_how_to_get_them(tmp_path: Path) -> None:
    settings = load_config(
        "local", CONFIGS, environ={"STREAMLAKE__SPARK__JARS_DIR": str(tmp_path)}
    ).settings
    with pytest.raises(SetupError) as caught:
        spark_conf(settings)
    assert "delta-spark" in str(caught.value)
    assert "make setup" in str(caught.value)


def test_s3_tables_commit_with_conditional_puts_unless_told_otherwise() -> None:
    settings = load_config("local", CONFIGS, environ={}).settings
    conf = spark_conf(settings, cores=2)
    assert conf["spark.delta.logStore.s3a.impl"] == "dev.streamlake.delta.S3ConditionalPutLogStore"
    assert any("streamlake-delta-logstore-" in jar for jar in conf["spark.jars"].split(","))

    single = load_config(
        "local", CONFIGS, environ={"STREAMLAKE__LAKE__S3_COMMITS": "single-driver"}
    ).settings
    assert "spark.delta.logStore.s3a.impl" not in spark_conf(single, cores=2)
