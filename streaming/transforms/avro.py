"""Avro payloads framed by a schema registry, turned into JSON text for the common parser.

Per batch the driver collects the distinct schema refs the payloads carry, fetches each
writer schema from the registry once (refs never change meaning, so they stay cached), and
Spark decodes every body with its own writer schema (``from_avro``). A batch may mix schema
versions: that is how a producer's schema change arrives mid-stream. A payload that is not
framed for the table's registry, names a schema the registry does not have, or does not
decode with its schema gets a ``_decode_error`` and goes to quarantine as a parse error.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from connectors.aws import aws_endpoint
from connectors.schema_registry import (
    ConfluentSchemaRegistry,
    GlueSchemaRegistry,
    SchemaNotFoundError,
    SchemaRegistry,
)
from connectors.schema_registry.wire import (
    CONFLUENT_HEADER_LEN,
    CONFLUENT_MAGIC,
    GLUE_COMPRESSION_NONE,
    GLUE_COMPRESSION_ZLIB,
    GLUE_HEADER_LEN,
    GLUE_HEADER_VERSION,
)
from streamlake.config.pipeline import AvroFormat, Table
from streamlake.config.settings import Settings
from streamlake.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

log = logging.getLogger(__name__)


def avro_decoder(table: Table, settings: Settings) -> AvroDecoder | None:
    """The decoder of an Avro table's payloads; None for JSON tables."""
    return AvroDecoder(registry_for(table.avro, settings)) if table.avro else None


def registry_for(avro: AvroFormat, settings: Settings) -> SchemaRegistry:
    if avro.registry == "glue":
        assert avro.registry_name is not None  # guaranteed by AvroFormat
        return GlueSchemaRegistry(aws_endpoint(settings), avro.registry_name)
    if settings.schema_registry.url is None:
        raise ConfigError(
            "a table reads Avro from a Confluent registry, but no registry URL is set",
            "set schema_registry.url in the environment file or STREAMLAKE__SCHEMA_REGISTRY__URL",
            source=f"configs/{settings.env}.yaml",
            key="schema_registry.url",
        )
    return ConfluentSchemaRegistry(settings.schema_registry.url, settings.schema_registry.timeout_s)


