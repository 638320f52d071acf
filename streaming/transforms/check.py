"""Parse, type and validate raw rows: every record comes out with its typed columns, and
``_error_kind``/``_error``/``_rule`` set when it fails (null when it passes)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from streaming.transforms.parse import parse
from streaming.transforms.rules import first_failure
from streaming.transforms.spec import TableSpec

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame
    from pyspark.sql.types import StructField

    from streaming.transforms.avro import AvroDecoder


# The built-in rule every table with an event time has: a producer clock far ahead, or an
# event dated 2099, would otherwise set the watermark and switch deduplication off.
EVENT_TIME_RULE = "event_time_not_in_future"


def check(
    raw: DataFrame,
    spec: TableSpec,
    fields: list[StructField],
    decoder: AvroDecoder | None = None,
    reader: bool = True,
) -> DataFrame:
    """Raw rows with typed ``fields`` and the error columns; an Avro table's payloads are
    decoded to JSON text by its ``decoder`` first (``reader``: see ``parse``)."""
    from pyspark.sql import functions as F

    text = None
    if decoder is not None:
        raw, text = decoder.decode(raw), F.col("_avro_text")
    parsed = parse(raw, fields, spec.document, spec.table.drift, text, reader)
    if spec.table.cdc:
        parsed = with_change_columns(parsed, spec)
    rule_name, rule_message = first_failure(spec.table.rules)
    if spec.table.event_time and spec.table.event_time_skew:
        in_future = ~spec.not_in_future(F.col(spec.table.event_time), F.col("ingest_ts"))
        rule_name = F.when(in_future, F.lit(EVENT_TIME_RULE)).otherwise(rule_name)
        rule_message = F.when(in_future, future_message(spec)).otherwise(rule_message)
    return (
        parsed.withColumn("_rule", F.when(F.col("_error_kind").isNull(), rule_name))
        .withColumn(
            "_error_kind",
            F.coalesce("_error_kind", F.when(F.col("_rule").isNotNull(), F.lit("rule"))),
        )
        .withColumn(
            "_error", F.coalesce("_error", F.when(F.col("_rule").isNotNull(), rule_message))
        )
    )


def future_message(spec: TableSpec) -> Column:
    from pyspark.sql import functions as F

    assert spec.table.event_time is not None
    return F.concat(
        F.lit(f"rule {EVENT_TIME_RULE} failed: {spec.table.event_time} "),
        F.col(spec.table.event_time).cast("string"),
        F.lit(f" is more than {spec.table.event_time_skew} after the ingest time "),
        F.col("ingest_ts").cast("string"),
    )


def passed(checked: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    return checked.where(F.col("_error_kind").isNull())


def failed(checked: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    return checked.where(F.col("_error_kind").isNotNull())


def quarantine_counts(checked: DataFrame) -> dict[str, int]:
    """Records bound for quarantine, by error kind."""
    bad = failed(checked).groupBy("_error_kind").count()
    return {row["_error_kind"]: int(row["count"]) for row in bad.collect()}


def slim(checked: DataFrame) -> DataFrame:
    """What a batch keeps in its cache, the batch's biggest memory cost: the payload only of
    records bound for quarantine, the VARIANT only of records with fields to evolve into
    new columns, and no JSON text (parse failures are worded from their payload)."""
    from pyspark.sql import functions as F

    return checked.select(
        *[c for c in checked.columns if c not in ("_text", "_avro_text", "payload", "_v")],
        F.when(F.col("_error_kind").isNotNull(), F.col("payload")).alias("payload"),
        F.when(F.size("_unknown") > 0, F.col("_v")).alias("_v"),
    )


def with_change_columns(parsed: DataFrame, spec: TableSpec) -> DataFrame:
    """CDC columns of a DynamoDB change: operation, sequence number, and the key of a
    remove (whose new image is empty) taken from the keys."""
    from pyspark.sql import functions as F

    operation = F.try_variant_get(F.col("_v"), "$.event_name", "string")
    frame = parsed.withColumn(
        "_op",
        F.when(operation == "INSERT", "insert")
        .when(operation == "MODIFY", "modify")
        .when(operation == "REMOVE", "remove"),
    ).withColumn("_sequence_number", F.try_variant_get(F.col("_v"), "$.sequence_number", "string"))
    key = spec.table.event_id
    if key:
        from_keys = F.coalesce(
            *[
                F.try_variant_get(F.col("_v"), f"$.keys.{key}.{kind}", "string")
                for kind in ("S", "N")
            ]
        )
        frame = frame.withColumn(key, F.coalesce(F.col(key), from_keys))
    if spec.table.event_time:
        created = F.try_variant_get(F.col("_v"), "$.approximate_creation_time", "timestamp")
        frame = frame.withColumn(
            spec.table.event_time, F.coalesce(F.col(spec.table.event_time), created)
        )
    return frame
