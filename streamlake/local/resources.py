"""The AWS and Kafka resources a pipeline declares, created or checked on one endpoint."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

from connectors import firehose, glue_catalog, s3, sns
from connectors.aws import AwsEndpoint
from connectors.base import Resource
from connectors.files.arrivals import arrival_queue_name, arrival_resources
from connectors.registry import source_kind
from connectors.schema_registry import GlueSchemaRegistry
from streamlake.config.pipeline import FilesSource, Pipeline
from streamlake.config.settings import Settings
from streamlake.lake.tables import LAYERS

log = logging.getLogger(__name__)

# Firehose needs a delivery role; the local API server accepts any well-formed ARN. On AWS
# the role comes from infra/ (Terraform), which also creates every resource below.
LOCAL_FIREHOSE_ROLE = "arn:aws:iam::123456789012:role/streamlake-firehose"

# kind -> (service, exists(client, name), create(client, name, **arguments)); buckets come
# before the Firehose streams that deliver into them.
AWS_RESOURCES: dict[str, tuple[str, Callable[..., bool], Callable[..., bool]]] = {
    "s3 bucket": ("s3", s3.bucket_exists, s3.ensure_bucket),
    "sns topic": ("sns", sns.topic_exists, sns.ensure_topic),
    "firehose stream": (
        "firehose",
        firehose.delivery_stream_exists,
        firehose.ensure_delivery_stream,
    ),
    "glue database": ("glue", glue_catalog.database_exists, glue_catalog.ensure_database),
}

State = Literal["created", "exists", "missing"]


@dataclass(frozen=True)
class ResourceStatus:
    kind: str
    name: str
    state: State


def declared_resources(pipeline: Pipeline, settings: Settings, aws: AwsEndpoint) -> list[Resource]:
    """Every resource of the pipeline, each with a check and an idempotent create."""
    resources = [
        resource
        for source in pipeline.sources.values()
        for resource in source_kind(source).resources(source, settings, aws)
    ]
    declared: dict[str, dict[str, dict[str, Any]]] = {
        "s3 bucket": {bucket: {"region": aws.region} for bucket in pipeline.buckets},
        "sns topic": {topic.name: {} for topic in pipeline.sns_topics},
        "firehose stream": {
            f.name: {"bucket": f.bucket, "prefix": f.prefix, "role_arn": LOCAL_FIREHOSE_ROLE}
            for f in pipeline.firehose
        },
        # Created whatever catalog.create_databases says: that governs the catalog job, and
        # `local up` stands in for infra/, which creates them on AWS.
        "glue database": {
            pipeline.glue_database(layer): {"description": f"streamlake {pipeline.name} {layer}"}
            for layer in LAYERS
        }
        | {
            pipeline.crawler_database(name): {
                "description": f"streamlake {pipeline.name} crawled files"
            }
            for name in pipeline.crawlers
        },
    }
    for kind, (service, exists, create) in AWS_RESOURCES.items():
        client = aws.client(service) if declared[kind] else None
        resources += [
            Resource(
                kind, name, partial(exists, client, name), partial(create, client, name, **args)
            )
            for name, args in declared[kind].items()
        ]
    for name in sorted({w.on_arrival for w in pipeline.workflows.values() if w.on_arrival}):
        source = pipeline.sources[name]
        assert isinstance(source, FilesSource)  # the pipeline checks on_arrival names one
        resources += arrival_resources(source, arrival_queue_name(pipeline.name, name), aws)
    avro = [t.avro for t in pipeline.tables.values() if t.avro]
    for name in sorted({a.registry_name for a in avro if a.registry_name}):
        registry = GlueSchemaRegistry(aws, name)
        resources.append(
            Resource(
                "glue schema registry", name, registry.registry_exists, registry.ensure_registry
            )
        )
    # A bucket may be declared twice (in buckets, and as a files source's place).
    return list({(r.kind, r.name): r for r in resources}.values())


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
