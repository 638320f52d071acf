"""What a crawler makes of its files, without touching them: column types merged across
files, the Glue (Hive) type of each, the change from the table Glue holds, and the
partitions a file's folders name.

Types are Arrow types shaped first to what Hive can say (one integer of each width, one
timestamp, ``list`` for every list, no dictionaries), so that merging them and reading Glue's
types back give the same answers. Merging is pyarrow's ``unify_schemas`` with permissive
promotion (int + bigint -> bigint, bigint + double -> double, a struct gains the fields of
both); where it finds no common type the column becomes ``string`` and the conflict is
reported, as an AWS Glue crawler does.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from connectors.glue_catalog import HIVE_DEFAULT_PARTITION, HIVE_TYPES, hive_type, spark_type_name
from streamlake.errors import CrawlError

if TYPE_CHECKING:
    import pyarrow as pa

# A file's columns: lowercased name -> Arrow type, in the order the file has them.
Columns = dict[str, "pa.DataType"]

# The longest type a note spells out before it is cut.
NOTE_TYPE_CHARS = 40


@dataclass(frozen=True)
class Conflict:
    """Two types of one column the files disagree on beyond promotion."""

    column: str
    first: str
    second: str

    def describe(self) -> str:
        return f"{self.column} string ({short(self.first)} and {short(self.second)} in the files)"


@dataclass
class MergedSchema:
    """The columns of every file read so far, and the first conflict found in each."""

    columns: Columns = field(default_factory=dict)
    conflicts: dict[str, Conflict] = field(default_factory=dict)

    def add(self, columns: Columns) -> None:
        """Merge one file's (or record's) columns in; new columns go last."""
        for name, kind in columns.items():
            known = self.columns.get(name)
            if known is None:
                self.columns[name] = kind
                continue
            merged, incompatible = merge_types(known, kind)
            if incompatible and name not in self.conflicts:
                self.conflicts[name] = Conflict(name, type_label(known), type_label(kind))
            self.columns[name] = merged


def short(text: str) -> str:
    return text if len(text) <= NOTE_TYPE_CHARS else text[: NOTE_TYPE_CHARS - 3] + "..."


@functools.lru_cache(maxsize=4096)
def merge_types(first: pa.DataType, second: pa.DataType) -> tuple[pa.DataType, bool]:
    """The type both fit in, and whether there was none (then ``string``). Cached: a file's
    records repeat the same few pairs."""
    import pyarrow as pa

    if first == second:
        return first, False
    try:
        unified = pa.unify_schemas(
            [pa.schema([pa.field("c", first)]), pa.schema([pa.field("c", second)])],
            promote_options="permissive",
        )
    except (pa.ArrowTypeError, pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.string(), True
    merged = hive_shaped(unified.field("c").type)
    # A promotion to a type Hive has none for is a conflict too.
    return (merged, False) if merged is not None else (pa.string(), True)


def hive_shaped(kind: pa.DataType) -> pa.DataType | None:
    """``kind`` as the Arrow type of its Hive type: unsigned integers widened to the next
    signed one (uint64 to decimal(20,0), as Spark reads it), one timestamp (Hive's has no
    unit or zone), large and viewed strings, binaries and lists as the plain ones,
    dictionaries as their values. ``null`` stays (it merges into anything). None for what
    Hive has no type for (time of day, durations, intervals, unions)."""
    import pyarrow as pa
    import pyarrow.types as t

    simple: list[tuple[Any, pa.DataType]] = [
        (t.is_boolean, pa.bool_()),
        (t.is_int8, pa.int8()),
        (t.is_int16, pa.int16()),
        (t.is_int32, pa.int32()),
        (t.is_int64, pa.int64()),
        (t.is_uint8, pa.int16()),
        (t.is_uint16, pa.int32()),
        (t.is_uint32, pa.int64()),
        (t.is_uint64, pa.decimal128(20, 0)),
        (t.is_float16, pa.float32()),
        (t.is_float32, pa.float32()),
        (t.is_float64, pa.float64()),
        (t.is_date, pa.date32()),
        (t.is_timestamp, pa.timestamp("us")),
        (t.is_null, pa.null()),
    ]
    for test, shaped in simple:
        if test(kind):
            return shaped
    if t.is_string(kind) or t.is_large_string(kind) or t.is_string_view(kind):
        return pa.string()
    if (
        t.is_binary(kind)
        or t.is_large_binary(kind)
        or t.is_fixed_size_binary(kind)
        or t.is_binary_view(kind)
    ):
        return pa.binary()
    if t.is_decimal(kind):
        return pa.decimal128(kind.precision, kind.scale) if kind.precision <= 38 else None
    if t.is_dictionary(kind):
        return hive_shaped(kind.value_type)
    return nested_shaped(kind)


def nested_shaped(kind: pa.DataType) -> pa.DataType | None:
    import pyarrow as pa
    import pyarrow.types as t

    if t.is_list(kind) or t.is_large_list(kind) or t.is_fixed_size_list(kind):
        element = hive_shaped(kind.value_type)
        return None if element is None else pa.list_(element)
    if t.is_map(kind):
        key, item = hive_shaped(kind.key_type), hive_shaped(kind.item_type)
        return None if key is None or item is None else pa.map_(key, item)
    if t.is_struct(kind):
        # Hive's struct members are case-insensitive, and Glue gives them back lowercased.
        members = [
            (kind.field(i).name.lower(), hive_shaped(kind.field(i).type))
            for i in range(kind.num_fields)
        ]
        if any(m is None for _, m in members):
            return None
        return pa.struct([pa.field(name, member) for name, member in members])
    return None


def settled(kind: pa.DataType) -> pa.DataType:
    """``null`` (a column no sampled file had a value for) as ``string``, as Glue registers
    it; inside lists, maps and structs too."""
    import pyarrow as pa
    import pyarrow.types as t

    if t.is_null(kind):
        return pa.string()
    if t.is_list(kind):
        return pa.list_(settled(kind.value_type))
    if t.is_map(kind):
        return pa.map_(settled(kind.key_type), settled(kind.item_type))
    if t.is_struct(kind):
        return pa.struct(
            [
                pa.field(kind.field(i).name, settled(kind.field(i).type))
                for i in range(kind.num_fields)
            ]
        )
    return kind


def texts_as_strings(kind: pa.DataType) -> pa.DataType:
    """Dates and times a text file's reader recognised, as strings: in JSON and CSV they are
    text, and the Hive SerDes over those files read ISO 8601 text as string only."""
    import pyarrow as pa
    import pyarrow.types as t

    if t.is_timestamp(kind) or t.is_date(kind) or t.is_time(kind):
        return pa.string()
    if t.is_list(kind):
        return pa.list_(texts_as_strings(kind.value_type))
    if t.is_struct(kind):
        return pa.struct(
            [
                pa.field(kind.field(i).name, texts_as_strings(kind.field(i).type))
                for i in range(kind.num_fields)
            ]
        )
    return kind


# Spark's type names (the vocabulary of connectors.glue_catalog.hive_type) of the Arrow
# types hive_shaped gives; built lazily, pyarrow is imported only by a crawl.
@functools.cache
def spark_names() -> dict[pa.DataType, str]:
    import pyarrow as pa

    return {
        pa.string(): "string",
        pa.int64(): "long",
        pa.int32(): "integer",
        pa.int16(): "short",
        pa.int8(): "byte",
        pa.float32(): "float",
        pa.float64(): "double",
        pa.bool_(): "boolean",
        pa.binary(): "binary",
        pa.date32(): "date",
        pa.timestamp("us"): "timestamp",
    }


def spark_type(kind: pa.DataType) -> Any:
    """A shaped Arrow type as a Spark type in its JSON form, which ``hive_type`` spells as
    Hive: one mapping for the catalog's Delta columns and the crawler's files."""
    import pyarrow.types as t

    if kind in spark_names():
        return spark_names()[kind]
    if t.is_decimal(kind):
        return f"decimal({kind.precision},{kind.scale})"
    if t.is_list(kind):
        return {"type": "array", "elementType": spark_type(kind.value_type)}
    if t.is_map(kind):
        return {
            "type": "map",
            "keyType": spark_type(kind.key_type),
            "valueType": spark_type(kind.item_type),
        }
    if t.is_struct(kind):
        members = [kind.field(i) for i in range(kind.num_fields)]
        return {
            "type": "struct",
            "fields": [{"name": m.name, "type": spark_type(m.type)} for m in members],
        }
    return {"type": str(kind)}  # no Hive type: hive_type says None


def glue_type(kind: pa.DataType) -> str | None:
    """The Glue (Hive) type string of an Arrow type; None where Hive has none."""
    shaped = hive_shaped(kind)
    return None if shaped is None else hive_type(spark_type(settled(shaped)))


def type_label(kind: pa.DataType) -> str:
    """How a note names a type: its Hive spelling, else Arrow's."""
    return glue_type(kind) or spark_type_name(spark_type(kind))


