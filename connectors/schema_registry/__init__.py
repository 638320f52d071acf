"""Avro payloads whose schemas live in a registry: Confluent Schema Registry or the AWS
Glue Schema Registry. Producers and tools encode and decode here; Spark slices the same
headers in SQL (the ``wire`` constants) and decodes the body with spark-avro."""

from __future__ import annotations

from connectors.schema_registry.confluent import ConfluentSchemaRegistry
from connectors.schema_registry.glue import GlueSchemaRegistry
from connectors.schema_registry.registry import SchemaNotFoundError, SchemaRegistry
from connectors.schema_registry.serializer import AvroSerializer, decode
from connectors.schema_registry.wire import (
    Framed,
    Wire,
    WireFormatError,
    frame_confluent,
    frame_glue,
    unframe,
)

__all__ = [
    "AvroSerializer",
    "ConfluentSchemaRegistry",
    "Framed",
    "GlueSchemaRegistry",
    "SchemaNotFoundError",
    "SchemaRegistry",
    "Wire",
    "WireFormatError",
    "decode",
    "frame_confluent",
    "frame_glue",
    "unframe",
]
