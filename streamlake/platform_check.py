"""An end-to-end check of the embedded platform: Kafka -> Spark -> Delta -> delta-rs.

Until the streaming jobs exist this is what `streamlake demo` runs: it produces synthetic
orders to a Kafka topic, lands the whole topic in the Delta table ``raw.platform_check``
with the raw layer's columns, and reads the table back through Spark and delta-rs.
"""

from __future__ import annotations

import json
import logging
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from connectors.kafka import admin as kafka_admin
from streamlake.config.settings import Settings
from streamlake.lake import open_delta_table

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

TOPIC = "platform-check"
TABLE = "platform_check"
PARTITIONS = 3


@dataclass(frozen=True)
class PlatformCheckResult:
    produced: int
    topic_records: int
    table_path: str
    spark_rows: int
    spark_rows_by_partition: dict[str, int]
    delta_version: int
    delta_rs_rows: int


def synthetic_order(rng: random.Random, now: datetime) -> dict[str, object]:
    qty = rng.randint(1, 4)
    price = round(rng.uniform(2, 200), 2)
    return {
        "order_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "customer_id": f"c-{rng.randint(1, 500):05d}",
        "country": rng.choice(["DE", "FR", "PL", "SE", "GB", "US"]),
        "items": [{"sku": f"sku-{rng.randint(1, 99):03d}", "qty": qty, "price": price}],
        "amount": round(qty * price, 2),
        "currency": rng.choice(["EUR", "USD", "GBP"]),
        "status": "created",
        "created_at": (now - timedelta(seconds=rng.randint(0, 3600))).isoformat(),
    }


def produce_orders(bootstrap_servers: str, count: int, seed: int = 7) -> int:
    from kafka import KafkaProducer

    kafka_admin.ensure_topics(bootstrap_servers, [kafka_admin.TopicSpec(TOPIC, PARTITIONS)])
    rng = random.Random(seed)
    now = datetime.now(UTC)
    producer = KafkaProducer(
        bootstrap_servers=bootstrap_servers, acks="all", enable_idempotence=True, linger_ms=5
    )
    try:
        futures = []
        for _ in range(count):
            order = synthetic_order(rng, now)
            futures.append(
                producer.send(
                    TOPIC,
                    key=str(order["customer_id"]).encode(),
                    value=json.dumps(order).encode(),
                )
            )
        producer.flush()
        for future in futures:
            future.get(timeout=30)
    finally:
        producer.close()
    return count


def raw_columns(kafka_rows: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    return kafka_rows.select(
        F.col("value").alias("payload"),
        F.lit("kafka").alias("source"),
        F.col("topic").alias("stream"),
        F.col("partition").cast("string").alias("partition"),
        F.col("offset").cast("string").alias("position"),
        F.col("key").cast("string").alias("key"),
        F.col("timestamp").alias("event_ts"),
        F.current_timestamp().alias("ingest_ts"),
    ).withColumn("ingest_date", F.to_date("ingest_ts"))


def run_platform_check(
    spark: SparkSession, settings: Settings, count: int = 1000
) -> PlatformCheckResult:
    from pyspark.sql import functions as F

    bootstrap = settings.bootstrap_servers
    produced = produce_orders(bootstrap, count)
    topic = (
        spark.read.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap)
        .option("subscribe", TOPIC)
        .option("startingOffsets", "earliest")
        .option("endingOffsets", "latest")
        .load()
    )
    path = settings.lake.table_path("raw", TABLE)
    (
        raw_columns(topic)
        .write.format("delta")
        .mode("overwrite")
        .partitionBy("ingest_date")
        .save(path)
    )
    table = spark.read.format("delta").load(path)
    by_partition = {
        row["partition"]: row["count"]
        for row in table.groupBy("partition").agg(F.count("*").alias("count")).collect()
    }
    spark_rows = sum(by_partition.values())
    delta_table = open_delta_table(path, settings)
    return PlatformCheckResult(
        produced=produced,
        topic_records=sum(kafka_admin.record_counts(bootstrap, TOPIC).values()),
        table_path=path,
        spark_rows=spark_rows,
        spark_rows_by_partition=dict(sorted(by_partition.items())),
        delta_version=delta_table.version(),
        delta_rs_rows=delta_table.to_pyarrow_table(columns=["position"]).num_rows,
    )
