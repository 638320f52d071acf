"""De-aggregation of records written by the Kinesis Producer Library (KPL).

An aggregated record is: 4 magic bytes, a protobuf ``AggregatedRecord``, and the MD5 of the
protobuf. Anything that does not check out is an ordinary record, as the KCL treats it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

MAGIC = b"\xf3\x89\x9a\xc2"
DIGEST_SIZE = 16


@dataclass(frozen=True)
class UserRecord:
    partition_key: str
    data: bytes


def deaggregate(data: bytes) -> list[UserRecord] | None:
    """The user records inside ``data``, or None when it is not a valid aggregate."""
    if len(data) <= len(MAGIC) + DIGEST_SIZE or not data.startswith(MAGIC):
        return None
    message, digest = data[len(MAGIC) : -DIGEST_SIZE], data[-DIGEST_SIZE:]
    if hashlib.md5(message, usedforsecurity=False).digest() != digest:
        return None
    try:
        return parse_aggregated_record(message)
    except (IndexError, ValueError, UnicodeDecodeError):
        return None


def parse_aggregated_record(message: bytes) -> list[UserRecord]:
    keys: list[str] = []
    raw_records: list[bytes] = []
    for field, value in fields(message):
        if field == 1 and isinstance(value, bytes):
            keys.append(value.decode("utf-8"))
        elif field == 3 and isinstance(value, bytes):
            raw_records.append(value)
    records = []
    for raw in raw_records:
        key_index, payload = 0, b""
        for field, value in fields(raw):
            if field == 1 and isinstance(value, int):
                key_index = value
            elif field == 3 and isinstance(value, bytes):
                payload = value
        records.append(UserRecord(keys[key_index], payload))
    return records


def fields(buffer: bytes) -> list[tuple[int, int | bytes]]:
    """Protobuf wire-format fields: (field number, varint or bytes); fixed-width skipped."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(buffer):
        tag, pos = varint(buffer, pos)
        number, wire_type = tag >> 3, tag & 7
        if wire_type == 0:
            value, pos = varint(buffer, pos)
            out.append((number, value))
        elif wire_type == 2:
            length, pos = varint(buffer, pos)
            if pos + length > len(buffer):
                raise ValueError("truncated field")
            out.append((number, buffer[pos : pos + length]))
            pos += length
        elif wire_type == 1:
            pos += 8
        elif wire_type == 5:
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire_type}")
    return out


def varint(buffer: bytes, pos: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        byte = buffer[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")
