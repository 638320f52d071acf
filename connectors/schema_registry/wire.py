"""The two ways registry-aware producers frame an Avro body, and reading them back.

Confluent: magic byte 0x00, the schema id as a 4-byte big-endian unsigned int, the body.
AWS Glue Schema Registry: header version 0x03, a compression byte (0x00 none, 0x05 zlib),
the schema version id as 16 raw UUID bytes, the body (zlib-compressed if the byte says so).

The first byte tells the two apart, so one reader takes either. Framing is pure: nothing
here talks to a registry.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from dataclasses import dataclass
from typing import Literal

from streamlake.errors import StreamlakeError

Wire = Literal["confluent", "glue"]

# The Spark side slices payloads in SQL with these, so they are part of the contract.
CONFLUENT_MAGIC = 0
CONFLUENT_HEADER_LEN = 5
GLUE_HEADER_VERSION = 3
GLUE_HEADER_LEN = 18
GLUE_COMPRESSION_NONE = 0
GLUE_COMPRESSION_ZLIB = 5

_SCHEMA_ID = struct.Struct(">I")
_HINT = "is the producer writing through a schema registry serializer?"


@dataclass
class WireFormatError(StreamlakeError):
    """A payload (or a schema reference) does not fit the Confluent or Glue framing."""


@dataclass(frozen=True)
class Framed:
    """An unframed payload: which wire, the schema ref, and the plain Avro body."""

    wire: Wire
    ref: str
    body: bytes


def frame_confluent(schema_id: int, body: bytes) -> bytes:
    """The Confluent framing of ``body`` written with schema ``schema_id``."""
    if not 0 <= schema_id <= 0xFFFFFFFF:
        raise WireFormatError(f"Confluent schema id {schema_id} does not fit in 4 unsigned bytes")
    return bytes([CONFLUENT_MAGIC]) + _SCHEMA_ID.pack(schema_id) + body


def frame_glue(version_id: str, body: bytes, compress: bool = False) -> bytes:
    """The Glue framing of ``body`` written with schema version ``version_id`` (a UUID)."""
    version = _glue_version(version_id)
    compression = GLUE_COMPRESSION_ZLIB if compress else GLUE_COMPRESSION_NONE
    data = zlib.compress(body) if compress else body
    return bytes([GLUE_HEADER_VERSION, compression]) + version.bytes + data


def unframe(payload: bytes) -> Framed:
    """Split a framed payload into its schema ref and Avro body; WireFormatError if it is
    not framed by either registry."""
    if not payload:
        raise WireFormatError("empty payload: no registry header", _HINT)
    first = payload[0]
    if first == CONFLUENT_MAGIC:
        return _unframe_confluent(payload)
    if first == GLUE_HEADER_VERSION:
        return _unframe_glue(payload)
    raise WireFormatError(
        f"unknown first byte 0x{first:02x}: expected 0x{CONFLUENT_MAGIC:02x} (Confluent magic) "
        f"or 0x{GLUE_HEADER_VERSION:02x} (Glue header version)",
        _HINT,
    )


def _unframe_confluent(payload: bytes) -> Framed:
    _check_length(payload, CONFLUENT_HEADER_LEN, "Confluent")
    (schema_id,) = _SCHEMA_ID.unpack_from(payload, 1)
    return Framed("confluent", str(schema_id), payload[CONFLUENT_HEADER_LEN:])


def _unframe_glue(payload: bytes) -> Framed:
    _check_length(payload, GLUE_HEADER_LEN, "Glue")
    compression = payload[1]
    ref = str(uuid.UUID(bytes=payload[2:GLUE_HEADER_LEN]))
    body = payload[GLUE_HEADER_LEN:]
    if compression == GLUE_COMPRESSION_NONE:
        return Framed("glue", ref, body)
    if compression == GLUE_COMPRESSION_ZLIB:
        return Framed("glue", ref, _inflate(body, ref))
    raise WireFormatError(
        f"unknown Glue compression byte 0x{compression:02x}: expected "
        f"0x{GLUE_COMPRESSION_NONE:02x} (none) or 0x{GLUE_COMPRESSION_ZLIB:02x} (zlib)"
    )


def _check_length(payload: bytes, header_len: int, wire: str) -> None:
    # A header with no body is legal: a record with no fields encodes to zero bytes.
    if len(payload) < header_len:
        raise WireFormatError(
            f"payload too short for the {wire} header: {len(payload)} bytes, "
            f"the header alone is {header_len}"
        )


def _inflate(body: bytes, ref: str) -> bytes:
    try:
        return zlib.decompress(body)
    except zlib.error as exc:
        raise WireFormatError(
            f"zlib decompression failed for Glue schema version {ref}: {exc}"
        ) from exc


def _glue_version(version_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(version_id)
    except ValueError as exc:
        raise WireFormatError(f"Glue schema version id {version_id!r} is not a UUID") from exc
