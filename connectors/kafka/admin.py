"""Kafka topic administration and a produce/consume health probe (kafka-python).

Each function takes ``client``, kafka-python's connection settings (``client_config``)."""

from __future__ import annotations

import logging
import time
import uuid
from contextlib import closing, suppress
from dataclasses import dataclass
from typing import Any

from streamlake.errors import ResourceError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int = 1
    replication_factor: int = 1


def existing_topics(client: dict[str, Any]) -> dict[str, int]:
    """Topic name -> partition count."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(**client, client_id="streamlake-admin")
    with closing(admin):
        described = admin.describe_topics()
    return {t["name"]: len(t["partitions"]) for t in described if not t.get("error_code")}


def topic_exists(client: dict[str, Any], name: str) -> bool:
    return name in existing_topics(client)


def ensure_topic(client: dict[str, Any], spec: TopicSpec) -> bool:
    """Create the topic if it does not exist; True if created."""
    return bool(ensure_topics(client, [spec]))


def ensure_topics(client: dict[str, Any], specs: list[TopicSpec]) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    present = existing_topics(client)
    for spec in specs:
        if spec.name in present and present[spec.name] != spec.partitions:
            raise ResourceError(
                f"exists with {present[spec.name]} partitions, the pipeline declares "
                f"{spec.partitions}",
                "change the pipeline or recreate the topic",
                kind="Kafka topic",
                name=spec.name,
            )
    missing = [spec for spec in specs if spec.name not in present]
    if not missing:
        return []
    admin = KafkaAdminClient(**client, client_id="streamlake-admin")
    with closing(admin):
        for spec in missing:
            with suppress(TopicAlreadyExistsError):
                admin.create_topics([NewTopic(spec.name, spec.partitions, spec.replication_factor)])
                log.info("created Kafka topic %s (%s partitions)", spec.name, spec.partitions)
    return [spec.name for spec in missing]


def round_trip(client: dict[str, Any], topic: str, timeout_s: float = 30.0) -> float:
    """Produce one message with acks=all and consume it back; return seconds taken."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    started = time.monotonic()
    marker = uuid.uuid4().hex.encode()
    producer = KafkaProducer(**client, acks="all")
    with closing(producer):
        sent = producer.send(topic, value=marker).get(timeout=timeout_s)
    consumer = KafkaConsumer(**client, enable_auto_commit=False, consumer_timeout_ms=1000)
    with closing(consumer):
        partition = TopicPartition(topic, sent.partition)
        consumer.assign([partition])
        consumer.seek(partition, sent.offset)
        deadline = started + timeout_s
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                if any(record.value == marker for record in records):
                    return time.monotonic() - started
    raise TimeoutError(f"message produced to {topic} was not consumed back in {timeout_s}s")


def record_counts(client: dict[str, Any], topic: str) -> dict[int, int]:
    """Partition -> records currently retained (end offset minus beginning offset)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**client, enable_auto_commit=False)
    with closing(consumer):
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        begin = consumer.beginning_offsets(partitions)
        end = consumer.end_offsets(partitions)
    return {tp.partition: end[tp] - begin[tp] for tp in partitions}
