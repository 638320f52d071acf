"""The file formats a crawler reads, each two ways: the columns one file holds (read from a
bounded part of it), and the Glue storage a table of such files is registered with (input
and output formats, SerDe and its parameters, as Glue's crawler classifies them).

A text file (JSON lines, CSV) is read up to ``SAMPLE_BYTES``, whole lines only; a Parquet
file's footer and an Avro file's header hold its schema, and only they are read.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

from batch.crawl_schema import (
    Columns,
    Conflict,
    MergedSchema,
    arrow_type,
    hive_shaped,
    merge_types,
    texts_as_strings,
    type_label,
)
from connectors.glue_catalog import (
    AVRO_INPUT,
    AVRO_OUTPUT,
    AVRO_SERDE,
    CSV_SERDE,
    JSON_SERDE,
    PARQUET_INPUT,
    PARQUET_OUTPUT,
    PARQUET_SERDE,
    TEXT_INPUT,
    TEXT_OUTPUT,
)
from streamlake.errors import first_line

if TYPE_CHECKING:
    import pyarrow as pa

FileFormat = Literal["json", "csv", "parquet", "avro"]

# How much of a text file is read for its schema, as Glue's classifiers read a file's head.
SAMPLE_BYTES = 1024 * 1024
# A JSON line longer than the sample is read to its end, up to this.
LONGEST_LINE = 64 * 1024 * 1024

EXTENSIONS: dict[str, FileFormat] = {
    "json": "json",
    "jsonl": "json",
    "ndjson": "json",
    "csv": "csv",
    "parquet": "parquet",
    "parq": "parquet",
    "avro": "avro",
}

# (input format, output format, SerDe) per format, as Glue's crawler registers them.
STORAGE: dict[FileFormat, tuple[str, str, str]] = {
    "json": (TEXT_INPUT, TEXT_OUTPUT, JSON_SERDE),
    "csv": (TEXT_INPUT, TEXT_OUTPUT, CSV_SERDE),
    "parquet": (PARQUET_INPUT, PARQUET_OUTPUT, PARQUET_SERDE),
    "avro": (AVRO_INPUT, AVRO_OUTPUT, AVRO_SERDE),
}

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)


class UnreadableFileError(Exception):
    """A file that does not read as its format; the message says where in it."""


@dataclass(frozen=True)
class FileSchema:
    """One file's columns, the types it mixed in one column (JSON), the columns no Glue
    type describes as "name (type)", and an Avro file's writer schema."""

    columns: Columns
    conflicts: dict[str, Conflict] = field(default_factory=dict)
    left_out: tuple[str, ...] = ()
    avro: dict[str, Any] | None = None


def format_of(name: str) -> FileFormat | None:
    """A file's format by its extension; None for one no crawler format has."""
    stem, dot, extension = name.rsplit("/", 1)[-1].rpartition(".")
    return EXTENSIONS.get(extension.lower()) if dot and stem else None


def read_schema(kind: FileFormat, stream: BinaryIO, size: int, delimiter: str) -> FileSchema:
    """The columns of one file; UnreadableFileError when it is not a file of ``kind``."""
    if kind == "json":
        return json_schema(stream, size)
    if kind == "csv":
        return csv_schema(stream, delimiter)
    if kind == "parquet":
        return parquet_schema(stream)
    return avro_schema(stream)


def head_lines(stream: BinaryIO, size: int) -> bytes:
    """The file's first ``SAMPLE_BYTES``, ending at a line's end (a longer first line is
    read whole, up to ``LONGEST_LINE``)."""
    data = stream.read(SAMPLE_BYTES)
    if size <= len(data):
        return data
    end = data.rfind(b"\n")
    if end >= 0:
        return data[: end + 1]
    while len(data) < LONGEST_LINE:
        more = stream.read(SAMPLE_BYTES)
        if not more:
            return data
        data += more
        if b"\n" in more:
            return data[: data.index(b"\n") + 1]
    raise UnreadableFileError(f"its first line is longer than {LONGEST_LINE // 2**20} MiB")


