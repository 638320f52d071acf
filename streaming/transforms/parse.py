"""Parses raw payloads into the declared columns, with Spark's VARIANT type.

Every record comes out with its typed columns, or with an error kind and message:
``parse`` (not UTF-8, not JSON, not an object), ``schema`` (a declared field whose value
cannot become its declared type), ``drift`` (unknown fields under the strict policy).
No Python runs per record except to word the parser's message for records that failed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from streaming.transforms.projection import Projection, apply_all

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame
    from pyspark.sql.types import StructField, StructType

# DynamoDB's typed attribute values: {"S": "x"}, {"N": "1"}, {"BOOL": true}.
DYNAMODB_SCALARS = ("S", "N", "BOOL")


@dataclass(frozen=True)
class Document:
    """Where the record's fields are: the whole payload, or a DynamoDB image in it."""

    path: str = "$"
    typed_attributes: bool = False


PLAIN = Document()
NEW_IMAGE = Document("$.new_image", typed_attributes=True)


def json_error_message(text: str | None) -> str:
    """The JSON parser's own words for why ``text`` did not parse (failed rows only)."""
    if text is None:
        return "payload is not UTF-8 text"
    try:
        value = json.loads(
            text, object_pairs_hook=without_duplicate_keys, parse_constant=not_json_constant
        )
    except RecursionError:
        return "invalid JSON: nested deeper than the parser's limit"
    except ValueError as exc:
        return f"invalid JSON: {exc}"
    if isinstance(value, dict):
        # Python read it, Spark's parser did not: past Spark's limits (depth, VARIANT size).
        return "JSON object past the parser's limits (nesting depth, or over 16 MiB)"
    return f"expected a JSON object, got {type(value).__name__}"


def not_json_constant(name: str) -> float:
    """Python reads NaN and Infinity; JSON, and Spark's parser, do not."""
    raise ValueError(f"{name} is not a JSON value")


def without_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """A JSON object's members; Spark's VARIANT refuses an object with a key twice."""
    seen: set[str] = set()
    for key, _value in pairs:
        if key in seen:
            raise ValueError(f"duplicate key {key!r} in an object")
        seen.add(key)
    return dict(pairs)


def field_path(document: Document, name: str) -> str:
    return f"{document.path}.{name}" if name.isidentifier() else f"{document.path}['{name}']"


def typed_value(variant: Column, document: Document, field: StructField) -> Column:
    from pyspark.sql import functions as F

    path = field_path(document, field.name)
    type_name = field.dataType.simpleString()
    if not document.typed_attributes:
        value = F.try_variant_get(variant, path, type_name)
        if type_name == "string":
            # Variant casts objects and arrays to JSON text; a string field takes scalars only.
            # (Casting a scalar to a map or an array fails fast, unlike schema_of_variant.)
            is_object = F.try_variant_get(variant, path, "map<string, variant>").isNotNull()
            is_array = F.try_variant_get(variant, path, "array<variant>").isNotNull()
            return F.when(~is_object & ~is_array, value)
        return value
    return F.coalesce(
        *[F.try_variant_get(variant, f"{path}.{kind}", type_name) for kind in DYNAMODB_SCALARS]
    )


def is_present(variant: Column, document: Document, name: str) -> Column:
    from pyspark.sql import functions as F

    value = F.try_variant_get(variant, field_path(document, name), "variant")
    return value.isNotNull() & ~F.is_variant_null(value)


def parse(
    raw: DataFrame,
    fields: list[StructField],
    document: Document,
    drift: str,
    text: Column | None = None,
    reader: bool = True,
) -> DataFrame:
    """Add the typed columns and ``_error_kind``/``_error`` (null when the record parsed);
    see ``parse_projections``."""
    return apply_all(raw, parse_projections(fields, document, drift, text, reader))