def arrow_type(hive: str) -> pa.DataType | None:
    """A Glue column's Hive type as the Arrow type it was written from; None for a type
    this module never writes (a column someone else typed ``uniontype<...>``)."""
    try:
        parsed, rest = parse_hive(hive.replace(" ", "").lower())
    except (ValueError, IndexError):
        return None
    return parsed if not rest else None


@functools.cache
def arrow_of_spark() -> dict[str, pa.DataType]:
    return {name: kind for kind, name in spark_names().items()}


def parse_hive(text: str) -> tuple[pa.DataType | None, str]:
    """The type at the start of ``text`` and what follows it."""
    import pyarrow as pa

    for opening, build in (("array<", "array"), ("map<", "map"), ("struct<", "struct")):
        if text.startswith(opening):
            return parse_nested(build, text[len(opening) :])
    if text.startswith(("decimal(", "varchar(", "char(")):
        head, _, rest = text.partition(")")
        if not head.startswith("decimal("):
            return pa.string(), rest
        precision, _, scale = head.removeprefix("decimal(").partition(",")
        return pa.decimal128(int(precision), int(scale or 0)), rest
    head = text
    for stop in ",>":
        head = head.split(stop, 1)[0]
    rest = text[len(head) :]
    hive_to_spark = {hive: spark for spark, hive in reversed(HIVE_TYPES.items())}
    spark = hive_to_spark.get("int" if head == "integer" else head)
    if spark is None:
        raise ValueError(f"unknown hive type {head!r}")
    return arrow_of_spark()[spark], rest