def json_schema(stream: BinaryIO, size: int) -> FileSchema:
    """JSON lines: one object per line, each field's type inferred from its values (an
    integer as int when it fits in 32 bits, bigint when in 64, else double)."""
    merged = MergedSchema()
    for number, line in enumerate(head_lines(stream, size).split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UnreadableFileError(
                f"line {number} is not JSON ({exc.msg}); a JSON file holds one object per line"
            ) from None
        except UnicodeDecodeError:
            raise UnreadableFileError(f"line {number} is not UTF-8 text") from None
        except RecursionError:
            raise UnreadableFileError(f"line {number} nests too deep") from None
        if not isinstance(record, dict):
            raise UnreadableFileError(f"line {number} is not a JSON object")
        merged.add(record_columns(record))
    return FileSchema(merged.columns, merged.conflicts)


def record_columns(record: dict[str, Any]) -> Columns:
    columns: Columns = {}
    for key, value in record.items():
        name, kind = key.lower(), json_type(value)
        columns[name] = merge_types(columns[name], kind)[0] if name in columns else kind
    return columns


def json_type(value: Any) -> pa.DataType:
    """The Arrow type (shaped for Hive) of one JSON value."""
    import pyarrow as pa

    if value is None:
        return pa.null()
    if isinstance(value, bool):
        return pa.bool_()
    if isinstance(value, int):
        if INT32[0] <= value <= INT32[1]:
            return pa.int32()
        return pa.int64() if INT64[0] <= value <= INT64[1] else pa.float64()
    if isinstance(value, float):
        return pa.float64()
    if isinstance(value, str):
        return pa.string()
    if isinstance(value, list):
        element = pa.null()
        for item in value:
            element = merge_types(element, json_type(item))[0]
        return pa.list_(element)
    return pa.struct([pa.field(k.lower(), json_type(v)) for k, v in value.items()])


def csv_schema(stream: BinaryIO, delimiter: str) -> FileSchema:
    """CSV with a header line: the types pyarrow's reader infers over the first block (dates
    and times kept as text, integers as int when every value fits in 32 bits)."""
    import pyarrow as pa
    import pyarrow.csv as csv

    try:
        reader = csv.open_csv(
            stream,
            read_options=csv.ReadOptions(block_size=SAMPLE_BYTES, use_threads=False),
            parse_options=csv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
        )
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            batch = None
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError) as exc:
        raise UnreadableFileError(first_line(exc)) from None
    columns: Columns = {}
    for index, column in enumerate(reader.schema):
        name = column.name.strip().lower() or f"col{index}"
        if name in columns:
            raise UnreadableFileError(f"column {name!r} appears twice in the header")
        kind = texts_as_strings(hive_shaped(column.type) or pa.string())
        if kind == pa.int64() and batch is not None and fits_int32(batch.column(index)):
            kind = pa.int32()
        columns[name] = kind
    return FileSchema(columns)


def fits_int32(values: pa.Array) -> bool:
    import pyarrow.compute as pc

    extremes = pc.min_max(values).as_py()
    low, high = extremes["min"], extremes["max"]
    return low is None or (INT32[0] <= low and high <= INT32[1])


def parquet_schema(stream: BinaryIO) -> FileSchema:
    """A Parquet file's schema, from its footer."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.ParquetFile(stream).schema_arrow
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise UnreadableFileError(f"not a readable Parquet file: {first_line(exc)}") from None
    return declared_columns([(f.name, f.type) for f in schema])


def declared_columns(fields: list[tuple[str, pa.DataType | None]]) -> FileSchema:
    """Columns a file declares (Parquet, Avro); those Hive has no type for are left out."""
    columns: Columns = {}
    left_out = []
    for name, kind in fields:
        shaped = hive_shaped(kind) if kind is not None else None
        if shaped is None:
            left_out.append(f"{name.lower()} ({kind if kind is not None else 'no Hive type'})")
        else:
            columns[name.lower()] = shaped
    return FileSchema(columns, left_out=tuple(left_out))


def avro_schema(stream: BinaryIO) -> FileSchema:
    """An Avro container file's writer schema, from its header."""
    import fastavro

    try:
        writer = json.loads(fastavro.reader(stream).metadata["avro.schema"])
    except OSError:
        raise
    except Exception as exc:  # fastavro's header errors share no base class but Exception
        raise UnreadableFileError(f"not a readable Avro file: {first_line(exc)}") from None
    if not isinstance(writer, dict) or writer.get("type") != "record":
        raise UnreadableFileError("its Avro schema is not a record")
    named: dict[str, pa.DataType | None] = {}
    namespace = avro_namespace(writer, "")
    fields = [(f["name"], avro_arrow(f["type"], named, namespace)) for f in writer["fields"]]
    found = declared_columns(fields)
    return FileSchema(found.columns, left_out=found.left_out, avro=writer)


def avro_namespace(schema: dict[str, Any], enclosing: str) -> str:
    name = str(schema.get("name", ""))
    if "." in name:
        return name.rpartition(".")[0]
    return str(schema.get("namespace", enclosing))


