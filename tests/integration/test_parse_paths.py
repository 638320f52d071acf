"""The two parse paths give one outcome: Spark's JSON reader for the records it can vouch
for, the VARIANT parser for the rest (see ``streaming.transforms.parse``)."""

from __future__ import annotations

import json
from typing import Any

import pytest

GOOD = {
    "order_id": "3f1c1b2e-8a6d-4d2f-9a57-5c1e0d9b7a10",
    "customer_id": "c-000042",
    "country": "DE",
    "items": [{"sku": "sku-0001", "qty": 2, "price": "19.99"}],
    "amount": "39.98",
    "currency": "EUR",
    "status": "paid",
    "created_at": "2026-11-27T10:00:00Z",
}


def variant(**changes: Any) -> bytes:
    return json.dumps({**GOOD, **changes}).encode()


def without(name: str) -> bytes:
    return json.dumps({k: v for k, v in GOOD.items() if k != name}).encode()


# What the JSON reader and the VARIANT parser may read differently, and ordinary records.
PAYLOADS = [
    variant(),
    variant(amount=39.98),
    variant(amount=1.234),
    variant(amount="abc"),
    variant(amount=12345678901234),
    variant(country={"code": "DE"}),
    variant(country=["DE"]),
    variant(country="[DE"),
    variant(country=True),
    variant(country=7),
    variant(customer_id=None),
    variant(created_at="2026-11-27 10:00"),
    variant(created_at=1700000000),
    variant(created_at="yesterday"),
    variant(items=[{"sku": "s", "qty": "2", "price": "1"}]),
    variant(items=[{"sku": "s", "qty": 2.5, "price": "1"}]),
    variant(items=[{"sku": "s", "qty": 2, "price": "1", "extra": 1}]),
    variant(items={"sku": "s"}),
    variant(items=[]),
    variant(coupon="WINTER"),
    variant(coupon={"code": "W", "pct": 10}),
    without("status"),
    json.dumps(GOOD)[:-1].encode() + b', "status": "again"}',
    json.dumps(GOOD).replace('"', "'").encode(),
    json.dumps(GOOD)[:-1].encode() + b', "n": NaN}',
    json.dumps(GOOD).encode() + b" trailing",
    b"[1, 2]",
    b"5",
    b"null",
    b"",
    b"not json",
    b"\xff\xfe",
    b'{"order_id": "x", "order_id": "y"}',
]
COMPARED = [
    *GOOD,
    "coupon",
    "_error_kind",
    "_error",
    "_rule",
    "_unknown",
    "_rescued",
]


@pytest.mark.parametrize("drift", ["evolve", "strict", "rescue"])
def test_the_reader_path_and_the_variant_path_agree_on_every_record(
    spark: Any, settings: Any, loaded: Any, tmp_path: Any, drift: str
) -> None:
    from pyspark.sql.types import StringType, StructField

    from streaming.transforms.check import check
    from streaming.transforms.shape import quarantine_rows
    from streaming.transforms.spec import TableSpec
    from streamlake.lake.tables import RAW

    table = loaded.pipeline.tables["orders"].model_copy(update={"drift": drift})
    spec = TableSpec.of(spark, "orders", table)
    # One evolved column, as a later batch of an evolve table knows it.
    fields = [*spec.fields, StructField("coupon", StringType(), True)]
    rows = [
        (payload, "kafka", "orders", "0", str(n), None, None, None, None)
        for n, payload in enumerate(PAYLOADS)
    ]
    raw = spark.createDataFrame(rows, RAW.ddl)

    def outcome(reader: bool) -> list[dict[str, Any]]:
        checked = check(raw, spec, fields, reader=reader).localCheckpoint()
        found = checked.orderBy(checked["position"].cast("int")).select(*COMPARED).collect()
        worded = quarantine_rows(checked).orderBy("position").select("position", "error")
        return [r.asDict(recursive=True) for r in found] + [r.asDict() for r in worded.collect()]

    fast, reference = outcome(True), outcome(False)
    assert len(fast) == len(reference) > len(PAYLOADS)
    for n, (got, expected) in enumerate(zip(fast, reference, strict=True)):
        assert got == expected, f"record {n}: {PAYLOADS[n] if n < len(PAYLOADS) else ''!r}"
    kinds = {r["_error_kind"] for r in reference[: len(PAYLOADS)]}
    assert kinds >= {None, "parse", "schema", "rule"}, "the payloads reach every path"