def parse_nested(kind: str, text: str) -> tuple[pa.DataType, str]:
    import pyarrow as pa

    if kind == "array":
        element, rest = parse_hive(text)
        return pa.list_(element), expect(rest, ">")
    if kind == "map":
        key, rest = parse_hive(text)
        value, rest = parse_hive(expect(rest, ","))
        return pa.map_(key, value), expect(rest, ">")
    members = []
    rest = text
    while not rest.startswith(">"):
        name, _, rest = rest.partition(":")
        member, rest = parse_hive(rest)
        members.append(pa.field(name, member))
        rest = rest.removeprefix(",")
    return pa.struct(members), expect(rest, ">")


def expect(text: str, token: str) -> str:
    if not text.startswith(token):
        raise ValueError(f"expected {token!r} at {text[:20]!r}")
    return text[len(token) :]


@dataclass(frozen=True)
class SchemaChanges:
    """How the files' columns differ from the table Glue holds, under a crawler's default
    policy: new columns added, widened types updated, incompatible ones made string (all
    written), columns no file has any more kept and reported."""

    added: tuple[str, ...] = ()
    widened: tuple[tuple[str, str, str], ...] = ()
    incompatible: tuple[tuple[str, str, str], ...] = ()
    missing: tuple[str, ...] = ()

    @property
    def written(self) -> bool:
        return bool(self.added or self.widened or self.incompatible)

    def describe(self) -> list[str]:
        notes = []
        if self.added:
            count = len(self.added)
            notes.append(f"+{count} column{'s' if count != 1 else ''} ({', '.join(self.added)})")
        notes += [f"{name} {short(old)}->{short(new)}" for name, old, new in self.widened]
        notes += [
            f"{name} {short(old)}->{short(new)} (incompatible)"
            for name, old, new in self.incompatible
        ]
        if self.missing:
            notes.append(f"{len(self.missing)} missing from the files ({', '.join(self.missing)})")
        return notes


