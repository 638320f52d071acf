"""Avro records to registry-framed payloads and back, with fastavro.

Producers and tools use this; Spark decodes the same payloads with spark-avro.
"""

from __future__ import annotations

import json
import threading
from functools import lru_cache
from io import BytesIO
from typing import Any

import fastavro
from fastavro.schema import SchemaParseException
from fastavro.types import Schema

from connectors.schema_registry.registry import SchemaRegistry
from connectors.schema_registry.wire import WireFormatError, unframe
from streamlake.errors import ResourceError, StreamlakeError

# What fastavro raises for a record that does not fit the schema, or a body that does
# not decode with it; it has no common base class for these.
_ENCODE_ERRORS = (ValueError, TypeError, KeyError, AttributeError, OverflowError)
_DECODE_ERRORS = (EOFError, ValueError, IndexError, KeyError, OverflowError, MemoryError)


class AvroSerializer:
    """Encodes records with one Avro schema, framed for ``registry``.

    The schema is registered under ``name`` on the first encode, once per serializer; every
    payload then names the version it was written with, so readers can evolve separately.
    """

    def __init__(self, registry: SchemaRegistry, name: str, schema: dict[str, Any]) -> None:
        self.registry = registry
        self.name = name
        self.definition = json.dumps(schema, separators=(",", ":"))
        self._parsed = _parse(self.definition, name)
        self._ref: str | None = None
        self._lock = threading.Lock()

    def register(self) -> str:
        """The schema's ref, registering it on the first call."""
        with self._lock:
            if self._ref is None:
                self._ref = self.registry.register(self.name, self.definition)
            return self._ref

    def encode(self, record: dict[str, Any]) -> bytes:
        """``record`` as Avro binary, framed with the schema's ref."""
        ref = self._ref or self.register()
        buffer = BytesIO()
        try:
            fastavro.schemaless_writer(buffer, self._parsed, record)
        except _ENCODE_ERRORS as exc:
            raise StreamlakeError(
                f"record does not fit Avro schema {self.name!r}: {exc}",
                "fix the record or evolve the schema",
            ) from exc
        return self.registry.frame(ref, buffer.getvalue())


def decode(payload: bytes, registry: SchemaRegistry) -> dict[str, Any]:
    """The record in a framed payload, read with the schema it was written with."""
    framed = unframe(payload)
    if framed.wire != registry.wire:
        raise WireFormatError(
            f"payload is framed for {framed.wire}, the registry reads {registry.wire}"
        )
    writer = _parse(registry.schema(framed.ref), framed.ref)
    buffer = BytesIO(framed.body)
    try:
        record = fastavro.schemaless_reader(buffer, writer)
    except _DECODE_ERRORS as exc:
        raise WireFormatError(f"body does not decode with schema {framed.ref}: {exc!r}") from exc
    # Leftover bytes mean the body was written with some other schema.
    if buffer.tell() != len(framed.body):
        raise WireFormatError(
            f"body has {len(framed.body) - buffer.tell()} bytes left after decoding "
            f"with schema {framed.ref}"
        )
    if not isinstance(record, dict):
        raise WireFormatError(f"schema {framed.ref} is not a record schema")
    return record


@lru_cache(maxsize=256)
def _parse(definition: str, name: str) -> Schema:
    """The parsed schema; cached by text, since parsing is a pure function of it."""
    try:
        return fastavro.parse_schema(json.loads(definition))
    except (ValueError, SchemaParseException) as exc:
        raise ResourceError(
            f"not a valid Avro schema: {exc}", kind="Avro schema", name=name
        ) from exc
