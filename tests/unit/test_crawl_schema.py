"""The crawl job's pure parts: types merged across files and spelled as Glue types, the
change from what Glue holds, partitions read from folders, each format's columns read from
a file in memory, and the Avro reader schema."""

from __future__ import annotations

import io
import json
from typing import Any

import fastavro
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batch.crawl import sample
from batch.crawl_formats import (
    UnreadableFileError,
    avro_declarations,
    avro_literal,
    csv_schema,
    format_of,
    json_schema,
    parquet_schema,
    read_schema,
)
from batch.crawl_schema import (
    MergedSchema,
    arrow_type,
    glue_type,
    is_hidden,
    merge_types,
    partition_keys,
    partition_of,
    reconcile,
)
from streamlake.errors import CrawlError
from streamlake.lake.files import StoredFile


@pytest.mark.parametrize(
    ("first", "second", "merged", "incompatible"),
    [
        (pa.int32(), pa.int64(), pa.int64(), False),
        (pa.int64(), pa.float64(), pa.float64(), False),
        (pa.int32(), pa.float32(), pa.float64(), False),
        (pa.null(), pa.string(), pa.string(), False),
        (pa.decimal128(10, 2), pa.decimal128(12, 4), pa.decimal128(12, 4), False),
        (pa.list_(pa.int32()), pa.list_(pa.float64()), pa.list_(pa.float64()), False),
        (
            pa.struct([("a", pa.int32())]),
            pa.struct([("b", pa.string())]),
            pa.struct([("a", pa.int32()), ("b", pa.string())]),
            False,
        ),
        (pa.int64(), pa.string(), pa.string(), True),
        (pa.bool_(), pa.int32(), pa.string(), True),
        (pa.date32(), pa.timestamp("us"), pa.string(), True),
        (pa.struct([("a", pa.int32())]), pa.struct([("a", pa.string())]), pa.string(), True),
    ],
)
def test_types_merge_by_promotion_and_fall_back_to_string(
    first: pa.DataType, second: pa.DataType, merged: pa.DataType, incompatible: bool
) -> None:
    assert merge_types(first, second) == (merged, incompatible)
    assert merge_types(second, first)[1] == incompatible


def test_a_merged_schema_keeps_column_order_and_names_the_first_conflict() -> None:
    merged = MergedSchema()
    merged.add({"id": pa.int32(), "amount": pa.int32()})
    merged.add({"amount": pa.float64(), "note": pa.null()})
    merged.add({"id": pa.string(), "note": pa.string()})
    merged.add({"id": pa.bool_()})
    assert merged.columns == {"id": pa.string(), "amount": pa.float64(), "note": pa.string()}
    assert list(merged.conflicts) == ["id"]
    assert merged.conflicts["id"].describe() == "id string (int and string in the files)"


@pytest.mark.parametrize(
    ("arrow", "hive"),
    [
        (pa.int8(), "tinyint"),
        (pa.int16(), "smallint"),
        (pa.int32(), "int"),
        (pa.int64(), "bigint"),
        (pa.uint32(), "bigint"),
        (pa.uint64(), "decimal(20,0)"),
        (pa.float16(), "float"),
        (pa.float64(), "double"),
        (pa.decimal128(12, 2), "decimal(12,2)"),
        (pa.bool_(), "boolean"),
        (pa.large_string(), "string"),
        (pa.dictionary(pa.int8(), pa.string()), "string"),
        (pa.binary(16), "binary"),
        (pa.date64(), "date"),
        (pa.timestamp("ms", tz="UTC"), "timestamp"),
        (pa.timestamp("ns"), "timestamp"),
        (pa.null(), "string"),
        (pa.large_list(pa.int32()), "array<int>"),
        (pa.map_(pa.string(), pa.int64()), "map<string,bigint>"),
        (
            pa.list_(pa.struct([("SKU", pa.string()), ("qty", pa.int32())])),
            "array<struct<sku:string,qty:int>>",
        ),
        (pa.struct([("tags", pa.list_(pa.null()))]), "struct<tags:array<string>>"),
    ],
)
def test_arrow_types_are_spelled_as_glue_types(arrow: pa.DataType, hive: str) -> None:
    assert glue_type(arrow) == hive


@pytest.mark.parametrize(
    "hive",
    [
        "int",
        "bigint",
        "double",
        "decimal(12,2)",
        "timestamp",
        "date",
        "array<struct<sku:string,qty:int,price:decimal(12,2)>>",
        "map<string,array<bigint>>",
        "struct<a:struct<b:boolean>,c:binary>",
    ],
)
def test_glue_types_read_back_as_the_arrow_types_they_came_from(hive: str) -> None:
    kind = arrow_type(hive)
    assert kind is not None
    assert glue_type(kind) == hive


