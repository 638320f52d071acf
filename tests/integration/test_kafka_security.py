"""Kafka over SASL/PLAIN, on the local broker's SASL listener: topic administration, the
producer and Spark's Kafka source all connect with the environment's security settings,
and a wrong password is refused."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from connectors.aws import aws_endpoint
from connectors.kafka.admin import existing_topics
from connectors.kafka.client import client_config
from connectors.kafka.kind import KAFKA
from streaming import runtime
from streaming.ingest import ingest_job
from streamlake.config.pipeline import KafkaSource
from streamlake.config.settings import Settings
from streamlake.local.kafka_broker import LOCAL_SASL_PASSWORD, LOCAL_SASL_USER
from tests.support import one_source_pipeline, raw_rows, with_lake

pytestmark = [pytest.mark.integration, pytest.mark.spark]


@dataclass(frozen=True)
class Order:
    key: str
    payload: bytes
    op: str = "insert"
    item: dict[str, Any] | None = None


def over_sasl(settings: Settings, password: str) -> Settings:
    if os.environ.get("STREAMLAKE_KAFKA_BOOTSTRAP") or settings.local.kafka_sasl_port is None:
        pytest.skip("needs the local broker's SASL listener")
    jaas = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'username="{LOCAL_SASL_USER}" password="{password}";'
    )
    kafka = settings.kafka.model_copy(
        update={
            "bootstrap_servers": f"{settings.local.host}:{settings.local.kafka_sasl_port}",
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "PLAIN",
            "options": {"sasl.jaas.config": jaas},
        }
    )
    return settings.model_copy(update={"kafka": kafka})


def test_admin_producer_and_spark_source_authenticate_with_sasl(
    spark: Any, settings: Any, tmp_path: Path
) -> None:
    secure = with_lake(over_sasl(settings, LOCAL_SASL_PASSWORD), tmp_path)
    aws = aws_endpoint(secure)
    topic = f"sasl-{uuid.uuid4().hex[:8]}"
    pipeline = one_source_pipeline({"kind": "kafka", "topic": topic, "partitions": 2})
    source = pipeline.sources["events"]
    assert isinstance(source, KafkaSource)
    (resource,) = KAFKA.resources(source, secure, aws)
    assert not resource.exists()
    assert resource.create() and resource.exists()
    send, sink = KAFKA.producer(source, secure, aws)
    for n in range(50):
        send(Order(f"k{n}", f'{{"id": "{n}"}}'.encode()))
    sink.flush()
    sink.close()
    assert sink.acked == 50

    job = ingest_job(spark, "ingest-events", pipeline, secure, aws, available_now=True)
    runtime.run([job], runtime.RunMode(available_now=True), runtime.StopSignal())

    rows = raw_rows(secure)
    assert sorted(r["payload"] for r in rows) == sorted(
        f'{{"id": "{n}"}}'.encode() for n in range(50)
    )


def test_a_wrong_password_is_refused(settings: Any) -> None:
    from kafka.errors import KafkaTimeoutError

    def topics_with(password: str) -> dict[str, int]:
        kafka = over_sasl(settings, password).kafka
        return existing_topics({**client_config(kafka), "bootstrap_timeout_ms": 5000})

    assert isinstance(topics_with(LOCAL_SASL_PASSWORD), dict)  # the same client, right password
    with pytest.raises(KafkaTimeoutError):
        topics_with("not-the-password")


def test_msk_iam_authentication_is_on_spark_s_classpath(spark: Any) -> None:
    """kafka.sasl_mechanism AWS_MSK_IAM names these classes to Spark's Kafka source."""
    from connectors.kafka.source import MSK_IAM_CALLBACK

    load = spark.sparkContext._jvm.org.apache.spark.util.Utils.classForName
    for name in ("software.amazon.msk.auth.iam.IAMLoginModule", MSK_IAM_CALLBACK):
        assert load(name, True, False).getName() == name
