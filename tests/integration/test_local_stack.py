"""`streamlake local up / status / down` against real processes: a Kafka broker from the
jars and the AWS API server, on free loopback ports, driven through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import psutil
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from streamlake.config import load_config
from streamlake.local.stack import LocalStack
from tests.conftest import CONFIGS, discard_postgres, local_overrides

pytestmark = pytest.mark.integration


def streamlake(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLAKE")}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "streamlake", "--config", str(CONFIGS), *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=300,
    )


def test_up_is_idempotent_resources_exist_and_down_leaves_no_process(tmp_path: Path) -> None:
    env = local_overrides(tmp_path / "state")
    first = streamlake(tmp_path, env, "local", "up", "--json")
    assert first.returncode == 0, first.stderr
    try:
        first_status = json.loads(first.stdout)
        pids = {s["name"]: s["pid"] for s in first_status["services"]}
        assert all(s["health"] == "healthy" for s in first_status["services"])
        assert {r["state"] for r in first_status["resources"]} == {"created"}

        second = streamlake(tmp_path, env, "local", "up", "--json")
        assert second.returncode == 0, second.stderr
        second_status = json.loads(second.stdout)
        assert {s["name"]: s["pid"] for s in second_status["services"]} == pids
        assert {r["state"] for r in second_status["resources"]} == {"exists"}

        bootstrap = f"127.0.0.1:{env['STREAMLAKE__LOCAL__KAFKA_PORT']}"
        endpoint = f"http://127.0.0.1:{env['STREAMLAKE__LOCAL__AWS_PORT']}"
        assert_kafka_round_trip(bootstrap, "orders")
        assert_declared_aws_resources_exist(endpoint)
        assert_products_table_reachable_with_the_secret(endpoint)

        status = streamlake(tmp_path, env, "local", "status")
        assert status.returncode == 0, status.stderr
        assert "healthy" in status.stdout and "missing" not in status.stdout
        assert (tmp_path / "state" / "logs" / "kafka.log").stat().st_size > 0
    finally:
        down = streamlake(tmp_path, env, "local", "down")
        discard_postgres(local_stack(env))
    assert down.returncode == 0, down.stderr
    assert "stopped: postgres, kafka, aws" in down.stdout
    still_running = [
        pid
        for pid in pids.values()
        if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    ]
    assert still_running == []
    after = streamlake(tmp_path, env, "local", "status")
    assert after.returncode == 1
    assert "stopped" in after.stdout


def test_down_without_up_touches_nothing(tmp_path: Path) -> None:
    env = local_overrides(tmp_path / "state")
    result = streamlake(tmp_path, env, "local", "down")
    assert result.returncode == 0
    assert "nothing was running" in result.stdout


def test_a_taken_port_is_named(tmp_path: Path) -> None:
    import socket

    env = local_overrides(tmp_path / "state")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(env["STREAMLAKE__LOCAL__AWS_PORT"])))
        squatter.listen()
        result = streamlake(tmp_path, env, "local", "up")
    assert result.returncode == 1
    assert f"aws at 127.0.0.1:{env['STREAMLAKE__LOCAL__AWS_PORT']}" in result.stderr
    assert "is taken by a process this stack did not start" in result.stderr
    streamlake(tmp_path, env, "local", "down")


def assert_kafka_round_trip(bootstrap: str, topic: str) -> None:
    value = uuid.uuid4().hex.encode()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    sent = producer.send(topic, value=value).get(timeout=30)
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    partition = TopicPartition(topic, sent.partition)
    consumer.assign([partition])
    consumer.seek(partition, sent.offset)
    received = [r.value for records in consumer.poll(timeout_ms=10_000).values() for r in records]
    consumer.close()
    assert value in received


def assert_declared_aws_resources_exist(endpoint: str) -> None:
    def client(service: str):
        return boto3.client(
            service,
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    stream = client("kinesis").describe_stream_summary(StreamName="clickstream")
    assert stream["StreamDescriptionSummary"]["OpenShardCount"] == 2
    table = client("dynamodb").describe_table(TableName="customers")["Table"]
    assert table["StreamSpecification"] == {
        "StreamEnabled": True,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    buckets = {b["Name"] for b in client("s3").list_buckets()["Buckets"]}
    assert {"shop-lake", "shop-delivery"} <= buckets
    topics = [t["TopicArn"] for t in client("sns").list_topics()["Topics"]]
    assert any(arn.endswith(":shop-alerts") for arn in topics)
    assert (
        "shop-curated-orders" in client("firehose").list_delivery_streams()["DeliveryStreamNames"]
    )
    databases = {d["Name"] for d in client("glue").get_databases()["DatabaseList"]}
    assert {"shop_raw", "shop_processed", "shop_quarantine", "shop_curated"} <= databases


def local_stack(env: dict[str, str]) -> LocalStack:
    config = load_config("local", CONFIGS, environ=env)
    return LocalStack(config.settings, config.pipeline)


def assert_products_table_reachable_with_the_secret(endpoint: str) -> None:
    """The credentials `local up` wrote to Secrets Manager log in to the database it
    created, which holds the table the products source pulls from."""
    import psycopg

    secrets = boto3.client(
        "secretsmanager",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    secret = json.loads(secrets.get_secret_value(SecretId="shop/shop-db")["SecretString"])
    with psycopg.connect(
        host=secret["host"],
        port=secret["port"],
        dbname=secret["dbname"],
        user=secret["username"],
        password=secret["password"],
    ) as db:
        columns = db.execute(
            "select column_name from information_schema.columns "
            "where table_schema = 'public' and table_name = 'products' order by ordinal_position"
        ).fetchall()
    assert [c[0] for c in columns] == [
        "product_id",
        "name",
        "category",
        "price",
        "stock",
        "updated_at",
    ]
