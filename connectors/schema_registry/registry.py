"""What the serializer needs from a schema registry, whichever registry it is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from connectors.schema_registry.wire import Wire
from streamlake.errors import ResourceError


@dataclass
class SchemaNotFoundError(ResourceError):
    """The registry does not know a schema ref; ``name`` (also ``ref``) is that ref."""

    @property
    def ref(self) -> str:
        return self.name


class SchemaRegistry(Protocol):
    """A registry of Avro schemas, each version named by a ref string.

    Refs are what the wire carries: a decimal schema id for Confluent, a lowercase UUID
    with dashes for Glue. A ref always names the same schema text (versions are immutable),
    so implementations may cache lookups for as long as they live.
    """

    wire: Wire

    def register(self, name: str, definition: str) -> str:
        """Register Avro schema JSON ``definition`` under subject/schema ``name``; return its
        ref. Idempotent: an identical definition gets the ref it got before."""
        ...

    def schema(self, ref: str) -> str:
        """The Avro schema JSON text for ``ref``; SchemaNotFoundError if unknown."""
        ...

    def frame(self, ref: str, body: bytes) -> bytes:
        """``body`` framed for this registry's wire, naming schema ``ref``."""
        ...