def avro_full_name(name: str, namespace: str) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def avro_arrow(schema: Any, named: dict[str, pa.DataType | None], namespace: str) -> Any:
    """An Avro type as an Arrow type; None for one Hive cannot hold (a recursive record)."""
    import pyarrow as pa

    if isinstance(schema, str):
        primitive = avro_primitive(schema)
        if primitive is not None:
            return primitive
        full = avro_full_name(schema, namespace)
        if full not in named and schema not in named:
            raise UnreadableFileError(f"its Avro schema names an undefined type {schema!r}")
        return named.get(full, named.get(schema))
    if isinstance(schema, list):
        branches = [avro_arrow(b, named, namespace) for b in schema if b != "null"]
        if any(b is None for b in branches):
            return None
        union = pa.null()
        for branch in branches:
            union = merge_types(union, branch)[0]
        return union
    return avro_complex(schema, named, namespace)


def avro_complex(
    schema: dict[str, Any], named: dict[str, pa.DataType | None], namespace: str
) -> Any:
    import pyarrow as pa

    kind, logical = schema.get("type"), schema.get("logicalType")
    if logical == "decimal" and kind in ("bytes", "fixed"):
        precision, scale = int(schema["precision"]), int(schema.get("scale", 0))
        if kind == "fixed":
            named[avro_full_name(schema["name"], namespace)] = pa.decimal128(precision, scale)
        return pa.decimal128(precision, scale) if precision <= 38 else None
    if logical == "date" and kind == "int":
        return pa.date32()
    if logical in LOGICAL_TIMESTAMPS and kind == "long":
        return pa.timestamp("us")
    if logical == "uuid" and kind == "string":
        return pa.string()
    if kind == "record":
        full = avro_full_name(schema["name"], namespace)
        named[full] = None  # until it is built: a record that holds itself has no Hive type
        inner = avro_namespace(schema, namespace)
        members = [(f["name"], avro_arrow(f["type"], named, inner)) for f in schema["fields"]]
        if any(m is None for _, m in members):
            return None
        named[full] = pa.struct([pa.field(n.lower(), m) for n, m in members])
        return named[full]
    if kind in ("enum", "fixed"):
        full = avro_full_name(schema["name"], namespace)
        named[full] = pa.string() if kind == "enum" else pa.binary()
        return named[full]
    if kind == "array":
        items = avro_arrow(schema["items"], named, namespace)
        return None if items is None else pa.list_(items)
    if kind == "map":
        values = avro_arrow(schema["values"], named, namespace)
        return None if values is None else pa.map_(pa.string(), values)
    return avro_arrow(kind, named, namespace)


LOGICAL_TIMESTAMPS = (
    "timestamp-millis",
    "timestamp-micros",
    "timestamp-nanos",
    "local-timestamp-millis",
    "local-timestamp-micros",
    "local-timestamp-nanos",
)


def avro_primitive(name: str) -> pa.DataType | None:
    import pyarrow as pa

    primitives = {
        "null": pa.null(),
        "boolean": pa.bool_(),
        "int": pa.int32(),
        "long": pa.int64(),
        "float": pa.float32(),
        "double": pa.float64(),
        "bytes": pa.binary(),
        "string": pa.string(),
    }
    return primitives.get(name)


@dataclass(frozen=True)
class AvroDeclared:
    """The Avro field a column was last declared as: its name as the file spells it, its
    type, and the Glue type that type reads as."""

    name: str
    avro: Any
    glue: str


def avro_declarations(writer: dict[str, Any]) -> dict[str, AvroDeclared]:
    """The top-level fields of an Avro writer schema, by lowercased column name."""
    named: dict[str, pa.DataType | None] = {}
    namespace = avro_namespace(writer, "")
    found = {}
    for member in writer["fields"]:
        kind = avro_arrow(member["type"], named, namespace)
        label = type_label(kind) if kind is not None else ""
        found[member["name"].lower()] = AvroDeclared(member["name"], member["type"], label)
    return found


def avro_literal(
    table: str,
    columns: list[tuple[str, str]],
    declared: dict[str, AvroDeclared],
    writer: dict[str, Any] | None,
    previous: str | None,
) -> str:
    """The reader schema AvroSerDe reads every file with (``avro.schema.literal``): a record
    of the table's columns in their order, each nullable with default null, so that files
    written before a column was added read it as null. A column keeps the Avro type the
    newest file declares for it while that reads as the column's type (enums, fixed and
    named records intact); a column no file has any more keeps the literal's previous field;
    otherwise the type is derived from the column's."""
    kept = previous_fields(previous)
    record: dict[str, Any] = {"type": "record", "name": f"crawl_{table}"}
    if writer is not None:
        record = {k: writer[k] for k in ("name", "namespace") if k in writer} | {"type": "record"}
    fields = [avro_field(table, name, hive, declared, kept) for name, hive in columns]
    literal = record | {"fields": fields}
    if not avro_parses(literal):
        # A kept type refers to a named type another field no longer defines: derive all.
        derived = [avro_field(table, name, hive, {}, {}) for name, hive in columns]
        literal = record | {"fields": derived}
    return json.dumps(literal, separators=(",", ":"))