def test_types_glue_has_no_arrow_type_for() -> None:
    assert glue_type(pa.duration("s")) is None
    assert glue_type(pa.time32("s")) is None
    assert arrow_type("uniontype<int,string>") is None
    assert arrow_type("varchar(10)") == pa.string()


def test_a_new_table_takes_the_files_columns() -> None:
    columns, changes = reconcile(None, {"id": pa.int32(), "note": pa.null()})
    assert columns == [("id", "int"), ("note", "string")]
    assert not changes.written and changes.describe() == []


def test_changes_follow_a_crawlers_default_policy() -> None:
    previous = [("id", "bigint"), ("amount", "int"), ("legacy", "string"), ("qty", "int")]
    found = {
        "id": pa.int32(),  # narrower than the table: the table keeps bigint
        "amount": pa.float64(),  # widened
        "qty": pa.string(),  # incompatible
        "discount": pa.float64(),
        "coupon": pa.string(),
    }
    columns, changes = reconcile(previous, found)
    assert columns == [
        ("id", "bigint"),
        ("amount", "double"),
        ("legacy", "string"),
        ("qty", "string"),
        ("discount", "double"),
        ("coupon", "string"),
    ]
    assert changes.written
    assert "; ".join(changes.describe()) == (
        "+2 columns (discount, coupon); amount int->double; qty int->string (incompatible); "
        "1 missing from the files (legacy)"
    )


def test_a_table_that_fits_the_files_is_unchanged() -> None:
    previous = [("id", "bigint"), ("tags", "array<string>"), ("gone", "int")]
    columns, changes = reconcile(previous, {"id": pa.int32(), "tags": pa.list_(pa.null())})
    assert columns == previous
    assert not changes.written
    assert changes.describe() == ["1 missing from the files (gone)"]


def test_a_column_made_string_stays_string() -> None:
    columns, changes = reconcile([("qty", "string")], {"qty": pa.int32()})
    assert columns == [("qty", "string")] and not changes.written


@pytest.mark.parametrize(
    ("name", "keys", "values", "folder"),
    [
        ("part-0.json", (), (), ""),
        ("year=2024/Month=05/a.json", ("year", "month"), ("2024", "05"), "year=2024/Month=05"),
        ("2024/05/01/13/delivery-1", ("partition_0", "partition_1", "partition_2", "partition_3"),
         ("2024", "05", "01", "13"), "2024/05/01/13"),
        ("ts=2024-05-01%2012%3A00/x.csv", ("ts",), ("2024-05-01 12:00",),
         "ts=2024-05-01%2012%3A00"),
        ("country=/x.csv", ("country",), ("__HIVE_DEFAULT_PARTITION__",), "country="),
        ("region=eu/2024/x.csv", ("region", "partition_1"), ("eu", "2024"), "region=eu/2024"),
    ],
)  # fmt: skip
def test_partitions_are_read_from_folders(
    name: str, keys: tuple[str, ...], values: tuple[str, ...], folder: str
) -> None:
    found = partition_of(name)
    assert (found.keys, found.values, found.folder) == (keys, values, folder)


def test_files_that_disagree_on_partition_keys_are_named() -> None:
    paths = {
        name: partition_of(name)
        for name in ("year=2024/month=05/a.json", "year=2024/b.json", "year=2023/month=12/c.json")
    }
    with pytest.raises(CrawlError) as raised:
        partition_keys(paths, "landing", "s3://bucket/landing/")
    message = str(raised.value)
    assert message.startswith("crawler landing: s3://bucket/landing/: partition folders disagree")
    assert "year=2023/month=12/c.json has keys (year, month)" in message
    assert "year=2024/b.json has keys (year)" in message
    same = {n: partition_of(n) for n in ("k=1/a.json", "k=2/b.json")}
    assert partition_keys(same, "landing", "/x") == ("k",)


@pytest.mark.parametrize(
    ("name", "hidden"),
    [
        ("_SUCCESS", True),
        (".part-0.json.crc", True),
        ("part-0.json.crc", True),
        ("_temporary/0/part-0.json", True),
        ("year=2024/.hidden/a.json", True),
        ("export_$folder$", True),
        ("year=2024/part_0.json", False),
        ("k=__HIVE_DEFAULT_PARTITION__/a.json", False),
    ],
)
def test_hidden_files_are_not_data(name: str, hidden: bool) -> None:
    assert is_hidden(name) is hidden


