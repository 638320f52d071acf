"""Avro orders framed by a schema registry's serializer: the AWS Glue Schema Registry (the
local AWS server, through boto3) and the Confluent wire format. The schema gains a field
mid-stream, and payloads the registry cannot explain go to quarantine with the reason."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors.aws import aws_endpoint
from connectors.schema_registry import (
    AvroSerializer,
    ConfluentSchemaRegistry,
    GlueSchemaRegistry,
    frame_glue,
)
from streamlake.config.pipeline import AvroFormat, Pipeline
from streamlake.config.settings import SchemaRegistrySettings
from streamlake.produce.events import EventMix, events_for
from tests.confluent_double import ConfluentDouble
from tests.support import lake_rows, with_lake, with_table, write_raw
from tests.support import run_process as process

pytestmark = [pytest.mark.integration, pytest.mark.spark]

DECIMAL = {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}
ORDER_V1: dict[str, Any] = {
    "type": "record",
    "name": "Order",
    "namespace": "shop",
    "fields": [
        {"name": "order_id", "type": "string"},
        {"name": "customer_id", "type": "string"},
        {"name": "country", "type": "string"},
        {
            "name": "items",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "Item",
                    "fields": [
                        {"name": "sku", "type": "string"},
                        {"name": "qty", "type": "int"},
                        {"name": "price", "type": DECIMAL},
                    ],
                },
            },
        },
        {"name": "amount", "type": DECIMAL},
        {"name": "currency", "type": "string"},
        {"name": "status", "type": "string"},
        {"name": "created_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
}
# Version 2 adds a field with a default, which Glue's BACKWARD mode accepts.
CHANNEL = {"name": "channel", "type": ["null", "string"], "default": None}
ORDER_V2 = {**ORDER_V1, "fields": [*ORDER_V1["fields"], CHANNEL]}


def avro_orders(pipeline: Pipeline, avro: AvroFormat) -> Pipeline:
    return with_table(pipeline, "orders", format="avro", avro=avro)


def as_avro_record(order: dict[str, Any]) -> dict[str, Any]:
    return {
        **order,
        "items": [{**i, "price": Decimal(i["price"])} for i in order["items"]],
        "amount": Decimal(order["amount"]),
        "created_at": datetime.fromisoformat(order["created_at"]),
    }


def test_avro_with_a_schema_change_mid_stream(
    spark: Any, settings: Any, loaded: Any, tmp_path: Path
) -> None:
    local = with_lake(settings, tmp_path)
    registry_name = f"shop-{uuid.uuid4().hex[:8]}"
    registry = GlueSchemaRegistry(aws_endpoint(local), registry_name)
    registry.ensure_registry()
    v1 = AvroSerializer(registry, "orders", ORDER_V1)
    v2 = AvroSerializer(registry, "orders", ORDER_V2)
    pipeline = avro_orders(
        loaded.pipeline,
        AvroFormat(registry="glue", registry_name=registry_name, schema_name="orders"),
    )
    orders = [json.loads(e.payload) for e in events_for("orders", EventMix(60, seed=21))]
    first, second = orders[:30], orders[30:]
    for i, order in enumerate(second):
        order["channel"] = "app" if i % 2 else "web"
    second[0]["currency"] = "XXX"  # fails the currency_known rule

    write_raw(spark, local, "orders", [v1.encode(as_avro_record(o)) for o in first])
    process(spark, local, pipeline)

    unregistered = registry.frame(str(uuid.uuid4()), v1.encode(as_avro_record(first[0]))[18:])
    truncated = v2.encode(as_avro_record(second[1]))[:30]
    broken = [json.dumps(first[1]).encode(), unregistered, truncated]
    # Version 2 arrives mid-stream, interleaved with late version-1 writers and bad payloads.
    late_v1 = [v1.encode(as_avro_record(o)) for o in orders[:3]]
    batch_two = [v2.encode(as_avro_record(o)) for o in second[2:]] + late_v1 + broken
    batch_two.insert(5, v2.encode(as_avro_record(second[0])))
    write_raw(spark, local, "orders", batch_two, first_position=len(first))
    process(spark, local, pipeline)

    processed = {r["order_id"]: r for r in lake_rows(local, "processed", "orders")}
    expected = [o for o in orders if o not in (second[0], second[1])]
    assert sorted(processed) == sorted(o["order_id"] for o in expected)
    for order in expected:
        row = processed[order["order_id"]]
        assert row["amount"] == Decimal(order["amount"])
        assert row["created_at"] == datetime.fromisoformat(order["created_at"])
        assert row["items"][0]["price"] == Decimal(order["items"][0]["price"])
        assert row["channel"] == order.get("channel"), "the v2 field became a column"

    quarantined = lake_rows(local, "quarantine", "orders")
    reasons = sorted((r["error_kind"], r["rule"] or "", r["error"]) for r in quarantined)
    assert len(reasons) == 4, reasons
    assert ("rule", "currency_known") in {(k, r) for k, r, _ in reasons}
    errors = [e for k, _, e in reasons if k == "parse"]
    assert any(e.startswith("not in the Glue Schema Registry format") for e in errors), errors
    assert any(e.startswith("writer schema not found") for e in errors), errors
    assert any(e.startswith("Avro body does not decode") for e in errors), reasons
    metrics = lake_rows(local, "_meta", "batch_metrics")
    assert sum(m["duplicates"] for m in metrics) == len(late_v1)


def test_avro_in_the_confluent_wire_format(
    spark: Any, settings: Any, loaded: Any, tmp_path: Path, confluent_double: ConfluentDouble
) -> None:
    """Confluent's registry cannot run here; its HTTP double (tests/confluent_double.py)
    serves the schemas. Spark, Delta and the decoding are real."""
    local = with_lake(settings, tmp_path).model_copy(
        update={"schema_registry": SchemaRegistrySettings(url=confluent_double.url)}
    )
    registry = ConfluentSchemaRegistry(confluent_double.url)
    v1 = AvroSerializer(registry, "orders-value", ORDER_V1)
    v2 = AvroSerializer(registry, "orders-value", ORDER_V2)
    pipeline = avro_orders(
        loaded.pipeline, AvroFormat(registry="confluent", schema_name="orders-value")
    )
    orders = [json.loads(e.payload) for e in events_for("orders", EventMix(20, seed=4))]
    for order in orders[10:]:
        order["channel"] = "web"
    glue_framed = frame_glue(str(uuid.uuid4()), v1.encode(as_avro_record(orders[0]))[5:])
    payloads = [
        *[v1.encode(as_avro_record(o)) for o in orders[:10]],
        *[v2.encode(as_avro_record(o)) for o in orders[10:]],
        glue_framed,
    ]
    write_raw(spark, local, "orders", payloads)
    process(spark, local, pipeline)

    processed = {r["order_id"]: r for r in lake_rows(local, "processed", "orders")}
    assert sorted(processed) == sorted(o["order_id"] for o in orders)
    assert [processed[o["order_id"]]["channel"] for o in orders] == [None] * 10 + ["web"] * 10
    (quarantined,) = lake_rows(local, "quarantine", "orders")
    assert quarantined["error_kind"] == "parse"
    assert quarantined["error"].startswith("not in the Confluent wire format")
