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

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame
    from pyspark.sql.types import StructField

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
) -> DataFrame:
    """Add the typed columns and ``_error_kind``/``_error`` (null when the record parsed).

    ``text`` is the record as JSON text when it is not the payload itself (Avro decoded).
    Built as a few wide projections, not a chain of withColumn calls: a deep plan
    overflows the stack of Spark's stream execution threads. Each field's value is read
    from the VARIANT once; the type checks then look at the typed column."""
    from pyspark.sql import functions as F

    if text is None:
        payload = F.col("payload").cast("string")
        text = F.when(F.is_valid_utf8(payload), payload)
    decoded = raw.select("*", text.alias("_text")).withColumn("_v", F.try_parse_json("_text"))
    variant = F.col("_v")
    document_value = F.try_variant_get(variant, document.path, "variant")
    is_object = F.schema_of_variant(document_value).startswith("OBJECT")
    if document.typed_attributes:
        # A remove event has no new image; its fields come from the keys instead.
        removed = F.try_variant_get(variant, "$.event_name", "string").eqNullSafe("REMOVE")
        is_object = is_object | removed
    names = {f.name for f in fields}
    known = F.array(*[F.lit(f.name) for f in fields])
    typed = decoded.select(
        *[c for c in decoded.columns if c not in names],
        *[typed_value(variant, document, f).alias(f.name) for f in fields],
        F.coalesce(is_object, F.lit(False)).alias("_is_object"),
        F.coalesce(F.array_except(top_level_keys(document), known), F.array()).alias("_unknown"),
        (rescued_json(document, fields) if drift == "rescue" else F.lit(None).cast("string")).alias(
            "_rescued"
        ),
    )
    type_errors = [
        F.when(
            F.col(f.name).isNull() & is_present(variant, document, f.name),
            F.lit(f"{f.name}: not a valid {f.dataType.simpleString()}"),
        )
        for f in fields
    ]
    checked = typed.select("*", F.array_compact(F.array(*type_errors)).alias("_type_errors"))
    error_kind = (
        F.when(F.col("_v").isNull() | ~F.col("_is_object"), F.lit("parse"))
        .when(F.size("_type_errors") > 0, F.lit("schema"))
        .when(F.lit(drift == "strict") & (F.size("_unknown") > 0), F.lit("drift"))
    )
    unknown = F.concat(
        F.lit("unknown fields under the strict policy: "), F.concat_ws(", ", "_unknown")
    )
    error = F.when(F.size("_type_errors") > 0, F.concat_ws("; ", "_type_errors")).when(
        F.size("_unknown") > 0, unknown
    )
    return checked.select(
        "*", error_kind.alias("_error_kind"), F.when(error_kind != "parse", error).alias("_error")
    )


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
