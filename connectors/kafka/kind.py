"""Kafka and MSK topics as a source kind."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from connectors.base import (
    ErrorTranslator,
    Event,
    Resource,
    Send,
    Sink,
    SourceKind,
    StreamRequest,
)
from connectors.kafka import admin
from connectors.kafka.client import client_config
from connectors.kafka.producer import KafkaRecordProducer
from connectors.kafka.source import KafkaStreamOptions, failure_from, read_kafka_stream
from streamlake.config.pipeline import KafkaSource
from streamlake.config.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from connectors.aws import AwsEndpoint


class KafkaKind(SourceKind[KafkaSource]):
    kind = "kafka"

    def resource_identity(self, source: KafkaSource) -> tuple[str, str]:
        return ("kafka topic", source.topic)

    def resources(
        self, source: KafkaSource, settings: Settings, aws: AwsEndpoint
    ) -> list[Resource]:
        topic = admin.TopicSpec(source.topic, source.partitions, source.replication_factor)
        client = client_config(settings.kafka)
        return [
            Resource(
                *self.resource_identity(source),
                partial(admin.topic_exists, client, topic.name),
                partial(admin.ensure_topic, client, topic),
            )
        ]

    def producer(
        self, source: KafkaSource, settings: Settings, aws: AwsEndpoint
    ) -> tuple[Send, Sink]:
        producer = KafkaRecordProducer(client_config(settings.kafka), source.topic)

        def send(event: Event) -> None:
            producer.send(event.key.encode(), event.payload)

        return send, producer

    def open_stream(
        self, source: KafkaSource, request: StreamRequest
    ) -> tuple[DataFrame, ErrorTranslator]:
        options = KafkaStreamOptions(
            bootstrap_servers=request.settings.bootstrap_servers,
            topic=source.topic,
            # Spark logs a batch's end as the next offset per partition, which is what
            # startingOffsets takes.
            starting_offsets=request.start_offset or source.starting_offsets,
            max_offsets_per_trigger=source.max_offsets_per_trigger,
            min_partitions=source.min_partitions,
            fail_on_data_loss=not request.table.accept_data_loss,
            security_protocol=request.settings.kafka.security_protocol,
            sasl_mechanism=request.settings.kafka.sasl_mechanism,
            client_options=dict(request.settings.kafka.options),
        )
        return read_kafka_stream(request.spark, options), partial(failure_from, topic=source.topic)


KAFKA = KafkaKind()