class AvroDecoder:
    """Adds ``_avro_text`` (the record as JSON text) and ``_decode_error`` to raw rows."""

    def __init__(self, registry: SchemaRegistry) -> None:
        self.registry = registry
        self.schemas: dict[str, str] = {}

    def decode(self, raw: DataFrame) -> DataFrame:
        from pyspark.sql import functions as F
        from pyspark.sql.avro.functions import from_avro

        framed = raw.select("*", *self.header_columns())
        refs = [r[0] for r in framed.select("_ref").distinct().collect() if r[0] is not None]
        missing_refs = self.resolve(refs)
        text: Column = F.lit(None).cast("string")
        for ref, schema in self.schemas.items():
            if ref in refs:
                record = from_avro(F.col("_body"), schema, {"mode": "PERMISSIVE"})
                decoded = F.when(~decode_failed(record, schema), F.to_json(record))
                text = F.when(F.col("_ref") == ref, decoded).otherwise(text)
        missing = F.create_map(*[F.lit(x) for pair in missing_refs.items() for x in pair])
        error = (
            F.when(F.col("_frame_error").isNotNull(), F.col("_frame_error"))
            .when(
                F.col("_ref").isin(list(missing_refs)),
                F.concat(F.lit("writer schema not found: "), F.element_at(missing, F.col("_ref"))),
            )
            .when(
                text.isNull(),
                F.concat(F.lit("Avro body does not decode with writer schema "), F.col("_ref")),
            )
        )
        return framed.select(
            *raw.columns,
            F.when(error.isNull(), text).alias("_avro_text"),
            error.alias("_decode_error"),
        )

    def header_columns(self) -> list[Column]:
        """``_ref`` (the schema ref), ``_body`` and ``_frame_error`` from the payload's header."""
        from pyspark.sql import functions as F

        payload = F.col("payload")
        first = F.hex(F.substring(payload, 1, 1))
        if self.registry.wire == "confluent":
            ok = (first == f"{CONFLUENT_MAGIC:02X}") & (F.length(payload) >= CONFLUENT_HEADER_LEN)
            ref = F.conv(F.hex(F.substring(payload, 2, 4)), 16, 10)
            body = F.expr(f"substring(payload, {CONFLUENT_HEADER_LEN + 1})")
            expected = "the Confluent wire format (magic byte 0x00, 4-byte schema id)"
        else:
            compression = F.hex(F.substring(payload, 2, 1))
            ok = (
                (first == f"{GLUE_HEADER_VERSION:02X}")
                & (F.length(payload) >= GLUE_HEADER_LEN)
                & (compression == f"{GLUE_COMPRESSION_NONE:02X}")
            )
            digits = F.lower(F.hex(F.substring(payload, 3, 16)))
            ref = F.concat_ws("-", *[F.substring(digits, start, n) for start, n in _UUID_GROUPS])
            body = F.expr(f"substring(payload, {GLUE_HEADER_LEN + 1})")
            expected = "the Glue Schema Registry format (header 0x03, no compression, UUID)"
        frame_error = F.when(
            ~F.coalesce(ok, F.lit(False)),
            F.concat(
                F.lit(f"not in {expected}: first bytes 0x"),
                F.coalesce(F.hex(F.substring(payload, 1, 2)), F.lit("")),
            ),
        )
        if self.registry.wire == "glue":
            compressed = F.hex(F.substring(payload, 1, 2)) == (
                f"{GLUE_HEADER_VERSION:02X}{GLUE_COMPRESSION_ZLIB:02X}"
            )
            frame_error = F.when(
                compressed,
                F.lit(
                    "zlib-compressed Glue payloads are not supported: "
                    "set the producer's compression to NONE"
                ),
            ).otherwise(frame_error)
        return [
            F.when(frame_error.isNull(), ref).alias("_ref"),
            F.when(frame_error.isNull(), body).alias("_body"),
            frame_error.alias("_frame_error"),
        ]

    def resolve(self, refs: list[str]) -> dict[str, str]:
        """Fetch the writer schemas not cached yet; return the refs the registry lacks, with
        why. Those are asked again next batch: a producer may register them a moment later."""
        missing = {}
        for ref in refs:
            if ref in self.schemas:
                continue
            try:
                schema = self.registry.schema(ref)
            except SchemaNotFoundError as exc:
                log.warning("writer schema %s is not in the registry: %s", ref, exc)
                missing[ref] = str(exc)
                continue
            if not is_record_schema(schema):
                # A table's rows are records; a primitive or union payload cannot be one.
                missing[ref] = f"{ref} is not an Avro record schema"
                continue
            self.schemas[ref] = schema
            log.info("writer schema %s fetched from the %s registry", ref, self.registry.wire)
        return missing


def is_record_schema(schema: str) -> bool:
    try:
        parsed = json.loads(schema)
    except ValueError:
        return False
    return isinstance(parsed, dict) and parsed.get("type") == "record"


def decode_failed(record: Column, schema: str) -> Column:
    """True where ``from_avro`` could not decode the body. In PERMISSIVE mode Spark returns
    a record of nulls then, so a null in a field the writer schema requires gives it away
    (or, if it requires none, every field null)."""
    from pyspark.sql import functions as F

    fields = json.loads(schema).get("fields", [])
    required = [f["name"] for f in fields if not accepts_null(f["type"])]
    failed = F.isnull(record)
    if not required:
        return failed | (F.to_json(record) == "{}")
    for name in required:
        failed = failed | F.isnull(record[name])
    return failed


def accepts_null(avro_type: Any) -> bool:
    if isinstance(avro_type, list):
        return "null" in avro_type
    return avro_type == "null" or (isinstance(avro_type, dict) and avro_type.get("type") == "null")


_UUID_GROUPS = ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))
