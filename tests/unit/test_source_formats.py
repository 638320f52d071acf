"""Source-side formats checked without services: KPL aggregates, shard offsets, and the
errors that travel back from Spark's workers."""

from __future__ import annotations

import json

from aws_kinesis_agg.aggregator import RecordAggregator

from connectors.kafka.source import KafkaStreamOptions, data_loss_from, failure_from
from connectors.kinesis.kpl import deaggregate
from connectors.shard_stream.errors import data_loss, translate
from connectors.shard_stream.offsets import ShardState, StreamOffset
from streamlake.errors import DataLossError


def test_kpl_aggregate_from_the_reference_aggregator_is_split_into_user_records() -> None:
    aggregator = RecordAggregator()
    payloads = [json.dumps({"n": n, "pad": "x" * n}).encode() for n in range(50)]
    for n, payload in enumerate(payloads):
        aggregator.add_user_record(f"pk-{n % 3}", payload)
    _pk, _hash, data = aggregator.clear_and_get().get_contents()
    records = deaggregate(data)
    assert records is not None
    assert [r.data for r in records] == payloads
    assert [r.partition_key for r in records] == [f"pk-{n % 3}" for n in range(50)]


def test_plain_or_damaged_data_is_not_an_aggregate() -> None:
    assert deaggregate(b'{"n": 1}') is None
    aggregator = RecordAggregator()
    aggregator.add_user_record("k", b"value")
    _pk, _hash, data = aggregator.clear_and_get().get_contents()
    damaged = data[:-1] + bytes([data[-1] ^ 1])
    assert deaggregate(damaged) is None


def test_offsets_round_trip_in_a_stable_order() -> None:
    offset = StreamOffset(
        {
            "shardId-2": ShardState(after="9", finished=True),
            "shardId-1": ShardState(initial="AT_TIMESTAMP:1700000000000"),
        }
    )
    text = json.dumps(offset.to_json())
    assert text.index("shardId-1") < text.index("shardId-2")
    assert StreamOffset.from_json(text) == offset


def test_kafka_data_loss_message_names_topic_partition_and_range() -> None:
    message = (
        "[KAFKA_DATA_LOSS.COULD_NOT_READ_OFFSET_RANGE] Some data may have been lost because "
        "they are not available in Kafka any more; ... Could not read records in offset "
        "[100, 154) for topic partition orders-2 with consumer group spark-kafka-source-x."
    )
    error = data_loss_from(message, "orders")
    assert isinstance(error, DataLossError)
    assert (error.stream, error.partition, error.lost_from, error.lost_to) == (
        "orders",
        "2",
        "100",
        "154",
    )
    assert "data lost in orders partition 2: positions [100, 154)" in str(error)
    assert data_loss_from("some other failure", "orders") is None


def test_worker_errors_come_back_as_data_loss_errors() -> None:
    raised = data_loss("clickstream", "shardId-000000000001", "41", "57", "trimmed")
    spark_text = f"org.apache.spark.api.python.PythonException: Traceback...\n{raised}\n\tat ..."
    error = translate(spark_text)
    assert isinstance(error, DataLossError)
    assert (error.stream, error.partition, error.lost_from, error.lost_to) == (
        "clickstream",
        "shardId-000000000001",
        "41",
        "57",
    )
    assert translate("java.lang.OutOfMemoryError") is None


def test_msk_iam_options_are_passed_to_spark() -> None:
    options = KafkaStreamOptions(
        "b-1:9098", "orders", security_protocol="SASL_SSL", sasl_mechanism="AWS_MSK_IAM"
    ).spark_options()
    assert options["kafka.sasl.mechanism"] == "AWS_MSK_IAM"
    assert "IAMLoginModule" in options["kafka.sasl.jaas.config"]
    assert options["failOnDataLoss"] == "true"


def test_only_the_replayed_batch_metrics_failure_is_retryable() -> None:
    npe = 'java.lang.NullPointerException: Cannot invoke "scala.collection.IterableOps.map"'
    frame = "\tat org.apache.spark.sql.kafka010.KafkaMicroBatchStream$.metrics(Kafka.scala:520)"
    error = failure_from(f"{npe}\n{frame}\n\tat elsewhere", "orders")
    assert error is not None and error.retryable and "SPARK-55271" in str(error)
    other_npe = f"{npe}\n\tat org.apache.spark.sql.execution.SparkPlan.metrics(SparkPlan.scala:1)"
    assert (
        failure_from(f"{other_npe}\n{frame.replace('metrics', 'planInputPartitions')}", "o") is None
    )
    assert failure_from("java.lang.IllegalStateException: boom", "orders") is None
