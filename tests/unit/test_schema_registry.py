"""Registry-framed Avro payloads: the two wire formats, and both registries end to end.

Glue runs against moto's server over real HTTP, in this process. Confluent's Schema
Registry cannot run here (it is on neither Maven Central nor PyPI), so a small HTTP double
stands in for it, implementing only the two endpoints the client calls, with the real
registry's status codes and error bodies.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from connectors.aws import AwsEndpoint
from connectors.schema_registry import (
    AvroSerializer,
    ConfluentSchemaRegistry,
    GlueSchemaRegistry,
    SchemaNotFoundError,
    WireFormatError,
    decode,
    frame_confluent,
    frame_glue,
    unframe,
)
from connectors.schema_registry.wire import (
    CONFLUENT_HEADER_LEN,
    GLUE_COMPRESSION_ZLIB,
    GLUE_HEADER_LEN,
)
from streamlake.errors import ResourceError, ServiceError, StreamlakeError
from tests.confluent_double import ConfluentDouble

V1: dict[str, Any] = {
    "type": "record",
    "name": "Order",
    "namespace": "shop",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "item", "type": "string"},
    ],
}
V2: dict[str, Any] = {
    **V1,
    "fields": [*V1["fields"], {"name": "quantity", "type": "int", "default": 1}],
}
ORDER_V1 = {"id": 7, "item": "tea"}
ORDER_V2 = {"id": 8, "item": "cake", "quantity": 3}
VERSION_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# Wire formats


def test_confluent_round_trip() -> None:
    payload = frame_confluent(258, b"body")
    assert payload[:CONFLUENT_HEADER_LEN] == b"\x00\x00\x00\x01\x02"
    framed = unframe(payload)
    assert (framed.wire, framed.ref, framed.body) == ("confluent", "258", b"body")


def test_glue_round_trip() -> None:
    payload = frame_glue(VERSION_ID.upper(), b"body")
    assert payload[:2] == b"\x03\x00"
    assert payload[2:GLUE_HEADER_LEN] == uuid.UUID(VERSION_ID).bytes
    framed = unframe(payload)
    assert (framed.wire, framed.ref, framed.body) == ("glue", VERSION_ID, b"body")


def test_glue_zlib_round_trip() -> None:
    body = b"compressible " * 50
    payload = frame_glue(VERSION_ID, body, compress=True)
    assert payload[1] == GLUE_COMPRESSION_ZLIB
    assert len(payload) < GLUE_HEADER_LEN + len(body)
    assert unframe(payload).body == body


def test_header_without_body_is_legal() -> None:
    assert unframe(frame_confluent(1, b"")).body == b""
    assert unframe(frame_glue(VERSION_ID, b"")).body == b""


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (b"", "empty payload"),
        (b'{"id": 7}', "unknown first byte 0x7b"),
        (b"\x00\x00\x01", "too short for the Confluent header: 3 bytes"),
        (b"\x03\x00" + b"\x01" * 10, "too short for the Glue header: 12 bytes"),
        (b"\x03\x07" + uuid.UUID(VERSION_ID).bytes + b"body", "unknown Glue compression byte 0x07"),
        (b"\x03\x05" + uuid.UUID(VERSION_ID).bytes + b"not zlib", "zlib decompression failed"),
    ],
)
def test_malformed_payloads_name_the_problem(payload: bytes, problem: str) -> None:
    with pytest.raises(WireFormatError, match=problem):
        unframe(payload)


def test_bad_refs_do_not_frame() -> None:
    with pytest.raises(WireFormatError, match="not a UUID"):
        frame_glue("schema-1", b"")
    with pytest.raises(WireFormatError, match="4 unsigned bytes"):
        frame_confluent(2**32, b"")


# Glue Schema Registry, through moto's server


@pytest.fixture(scope="module")
def glue_endpoint() -> Iterator[AwsEndpoint]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield AwsEndpoint(
            region="us-east-1",
            endpoint_url=f"http://127.0.0.1:{port}",
            access_key_id="testing",
            secret_access_key="testing",
        )
    finally:
        server.stop()


@pytest.fixture(scope="module")
def glue(glue_endpoint: AwsEndpoint) -> GlueSchemaRegistry:
    registry = GlueSchemaRegistry(glue_endpoint, "streamlake-test")
    assert registry.ensure_registry() is True
    assert registry.ensure_registry() is False
    return registry


def test_glue_versions_and_idempotent_register(glue: GlueSchemaRegistry) -> None:
    v1 = glue.register("orders-versions", json.dumps(V1))
    v2 = glue.register("orders-versions", json.dumps(V2))
    assert v1 != v2
    assert glue.register("orders-versions", json.dumps(V1)) == v1
    assert glue.register("orders-versions", json.dumps(V2)) == v2
    assert str(uuid.UUID(v1)) == v1
    assert json.loads(glue.schema(v2)) == V2


def test_glue_encode_decode_both_versions(glue: GlueSchemaRegistry) -> None:
    writer_v1 = AvroSerializer(glue, "orders-round-trip", V1)
    writer_v2 = AvroSerializer(glue, "orders-round-trip", V2)
    payloads = [writer_v1.encode(ORDER_V1), writer_v2.encode(ORDER_V2)]
    assert unframe(payloads[0]).ref != unframe(payloads[1]).ref
    # A fresh registry object has an empty cache, so decoding goes to the service.
    reader = GlueSchemaRegistry(glue.endpoint, glue.registry_name)
    assert [decode(p, reader) for p in payloads] == [ORDER_V1, ORDER_V2]


def test_glue_compressed_payload_decodes(glue: GlueSchemaRegistry) -> None:
    compressing = GlueSchemaRegistry(glue.endpoint, glue.registry_name, compress=True)
    payload = AvroSerializer(compressing, "orders-compressed", V1).encode(ORDER_V1)
    assert payload[1] == GLUE_COMPRESSION_ZLIB
    assert decode(payload, glue) == ORDER_V1


def test_glue_unknown_version(glue: GlueSchemaRegistry) -> None:
    unknown = str(uuid.uuid4())
    with pytest.raises(SchemaNotFoundError) as raised:
        glue.schema(unknown)
    assert raised.value.ref == unknown
    assert unknown in str(raised.value)
    with pytest.raises(SchemaNotFoundError, match="not-a-uuid"):
        glue.schema("not-a-uuid")


def test_glue_missing_registry_is_terminal(glue_endpoint: AwsEndpoint) -> None:
    missing = GlueSchemaRegistry(glue_endpoint, "no-such-registry")
    with pytest.raises(ResourceError, match="ensure_registry") as raised:
        missing.register("orders", json.dumps(V1))
    assert raised.value.retryable is False


def test_glue_payload_is_not_confluent(glue: GlueSchemaRegistry) -> None:
    payload = AvroSerializer(glue, "orders-wrong-wire", V1).encode(ORDER_V1)
    with pytest.raises(WireFormatError, match="framed for glue"):
        decode(payload, ConfluentSchemaRegistry("http://127.0.0.1:1"))


# Confluent Schema Registry, through an HTTP double (tests/confluent_double.py)


def test_confluent_register_encode_decode(confluent_double: ConfluentDouble) -> None:
    registry = ConfluentSchemaRegistry(confluent_double.url)
    v1 = registry.register("orders-value", json.dumps(V1))
    v2 = registry.register("orders-value", json.dumps(V2))
    assert v1 != v2
    assert registry.register("orders-value", json.dumps(V1)) == v1
    payloads = [
        AvroSerializer(registry, "orders-value", V1).encode(ORDER_V1),
        AvroSerializer(registry, "orders-value", V2).encode(ORDER_V2),
    ]
    assert [unframe(p).ref for p in payloads] == [v1, v2]
    reader = ConfluentSchemaRegistry(confluent_double.url)
    assert [decode(p, reader) for p in payloads] == [ORDER_V1, ORDER_V2]


def test_confluent_lookups_are_cached(confluent_double: ConfluentDouble) -> None:
    registry = ConfluentSchemaRegistry(confluent_double.url)
    ref = registry.register("orders-value", json.dumps(V1))
    definition = registry.schema(ref)
    confluent_double.fail_with = 500
    assert registry.schema(ref) == definition


def test_confluent_unknown_id(confluent_double: ConfluentDouble) -> None:
    registry = ConfluentSchemaRegistry(confluent_double.url)
    with pytest.raises(SchemaNotFoundError, match="Schema not found") as raised:
        registry.schema("404")
    assert raised.value.ref == "404"
    assert raised.value.retryable is False


def test_confluent_server_error_is_retryable(confluent_double: ConfluentDouble) -> None:
    confluent_double.fail_with = 500
    registry = ConfluentSchemaRegistry(confluent_double.url)
    with pytest.raises(ServiceError) as raised:
        registry.schema("1")
    assert raised.value.retryable is True
    assert raised.value.address == confluent_double.url
    with pytest.raises(ServiceError, match="HTTP 500"):
        registry.register("orders-value", json.dumps(V1))


def test_confluent_refusal_is_terminal(confluent_double: ConfluentDouble) -> None:
    registry = ConfluentSchemaRegistry(confluent_double.url)
    with pytest.raises(ResourceError, match="HTTP 422: Invalid schema") as raised:
        registry.register("orders-value", "{not json")
    assert raised.value.retryable is False
    assert raised.value.name == "orders-value"


def test_confluent_unreachable_is_retryable() -> None:
    registry = ConfluentSchemaRegistry(f"http://127.0.0.1:{free_port()}", timeout_s=2)
    with pytest.raises(ServiceError, match="unreachable") as raised:
        registry.schema("1")
    assert raised.value.retryable is True


# Encoding errors


def test_record_that_does_not_fit_names_the_schema(confluent_double: ConfluentDouble) -> None:
    serializer = AvroSerializer(ConfluentSchemaRegistry(confluent_double.url), "orders", V1)
    with pytest.raises(StreamlakeError, match="does not fit Avro schema 'orders'"):
        serializer.encode({"id": "seven", "item": "tea"})


def test_body_written_with_another_schema(confluent_double: ConfluentDouble) -> None:
    registry = ConfluentSchemaRegistry(confluent_double.url)
    payload = AvroSerializer(registry, "orders", V2).encode(ORDER_V2)
    v1 = registry.register("orders", json.dumps(V1))
    relabelled = frame_confluent(int(v1), unframe(payload).body)
    with pytest.raises(WireFormatError, match="bytes left after decoding"):
        decode(relabelled, registry)


# Glue's asynchronous compatibility check, which moto skips: its versions are AVAILABLE at once


def stubbed_glue(statuses: list[str], wait_s: float = 5.0) -> tuple[GlueSchemaRegistry, Any]:
    """A registry whose client answers from a botocore Stubber: a new schema whose first
    version reports ``statuses`` in turn."""
    from botocore.stub import Stubber

    endpoint = AwsEndpoint("us-east-1", "http://127.0.0.1:1", "testing", "testing")
    registry = GlueSchemaRegistry(endpoint, "stubbed", wait_s=wait_s, poll_s=0.01)
    stubber = Stubber(registry._glue)
    stubber.add_client_error("get_schema", service_error_code="EntityNotFoundException")
    stubber.add_response(
        "create_schema", {"SchemaVersionId": VERSION_ID, "SchemaVersionStatus": statuses[0]}
    )
    for status in statuses[1:]:
        polled = {"SchemaVersionId": VERSION_ID, "Status": status}
        stubber.add_response("get_schema_version", polled)
    stubber.activate()
    return registry, stubber


def test_glue_waits_for_a_pending_version() -> None:
    registry, stubber = stubbed_glue(["PENDING", "PENDING", "AVAILABLE"])
    assert registry.register("orders", json.dumps(V1)) == VERSION_ID
    stubber.assert_no_pending_responses()


def test_glue_pending_past_the_deadline_is_retryable() -> None:
    registry, _ = stubbed_glue(["PENDING"] * 200, wait_s=0.05)
    with pytest.raises(ResourceError, match="still PENDING") as raised:
        registry.register("orders", json.dumps(V1))
    assert raised.value.retryable is True


def test_glue_failed_version_is_terminal() -> None:
    registry, _ = stubbed_glue(["PENDING", "FAILURE"])
    with pytest.raises(ResourceError, match="is FAILURE") as raised:
        registry.register("orders", json.dumps(V1))
    assert raised.value.retryable is False