def reconcile(
    previous: list[tuple[str, str]] | None, found: Columns
) -> tuple[list[tuple[str, str]], SchemaChanges]:
    """The table's columns as (name, Hive type) after this crawl, and what changed.
    ``previous`` is what Glue holds (None for a new table): its columns keep their place and
    new ones go last, so readers that map columns by position keep working."""
    if previous is None:
        return [(name, glue_type_or_string(kind)) for name, kind in found.items()], SchemaChanges()
    columns: list[tuple[str, str]] = []
    widened: list[tuple[str, str, str]] = []
    incompatible: list[tuple[str, str, str]] = []
    missing: list[str] = []
    for name, old in previous:
        kind = found.get(name)
        if kind is None:
            missing.append(name)
            columns.append((name, old))
            continue
        new = merged_with_glue(old, kind)
        columns.append((name, new))
        if new != old:
            (incompatible if new == "string" else widened).append((name, old, new))
    known = {name for name, _ in previous}
    added = [(name, glue_type_or_string(kind)) for name, kind in found.items() if name not in known]
    columns += added
    changes = SchemaChanges(
        tuple(name for name, _ in added), tuple(widened), tuple(incompatible), tuple(missing)
    )
    return columns, changes


def merged_with_glue(old: str, kind: pa.DataType) -> str:
    """A column's type after files of ``kind`` are added to a table that says ``old``:
    ``old`` when the files fit it (a narrower type never narrows the table), the wider
    type when one holds both, else ``string``."""
    previous = arrow_type(old)
    if previous is None:
        new = glue_type_or_string(kind)
        return old if new == old else "string"
    merged, incompatible = merge_types(previous, kind)
    return "string" if incompatible else glue_type_or_string(merged)


def glue_type_or_string(kind: pa.DataType) -> str:
    return glue_type(kind) or "string"


@dataclass(frozen=True)
class PartitionPath:
    """What a file's folders below the crawled location say: partition keys and values,
    and the folder itself ('' for the location)."""

    keys: tuple[str, ...]
    values: tuple[str, ...]
    folder: str


def partition_of(name: str) -> PartitionPath:
    """The partition a file at ``name`` (relative to the crawled location) is in. A
    ``key=value`` folder names its key (lowercased, as Glue keeps names) and value
    (%XX-unescaped, as Hive and Spark escape them; empty as Hive's default partition); any
    other folder is the key ``partition_<depth>``, as Glue's crawler names them (Firehose's
    ``YYYY/MM/DD/HH/`` folders)."""
    folders = name.split("/")[:-1]
    keys, values = [], []
    for depth, folder in enumerate(folders):
        key, equals, value = folder.partition("=")
        if equals and key:
            keys.append(unquote(key).lower())
            values.append(unquote(value) or HIVE_DEFAULT_PARTITION)
        else:
            keys.append(f"partition_{depth}")
            values.append(unquote(folder))
    return PartitionPath(tuple(keys), tuple(values), "/".join(folders))


def partition_keys(paths: dict[str, PartitionPath], crawler: str, location: str) -> tuple[str, ...]:
    """The partition keys every file agrees on; a CrawlError naming two files whose folders
    disagree (keys, or their order), which no one table can describe."""
    first_name: str | None = None
    keys: tuple[str, ...] = ()
    for name in sorted(paths):
        found = paths[name].keys
        if first_name is None:
            first_name, keys = name, found
        elif found != keys:
            raise CrawlError(
                f"partition folders disagree: {first_name} has {keys_label(keys)}, "
                f"{name} has {keys_label(found)}",
                "one crawler's files need the same key=value folders in the same order",
                crawler=crawler,
                path=location,
            )
    return keys


def keys_label(keys: tuple[str, ...]) -> str:
    return f"keys ({', '.join(keys)})" if keys else "no partition keys"


def is_hidden(name: str) -> bool:
    """Files Hadoop's readers skip, and so does a crawler: any part of the path starting
    with ``.`` or ``_`` (``_SUCCESS``, ``.part-0.crc``, ``_temporary/``), checksums, and the
    ``<name>_$folder$`` markers old S3 tools left."""
    return any(part.startswith((".", "_")) for part in name.split("/")) or name.endswith(
        (".crc", "_$folder$")
    )