def test_formats_are_told_by_extension() -> None:
    assert [
        format_of(n) for n in ("a.json", "b.JSONL", "c.ndjson", "d.csv", "e.snappy.parquet")
    ] == [
        "json",
        "json",
        "json",
        "csv",
        "parquet",
    ]
    assert [format_of(n) for n in ("x.avro", "delivery-1", "x.json.gz", "dir.v2/file")] == [
        "avro",
        None,
        None,
        None,
    ]


def test_sampling_takes_the_newest_files_of_each_partition() -> None:
    files = [StoredFile(f"day={d}/f{i}.json", 10, float(i)) for d in (1, 2) for i in range(5)]
    paths = {f.name: partition_of(f.name) for f in files}
    chosen = sample(files, paths, 2)
    assert sorted(f.name for f in chosen) == [
        "day=1/f3.json",
        "day=1/f4.json",
        "day=2/f3.json",
        "day=2/f4.json",
    ]
    assert [f.modified for f in chosen] == [3.0, 3.0, 4.0, 4.0]


def json_lines(*records: Any) -> io.BytesIO:
    return io.BytesIO(b"".join(json.dumps(r).encode() + b"\n" for r in records))


def test_json_lines_types_come_from_the_values() -> None:
    stream = json_lines(
        {"id": 1, "Amount": 9, "big": 2**40, "ok": True, "at": "2024-05-01T12:00:00Z"},
        {"id": 2, "Amount": 9.5, "items": [{"sku": "a", "qty": 1}], "note": None},
        {"id": 3, "items": [], "attrs": {"k": "v"}},
    )
    found = json_schema(stream, len(stream.getvalue()))
    assert {name: glue_type(kind) for name, kind in found.columns.items()} == {
        "id": "int",
        "amount": "double",
        "big": "bigint",
        "ok": "boolean",
        "at": "string",
        "items": "array<struct<sku:string,qty:int>>",
        "note": "string",
        "attrs": "struct<k:string>",
    }


def test_a_json_line_that_is_not_json_names_the_line() -> None:
    stream = io.BytesIO(b'{"id": 1}\n\n{"id": 2,\n')
    with pytest.raises(UnreadableFileError, match=r"line 3 is not JSON"):
        json_schema(stream, len(stream.getvalue()))
    with pytest.raises(UnreadableFileError, match="line 1 is not a JSON object"):
        json_schema(io.BytesIO(b"[1, 2]\n"), 7)


def test_a_long_json_file_is_read_to_its_sample_whole_lines_only() -> None:
    from batch.crawl_formats import SAMPLE_BYTES

    line = json.dumps({"id": 1, "pad": "x" * 1000}).encode() + b"\n"
    body = line * (SAMPLE_BYTES // len(line) + 10) + b"not json at all\n"
    found = json_schema(io.BytesIO(body), len(body))  # the bad line is past the sample
    assert set(found.columns) == {"id", "pad"}


def test_csv_types_with_dates_as_text_and_small_integers_as_int() -> None:
    body = (
        "Order_ID;qty;total;paid;created_at;day;empty\n"
        "a;1;9.5;true;2024-05-01 12:00:00;2024-05-01;\n"
        "b;3000000000;10;false;2024-05-02 12:00:00;2024-05-02;\n"
    )
    found = csv_schema(io.BytesIO(body.encode()), ";")
    assert {name: glue_type(kind) for name, kind in found.columns.items()} == {
        "order_id": "string",
        "qty": "bigint",
        "total": "double",
        "paid": "boolean",
        "created_at": "string",
        "day": "string",
        "empty": "string",
    }
    small = csv_schema(io.BytesIO(b"n\n1\n2\n"), ",")
    assert glue_type(small.columns["n"]) == "int"


def test_a_csv_with_a_ragged_row_or_a_repeated_column_is_unreadable() -> None:
    with pytest.raises(UnreadableFileError, match="Expected 2 columns, got 3"):
        csv_schema(io.BytesIO(b"a,b\n1,2\n1,2,3\n"), ",")
    with pytest.raises(UnreadableFileError, match="column 'a' appears twice"):
        csv_schema(io.BytesIO(b"a,A\n1,2\n"), ",")


def test_parquet_columns_come_from_the_footer() -> None:
    buffer = io.BytesIO()
    table = pa.table(
        {
            "ID": pa.array([1], pa.int64()),
            "amount": pa.array([1], pa.decimal128(12, 2)),
            "at": pa.array([0], pa.timestamp("ms", tz="UTC")),
            "took": pa.array([1], pa.duration("s")),
        }
    )
    pq.write_table(table, buffer)
    buffer.seek(0)
    found = parquet_schema(buffer)
    assert {n: glue_type(k) for n, k in found.columns.items()} == {
        "id": "bigint",
        "amount": "decimal(12,2)",
        "at": "timestamp",
    }
    assert found.left_out == ("took (duration[s])",)
    with pytest.raises(UnreadableFileError, match="not a readable Parquet file"):
        parquet_schema(io.BytesIO(b"PAR1 this is not parquet at all PAR1"))


ORDER_SCHEMA = {
    "type": "record",
    "name": "Order",
    "namespace": "com.shop",
    "fields": [
        {"name": "orderId", "type": "string"},
        {"name": "amount", "type": "int"},
        {
            "name": "status",
            "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID"]},
        },
        {"name": "ship_to", "type": ["null", {"type": "record", "name": "Address", "fields": [
            {"name": "city", "type": "string"}]}]},
        {"name": "bill_to", "type": ["null", "Address"]},
        {"name": "total", "type": {"type": "bytes", "logicalType": "decimal", "precision": 12,
                                   "scale": 2}},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
}  # fmt: skip


