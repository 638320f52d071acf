"""The local AWS server behaves as AWS where the jobs rely on it: it keeps Kinesis streams
and DynamoDB tables (with their change streams) across a graceful restart, positions
included, as the chaos soak's AWS restart needs (a reader resumes at the sequence number
it had), and settles racing conditional writes as S3 does."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.conftest import free_ports
from tests.support import poll

pytestmark = pytest.mark.integration


def start_server(port: int, state_file: Path, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "streamlake.local.moto_server", "-H", "127.0.0.1"]
    with log.open("ab") as out:
        return subprocess.Popen(
            [*command, "-p", str(port), "--state-file", str(state_file)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def client(service: str, port: int) -> Any:
    return boto3.client(
        service,
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="eu-west-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def answers(port: int) -> bool:
    try:
        client("kinesis", port).list_streams()
    except Exception:
        return False
    return True


def stream_records(port: int, stream_arn: str) -> list[str]:
    streams = client("dynamodbstreams", port)
    shard = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]
    iterator = streams.get_shard_iterator(
        StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = streams.get_records(ShardIterator=iterator)["Records"]
    return [r["dynamodb"]["SequenceNumber"] for r in records]


def test_a_restarted_server_keeps_streams_tables_and_positions(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    state_file = tmp_path / "state.pickle"
    server = start_server(port, state_file, tmp_path / "aws.log")
    try:
        poll(lambda: answers(port), 60, "the AWS server to answer")
        kinesis = client("kinesis", port)
        kinesis.create_stream(StreamName="clicks", ShardCount=1)
        put = [
            kinesis.put_record(StreamName="clicks", Data=b"%d" % n, PartitionKey="k")
            for n in range(5)
        ]
        dynamodb = client("dynamodb", port)
        table = dynamodb.create_table(
            TableName="customers",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )["TableDescription"]
        for n in range(3):
            dynamodb.put_item(TableName="customers", Item={"id": {"S": f"c{n}"}})
        changes = stream_records(port, table["LatestStreamArn"])
        assert len(changes) == 3

        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
        assert state_file.stat().st_mode & 0o077 == 0, "the saved state is its owner's only"
        server = start_server(port, state_file, tmp_path / "aws.log")
        poll(lambda: answers(port), 60, "the restarted AWS server to answer")

        shard = kinesis.list_shards(StreamName="clicks")["Shards"][0]["ShardId"]
        iterator = kinesis.get_shard_iterator(
            StreamName="clicks",
            ShardId=shard,
            ShardIteratorType="AFTER_SEQUENCE_NUMBER",
            StartingSequenceNumber=put[2]["SequenceNumber"],
        )["ShardIterator"]
        after = kinesis.get_records(ShardIterator=iterator)["Records"]
        assert [r["Data"] for r in after] == [b"3", b"4"]
        more = kinesis.put_record(StreamName="clicks", Data=b"5", PartitionKey="k")
        assert int(more["SequenceNumber"]) > int(put[-1]["SequenceNumber"])
        assert dynamodb.scan(TableName="customers")["Count"] == 3
        assert stream_records(port, table["LatestStreamArn"]) == changes
    finally:
        server.kill()
        server.wait(timeout=30)


def test_of_two_racing_conditional_puts_of_one_key_exactly_one_wins(tmp_path: Path) -> None:
    """S3 refuses the second create of a key under If-None-Match even when both uploads
    overlap: Delta's conditional-put log store relies on it to refuse a second commit of
    one version. Big bodies make the uploads overlap in the server."""
    import threading

    from botocore.exceptions import ClientError

    port = free_ports(1)[0]
    server = start_server(port, tmp_path / "state.pickle", tmp_path / "server.log")
    try:
        poll(lambda: answers(port), 60, "the local AWS server")
        s3 = client("s3", port)
        s3.create_bucket(
            Bucket="race", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
        body = b"x" * 6_000_000
        for round_ in range(12):
            start = threading.Barrier(2)
            outcomes: list[str] = []

            def put(
                start: threading.Barrier = start,
                outcomes: list[str] = outcomes,
                key: str = f"commit-{round_}",
            ) -> None:
                start.wait()
                try:
                    s3.put_object(Bucket="race", Key=key, Body=body, IfNoneMatch="*")
                    outcomes.append("won")
                except ClientError as error:
                    outcomes.append(error.response["Error"]["Code"])

            racers = [threading.Thread(target=put) for _ in range(2)]
            for racer in racers:
                racer.start()
            for racer in racers:
                racer.join(timeout=120)
            assert sorted(outcomes) == ["PreconditionFailed", "won"], f"round {round_}"
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