def avro_field(
    table: str,
    column: str,
    hive: str,
    declared: dict[str, AvroDeclared],
    kept: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    found = declared.get(column)
    if found is not None and found.glue == hive:
        return {"name": found.name, "type": nullable(found.avro), "default": None}
    if found is None and column in kept:
        return {
            "name": kept[column]["name"],
            "type": nullable(kept[column]["type"]),
            "default": None,
        }
    name = found.name if found is not None else column
    kind = arrow_type(hive)
    derived = derive_avro(kind, f"crawl_{table}_{column}") if kind is not None else "string"
    return {"name": name, "type": nullable(derived), "default": None}


def nullable(avro: Any) -> Any:
    """A union with ``null`` first, so that the field's default may be null."""
    if isinstance(avro, list):
        return ["null", *[b for b in avro if b != "null"]]
    return ["null", avro]


def derive_avro(kind: pa.DataType, path: str) -> Any:
    """An Arrow type as an Avro type; records named after their place (``path``)."""
    import pyarrow as pa
    import pyarrow.types as t

    plain = {
        pa.bool_(): "boolean",
        pa.int8(): "int",
        pa.int16(): "int",
        pa.int32(): "int",
        pa.int64(): "long",
        pa.float32(): "float",
        pa.float64(): "double",
        pa.string(): "string",
        pa.binary(): "bytes",
    }
    if kind in plain:
        return plain[kind]
    if t.is_date(kind):
        return {"type": "int", "logicalType": "date"}
    if t.is_timestamp(kind):
        return {"type": "long", "logicalType": "timestamp-micros"}
    if t.is_decimal(kind):
        return {
            "type": "bytes",
            "logicalType": "decimal",
            "precision": kind.precision,
            "scale": kind.scale,
        }
    if t.is_list(kind):
        return {"type": "array", "items": nullable(derive_avro(kind.value_type, f"{path}_item"))}
    if t.is_map(kind):
        return {"type": "map", "values": nullable(derive_avro(kind.item_type, f"{path}_value"))}
    if t.is_struct(kind):
        members = [kind.field(i) for i in range(kind.num_fields)]
        return {
            "type": "record",
            "name": re.sub(r"\W", "_", path),
            "fields": [
                {
                    "name": m.name,
                    "type": nullable(derive_avro(m.type, f"{path}_{m.name}")),
                    "default": None,
                }
                for m in members
            ],
        }
    return "string"


def previous_fields(literal: str | None) -> dict[str, dict[str, Any]]:
    if not literal:
        return {}
    try:
        record = json.loads(literal)
        return {f["name"].lower(): f for f in record["fields"]}
    except (ValueError, KeyError, TypeError):
        return {}


def avro_parses(literal: dict[str, Any]) -> bool:
    import fastavro

    try:
        fastavro.parse_schema(literal)
    except Exception:  # fastavro's schema errors share no base class but Exception
        return False
    return True


def storage_descriptor(
    kind: FileFormat, location: str, columns: list[dict[str, str]], serde: dict[str, str]
) -> dict[str, Any]:
    """A Glue StorageDescriptor for files of ``kind`` at ``location``."""
    input_format, output_format, library = STORAGE[kind]
    return {
        "Columns": columns,
        "Location": location,
        "InputFormat": input_format,
        "OutputFormat": output_format,
        "SerdeInfo": {"SerializationLibrary": library, "Parameters": serde},
    }


def serde_parameters(
    kind: FileFormat, columns: list[dict[str, str]], delimiter: str, literal: str | None
) -> dict[str, str]:
    """What each SerDe is told: the JSON SerDe its columns (``paths``, as Glue's crawler
    sets), OpenCSVSerde the separator and quoting, AvroSerDe its reader schema."""
    if kind == "json":
        return {"paths": ",".join(c["Name"] for c in columns)}
    if kind == "csv":
        return {"separatorChar": delimiter, "quoteChar": '"', "escapeChar": "\\"}
    if kind == "avro":
        return {"avro.schema.literal": literal or ""}
    return {"serialization.format": "1"}


def table_parameters(
    kind: FileFormat, crawler: str, delimiter: str, literal: str | None
) -> dict[str, str]:
    """Table parameters as Glue's crawler sets them (``classification`` first of all; CSV's
    header line and delimiter; Avro's schema literal), none that changes with every file
    added (no object counts or sizes), so a crawl of the same schema writes nothing."""
    parameters = {
        "classification": kind,
        "typeOfData": "file",
        "EXTERNAL": "TRUE",
        "UPDATED_BY_CRAWLER": crawler,
    }
    if kind == "csv":
        parameters |= {"skip.header.line.count": "1", "delimiter": delimiter}
    if kind == "avro":
        parameters["avro.schema.literal"] = literal or ""
    return parameters