def avro_file(schema: dict[str, Any], records: list[dict[str, Any]]) -> io.BytesIO:
    buffer = io.BytesIO()
    fastavro.writer(buffer, fastavro.parse_schema(schema), records)
    buffer.seek(0)
    return buffer


def test_avro_columns_come_from_the_writer_schema() -> None:
    found = read_schema("avro", avro_file(ORDER_SCHEMA, []), 0, ",")
    assert {n: glue_type(k) for n, k in found.columns.items()} == {
        "orderid": "string",
        "amount": "int",
        "status": "string",
        "ship_to": "struct<city:string>",
        "bill_to": "struct<city:string>",
        "total": "decimal(12,2)",
        "at": "timestamp",
    }
    with pytest.raises(UnreadableFileError, match="not a readable Avro file"):
        read_schema("avro", io.BytesIO(b"Obj\x02 not avro"), 12, ",")


def test_the_avro_literal_keeps_declared_types_and_reads_every_file() -> None:
    writer = json.loads(json.dumps(ORDER_SCHEMA))
    declared = avro_declarations(writer)
    columns = [
        ("orderid", "string"),
        ("amount", "bigint"),  # widened by an older file: derived
        ("status", "string"),
        ("ship_to", "struct<city:string>"),
        ("bill_to", "struct<city:string>"),
        ("total", "decimal(12,2)"),
        ("at", "timestamp"),
        ("legacy", "int"),  # in no file: kept from the previous literal
        ("extra", "array<double>"),  # in no file and no literal: derived
    ]
    previous = json.dumps(
        {"type": "record", "name": "x", "fields": [{"name": "legacy", "type": ["null", "int"]}]}
    )
    literal = json.loads(avro_literal("orders", columns, declared, writer, previous))
    fastavro.parse_schema(literal)
    fields = {f["name"]: f["type"] for f in literal["fields"]}
    assert literal["name"] == "Order" and literal["namespace"] == "com.shop"
    assert list(fields) == [
        "orderId", "amount", "status", "ship_to", "bill_to", "total", "at", "legacy", "extra",
    ]  # fmt: skip
    assert fields["amount"] == ["null", "long"]
    assert fields["status"][1]["type"] == "enum"
    assert fields["bill_to"] == ["null", "Address"]
    assert fields["legacy"] == ["null", "int"]
    assert fields["extra"] == ["null", {"type": "array", "items": ["null", "double"]}]
    assert all(f["type"][0] == "null" for f in literal["fields"])
    # Every file resolves against it: one written with the old schema reads as the literal.
    old = avro_file(ORDER_SCHEMA, [
        {"orderId": "o1", "amount": 5, "status": "NEW", "ship_to": None, "bill_to": None,
         "total": b"\x01", "at": 0},
    ])  # fmt: skip
    rows = list(fastavro.reader(old, reader_schema=fastavro.parse_schema(literal)))
    assert rows[0]["amount"] == 5 and rows[0]["legacy"] is None


def test_an_avro_literal_whose_kept_types_no_longer_parse_is_derived() -> None:
    writer = json.loads(json.dumps(ORDER_SCHEMA))
    declared = avro_declarations(writer)
    # ship_to, which defines Address, widened; bill_to still refers to Address by name.
    columns = [("ship_to", "struct<city:string,zip:string>"), ("bill_to", "struct<city:string>")]
    literal = json.loads(avro_literal("orders", columns, declared, writer, None))
    fastavro.parse_schema(literal)
    assert literal["fields"][1]["type"][1]["type"] == "record"