def parse_projections(
    fields: list[StructField],
    document: Document,
    drift: str,
    text: Column | None = None,
    reader: bool = True,
) -> list[Projection]:
    """What ``parse`` does to a batch, built once for many batches.

    ``text`` is the record as JSON text when it is not the payload itself (Avro decoded).
    Two paths, one outcome: Spark's JSON reader (``from_json``) types every record of a
    plain document in one streaming pass; the records it cannot vouch for (see
    ``suspect``) are parsed again as a VARIANT, which says exactly what is wrong. The
    VARIANT path alone is about three times slower than the reader, and clean records are
    nearly all of them (``reader`` False: every record the VARIANT way, the reference the
    reader path is tested against). Built as a few wide projections, not a chain of
    withColumn calls: a deep plan overflows the stack of Spark's stream execution threads."""
    from pyspark.sql import functions as F

    if text is None:
        payload = F.col("payload").cast("string")
        text = F.when(F.is_valid_utf8(payload), payload)
    steps = [Projection.adding({"_text": text})]
    if reader and document == PLAIN:
        read = F.from_json("_text", reader_schema(fields), READER_OPTIONS)
        keys = F.json_object_keys(F.col("_text"))
        steps.append(Projection.adding({"_read": read, "_keys": keys}))
        steps.append(Projection.adding({"_suspect": suspect(fields)}))
        fast = {f.name: F.col("_read").getField(f.name) for f in fields}
        keys_of_document = F.col("_keys")
    else:
        steps.append(Projection.adding({"_suspect": F.lit(True)}))
        fast = {}
        keys_of_document = top_level_keys(document)
    is_suspect = F.col("_suspect")
    steps.append(Projection.adding({"_v": F.when(is_suspect, F.try_parse_json("_text"))}))
    variant = F.col("_v")
    document_value = F.try_variant_get(variant, document.path, "variant")
    is_object = F.schema_of_variant(document_value).startswith("OBJECT")
    if document.typed_attributes:
        # A remove event has no new image; its fields come from the keys instead.
        removed = F.try_variant_get(variant, "$.event_name", "string").eqNullSafe("REMOVE")
        is_object = is_object | removed
    known = F.array(*[F.lit(f.name) for f in fields])
    unknown = F.when(is_suspect, F.array_except(keys_of_document, known))
    rescued = rescued_json(document, fields) if drift == "rescue" else None
    typed = {
        f.name: F.when(is_suspect, typed_value(variant, document, f)).otherwise(
            fast.get(f.name, F.lit(None))
        )
        for f in fields
    }
    steps.append(
        Projection.adding(
            {
                **typed,
                "_is_object": F.coalesce(
                    F.when(is_suspect, is_object).otherwise(True), F.lit(False)
                ),
                "_unknown": F.coalesce(unknown, F.array()),
                "_rescued": F.when(is_suspect, rescued)
                if rescued is not None
                else F.lit(None).cast("string"),
            },
            drops=("_read", "_keys"),
        )
    )
    type_errors = [
        F.when(
            is_suspect & F.col(f.name).isNull() & is_present(variant, document, f.name),
            F.lit(f"{f.name}: not a valid {f.dataType.simpleString()}"),
        )
        for f in fields
    ]
    steps.append(Projection.adding({"_type_errors": F.array_compact(F.array(*type_errors))}))
    error_kind = (
        F.when(is_suspect & (F.col("_v").isNull() | ~F.col("_is_object")), F.lit("parse"))
        .when(F.size("_type_errors") > 0, F.lit("schema"))
        .when(F.lit(drift == "strict") & (F.size("_unknown") > 0), F.lit("drift"))
    )
    unknown_message = F.concat(
        F.lit("unknown fields under the strict policy: "), F.concat_ws(", ", "_unknown")
    )
    error = F.when(F.size("_type_errors") > 0, F.concat_ws("; ", "_type_errors")).when(
        F.size("_unknown") > 0, unknown_message
    )
    steps.append(
        Projection.adding(
            {"_error_kind": error_kind, "_error": F.when(error_kind != "parse", error)},
            drops=("_suspect",),
        )
    )
    return steps


