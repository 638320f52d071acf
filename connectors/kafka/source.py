"""Kafka and MSK as a Spark stream, through Spark's own Kafka source.

Delivery: exactly-once into the raw table when paired with the idempotent batch writer:
Spark records each batch's offset range in the checkpoint before running it, and a replayed
batch reads the same range. ``failOnDataLoss`` is on unless the table accepts data loss,
so offsets lost to retention stop the job (see ``data_loss_from``). A replayed batch after a
crash trips a Spark bug that ``failure_from`` recognises as retryable (restart once).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from streamlake.errors import DataLossError, StreamlakeError
from streamlake.lake.tables import SOURCE_RECORD

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

MSK_IAM_JAAS = "software.amazon.msk.auth.iam.IAMLoginModule required;"
MSK_IAM_CALLBACK = "software.amazon.msk.auth.iam.IAMClientCallbackHandler"


@dataclass(frozen=True)
class KafkaStreamOptions:
    bootstrap_servers: str
    topic: str
    starting_offsets: str = "earliest"
    max_offsets_per_trigger: int | None = None
    min_partitions: int | None = None
    fail_on_data_loss: bool = True
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    client_options: dict[str, str] = field(default_factory=dict)

    def spark_options(self) -> dict[str, str]:
        options = {
            "kafka.bootstrap.servers": self.bootstrap_servers,
            "subscribe": self.topic,
            "startingOffsets": self.starting_offsets,
            "failOnDataLoss": str(self.fail_on_data_loss).lower(),
            "kafka.security.protocol": self.security_protocol,
            "includeHeaders": "false",
        }
        if self.max_offsets_per_trigger:
            options["maxOffsetsPerTrigger"] = str(self.max_offsets_per_trigger)
        if self.min_partitions:
            options["minPartitions"] = str(self.min_partitions)
        if self.sasl_mechanism == "AWS_MSK_IAM":
            # Needs the aws-msk-iam-auth jar on the classpath (Glue ships it).
            options["kafka.sasl.mechanism"] = "AWS_MSK_IAM"
            options["kafka.sasl.jaas.config"] = MSK_IAM_JAAS
            options["kafka.sasl.client.callback.handler.class"] = MSK_IAM_CALLBACK
        elif self.sasl_mechanism:
            options["kafka.sasl.mechanism"] = self.sasl_mechanism
        options.update({f"kafka.{k}": v for k, v in self.client_options.items()})
        return options


def read_kafka_stream(spark: SparkSession, options: KafkaStreamOptions) -> DataFrame:
    """The topic as a stream of raw-layer rows (without the ingest columns)."""
    from pyspark.sql import functions as F

    frame = spark.readStream.format("kafka").options(**options.spark_options()).load()
    columns = (
        F.col("value"),
        F.lit("kafka"),
        F.col("topic"),
        F.col("partition").cast("string"),
        F.col("offset").cast("string"),
        F.col("key").cast("string"),
        F.col("timestamp"),
    )
    named = zip(columns, SOURCE_RECORD.names, strict=True)
    return frame.select(*[column.alias(name) for column, name in named])


# Spark's KAFKA_DATA_LOSS messages, most specific first.
_LOSS_PATTERNS = (
    re.compile(
        r"Could not read records in offset \[(?P<start>\d+), (?P<end>\d+)\) for topic "
        r"partition (?P<tp>\S+)"
    ),
    re.compile(
        r"Starting offset for (?P<tp>\S+) was (?P<start>\d+) but consumer reset to (?P<end>\d+)"
    ),
    re.compile(r"Partition (?P<tp>\S+) offset was changed from (?P<start>\d+) to (?P<end>\d+)"),
    re.compile(r"Cannot fetch offset (?P<start>\d+) \(.*TopicPartition: (?P<tp>[^)\s]+)"),
)


# The NullPointerException thrown by the metrics method itself: its first stack frames.
REPLAYED_BATCH_METRICS_NPE = re.compile(
    r"java\.lang\.NullPointerException[^\n]*(?:\n[^\n]*){0,2}?\n\s*at "
    r"org\.apache\.spark\.sql\.kafka010\.KafkaMicroBatchStream\$?\.metrics\("
)


def failure_from(message: str, topic: str) -> StreamlakeError | None:
    """The job error Spark's Kafka failure ``message`` stands for, if it is one we know."""
    return data_loss_from(message, topic) or replayed_batch_metrics_bug(message, topic)


def replayed_batch_metrics_bug(message: str, topic: str) -> StreamlakeError | None:
    """Spark 4.1's Kafka source fails the first batch after a restart that it replays from
    its offset log (SPARK-55271): the batch is written and committed, then reporting its
    metrics throws a NullPointerException, because the replay never asked the broker for the
    latest offsets. Retryable: the next start finds the batch committed and goes on."""
    if not REPLAYED_BATCH_METRICS_NPE.search(message):
        return None
    return StreamlakeError(
        f"Spark's Kafka source failed reporting metrics of a replayed batch of {topic} "
        "(SPARK-55271); the batch itself is written and committed",
        "the runtime restarts the query once for this; if it repeats, start the job again",
        retryable=True,
    )


def data_loss_from(message: str, topic: str) -> DataLossError | None:
    """Recognise Spark's Kafka data-loss failure and name topic, partition and offsets."""
    if "Some data may have been lost" not in message and "KAFKA_DATA_LOSS" not in message:
        return None
    for pattern in _LOSS_PATTERNS:
        match = pattern.search(message)
        if match:
            name, _, partition = match.group("tp").rpartition("-")
            groups = match.groupdict()
            return DataLossError(
                "offsets were deleted before the job read them (retention or DeleteRecords)",
                "raise the topic's retention, or set accept_data_loss on the table to go on",
                stream=name or topic,
                partition=partition,
                lost_from=groups.get("start") or "",
                lost_to=groups.get("end") or "",
            )
    return DataLossError(
        "Kafka reports data loss: " + message.strip().splitlines()[0][:300],
        "set accept_data_loss on the table to go on past the gap",
        stream=topic,
    )
