"""The AWS and Kafka resources a pipeline declares, created or checked on one endpoint."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Literal

from connectors import firehose, glue_catalog, s3, sns
from connectors.aws import AwsEndpoint
from connectors.dynamodb_streams import admin as dynamodb_admin
from connectors.kafka import admin as kafka_admin
from connectors.kinesis import admin as kinesis_admin
from connectors.schema_registry import GlueSchemaRegistry
from streamlake.config.pipeline import DynamoDbSource, KafkaSource, KinesisSource, Pipeline

log = logging.getLogger(__name__)

# Firehose needs a delivery role; the local API server accepts any well-formed ARN. On AWS
# the role comes from infra/ (Terraform), which also creates every resource below.
LOCAL_FIREHOSE_ROLE = "arn:aws:iam::123456789012:role/streamlake-firehose"

State = Literal["created", "exists", "missing"]


@dataclass(frozen=True)
class ResourceStatus:
    kind: str
    name: str
    state: State


@dataclass(frozen=True)
class Resource:
    kind: str
    name: str
    exists: Callable[[], bool]
    create: Callable[[], bool]


def declared_resources(
    pipeline: Pipeline, bootstrap_servers: str, aws: AwsEndpoint
) -> list[Resource]:
    """Every resource of the pipeline, each with a check and an idempotent create.

    Buckets come before the Firehose streams that deliver into them."""
    resources: list[Resource] = []
    sources = list(pipeline.sources.values())
    for source in sources:
        if isinstance(source, KafkaSource):
            topic = kafka_admin.TopicSpec(
                source.topic, source.partitions, source.replication_factor
            )
            resources.append(
                Resource(
                    "kafka topic",
                    topic.name,
                    partial(topic_exists, bootstrap_servers, topic.name),
                    partial(ensure_topic, bootstrap_servers, topic),
                )
            )
    kinesis = aws.client("kinesis")
    for source in sources:
        if isinstance(source, KinesisSource):
            resources.append(
                Resource(
                    "kinesis stream",
                    source.stream,
                    partial(kinesis_admin.stream_exists, kinesis, source.stream),
                    partial(kinesis_admin.ensure_stream, kinesis, source.stream, source.shards),
                )
            )
    dynamodb = aws.client("dynamodb")
    for source in sources:
        if isinstance(source, DynamoDbSource):
            table = dynamodb_admin.TableSpec(
                source.table,
                source.hash_key,
                source.hash_key_type,
                source.range_key,
                source.range_key_type,
                source.stream_view,
            )
            resources.append(
                Resource(
                    "dynamodb table",
                    source.table,
                    partial(dynamodb_admin.has_stream, dynamodb, source.table),
                    partial(dynamodb_admin.ensure_table, dynamodb, table),
                )
            )
    s3_client = aws.client("s3")
    for bucket in pipeline.buckets:
        resources.append(
            Resource(
                "s3 bucket",
                bucket,
                partial(s3.bucket_exists, s3_client, bucket),
                partial(s3.ensure_bucket, s3_client, bucket, aws.region),
            )
        )
    sns_client = aws.client("sns")
    for sns_topic in pipeline.sns_topics:
        resources.append(
            Resource(
                "sns topic",
                sns_topic.name,
                partial(sns.topic_exists, sns_client, sns_topic.name),
                partial(sns.ensure_topic, sns_client, sns_topic.name),
            )
        )
    firehose_client = aws.client("firehose")
    for stream in pipeline.firehose:
        resources.append(
            Resource(
                "firehose stream",
                stream.name,
                partial(firehose.delivery_stream_exists, firehose_client, stream.name),
                partial(
                    firehose.ensure_delivery_stream,
                    firehose_client,
                    stream.name,
                    stream.bucket,
                    stream.prefix,
                    LOCAL_FIREHOSE_ROLE,
                ),
            )
        )
    if pipeline.catalog is not None:
        glue = aws.client("glue")
        database = pipeline.catalog.database
        resources.append(
            Resource(
                "glue database",
                database,
                partial(glue_catalog.database_exists, glue, database),
                partial(
                    glue_catalog.ensure_database, glue, database, f"streamlake {pipeline.name}"
                ),
            )
        )
    glue_registries = sorted(
        {t.avro.registry_name for t in pipeline.tables.values() if t.avro and t.avro.registry_name}
    )
    for name in glue_registries:
        registry = GlueSchemaRegistry(aws, name)
        resources.append(
            Resource(
                "glue schema registry", name, registry.registry_exists, registry.ensure_registry
            )
        )
    return resources


def topic_exists(bootstrap_servers: str, name: str) -> bool:
    return name in kafka_admin.existing_topics(bootstrap_servers)


def ensure_topic(bootstrap_servers: str, topic: kafka_admin.TopicSpec) -> bool:
    return bool(kafka_admin.ensure_topics(bootstrap_servers, [topic]))


def ensure_all(resources: list[Resource]) -> list[ResourceStatus]:
    statuses = []
    for resource in resources:
        created = resource.create()
        if created:
            log.info("created %s %s", resource.kind, resource.name)
        statuses.append(
            ResourceStatus(resource.kind, resource.name, "created" if created else "exists")
        )
    return statuses


def check_all(resources: list[Resource]) -> list[ResourceStatus]:
    return [
        ResourceStatus(r.kind, r.name, "exists" if r.exists() else "missing") for r in resources
    ]