# Spark's JSON reader as strict as the VARIANT parser where it can be: what it still
# accepts and the VARIANT parser would not (see ``suspect``) goes the VARIANT way.
READER_OPTIONS = {
    "mode": "PERMISSIVE",
    "columnNameOfCorruptRecord": "_corrupt",
    "allowSingleQuotes": "false",
    "allowNonNumericNumbers": "false",
}


def reader_schema(fields: list[StructField]) -> StructType:
    from pyspark.sql.types import StringType, StructField, StructType

    return StructType([*fields, StructField("_corrupt", StringType(), True)])


# A VARIANT value holds at most 16 MiB; a bigger document is the VARIANT path's to refuse.
VARIANT_MAX_BYTES = 16 * 2**20


def suspect(fields: list[StructField]) -> Column:
    """Whether the JSON reader's result may differ from the VARIANT path's: it failed or
    read the record only in part, the object repeats a key or has fields it does not
    declare, a string field holds an object or an array (the reader keeps those as JSON
    text, the VARIANT path refuses them), or the document is too big for a VARIANT.

    Where the reader is more lenient and nothing here catches it, the reader's reading
    stands: a key repeated inside a nested object (the last value wins), a decimal written
    as a string with thousands separators ("1,234.50")."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType

    keys = F.col("_keys")
    known = F.array(*[F.lit(f.name) for f in fields])
    conditions = [
        F.octet_length("_text") > VARIANT_MAX_BYTES,
        F.col("_read").isNull(),
        F.col("_read").getField("_corrupt").isNotNull(),
        keys.isNull(),
        F.size(keys) != F.size(F.array_distinct(keys)),
        F.size(F.array_except(keys, known)) > 0,
        *[
            F.substring(F.col("_read").getField(f.name), 1, 1).isin("{", "[")
            for f in fields
            if isinstance(f.dataType, StringType)
        ],
    ]
    result = F.lit(False)
    for condition in conditions:
        result = result | F.coalesce(condition, F.lit(True))
    return result


def top_level_keys(document: Document) -> Column:
    """The names of the document's fields (null if it is not a JSON object)."""
    from pyspark.sql import functions as F

    if document.path == "$":
        return F.json_object_keys(F.col("_text"))
    return F.json_object_keys(F.get_json_object(F.col("_text"), document.path))


def rescued_json(document: Document, fields: list[StructField]) -> Column:
    """The unknown fields as a JSON object (for the rescue policy), or null if none."""
    from pyspark.sql import functions as F

    entries = F.from_json(F.get_json_object(F.col("_text"), document.path), "MAP<STRING, STRING>")
    names = [f.name for f in fields]
    unknown = F.map_filter(entries, lambda k, _v: ~k.isin(names))
    return F.when(F.size(unknown) > 0, F.to_json(unknown))


def payload_error_message(payload: bytes | None) -> str:
    """Why ``payload`` is not a JSON object, in the parser's words (failed rows only).
    Never raises: a failure here would fail the batch, and every replay of it, for good."""
    try:
        text = None if payload is None else bytes(payload).decode("utf-8")
    except UnicodeDecodeError:
        text = None
    try:
        return json_error_message(text)
    except Exception as exc:
        return f"unreadable payload ({type(exc).__name__})"


def word_parse_errors(frame: DataFrame) -> DataFrame:
    """Fill ``_error`` of parse failures with the decoder's or the JSON parser's message."""
    from pyspark.sql import functions as F

    message = F.udf(lambda payload: payload_error_message(payload), "string")(F.col("payload"))
    if "_decode_error" in frame.columns:
        message = F.coalesce(F.col("_decode_error"), message)
    return frame.withColumn(
        "_error", F.when(F.col("_error_kind") == "parse", message).otherwise(F.col("_error"))
    )
