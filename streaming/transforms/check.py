"""Parse, type and validate raw rows: every record comes out with its typed columns, and
``_error_kind``/``_error``/``_rule`` set when it fails (null when it passes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from streaming.transforms.parse import parse_projections
from streaming.transforms.projection import Projection, apply_all
from streaming.transforms.rules import first_failure
from streaming.transforms.spec import TableSpec

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame
    from pyspark.sql.types import StructField

    from streaming.transforms.decoders import PayloadDecoder


# The built-in rule every table with an event time has: a producer clock far ahead, or an
# event dated 2099, would otherwise set the watermark and switch deduplication off.
EVENT_TIME_RULE = "event_time_not_in_future"


def check(
    raw: DataFrame,
    spec: TableSpec,
    fields: list[StructField],
    decoder: PayloadDecoder | None = None,
    reader: bool = True,
) -> DataFrame:
    """Raw rows with typed ``fields`` and the error columns; an Avro table's payloads are
    decoded to JSON text by its ``decoder`` first (``reader``: see ``parse``)."""
    return CheckPlan.of(spec, fields, decoder, reader).apply(raw)


@dataclass(frozen=True)
class CheckPlan:
    """``check``, and with ``slim`` the cache's trimming (``slim_projection``), built once
    for a job to apply to each batch while its table's fields stay the same."""

    decoder: PayloadDecoder | None
    projections: tuple[Projection, ...]

    @classmethod
    def of(
        cls,
        spec: TableSpec,
        fields: list[StructField],
        decoder: PayloadDecoder | None = None,
        reader: bool = True,
        slim: bool = False,
    ) -> CheckPlan:
        from pyspark.sql import functions as F

        text = F.col("_avro_text") if decoder is not None else None
        steps = parse_projections(fields, spec.document, spec.table.drift, text, reader)
        if spec.table.cdc:
            steps.append(change_columns(spec))
        rule_name, rule_message = first_failure(spec.table.rules)
        if spec.table.event_time and spec.table.event_time_skew:
            in_future = ~spec.not_in_future(F.col(spec.table.event_time), F.col("ingest_ts"))
            rule_name = F.when(in_future, F.lit(EVENT_TIME_RULE)).otherwise(rule_name)
            rule_message = F.when(in_future, future_message(spec)).otherwise(rule_message)
        failed_rule = F.col("_rule").isNotNull()
        steps.append(Projection.adding({"_rule": F.when(F.col("_error_kind").isNull(), rule_name)}))
        steps.append(
            Projection.adding(
                {
                    "_error_kind": F.coalesce("_error_kind", F.when(failed_rule, F.lit("rule"))),
                    "_error": F.coalesce("_error", F.when(failed_rule, rule_message)),
                }
            )
        )
        if slim:
            steps.append(slim_projection())
        return cls(decoder, tuple(steps))

    def apply(self, raw: DataFrame) -> DataFrame:
        if self.decoder is not None:
            raw = self.decoder.decode(raw)
        return apply_all(raw, self.projections)


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


def slim_projection() -> Projection:
    """What a batch keeps in its cache, the batch's biggest memory cost: the payload only of
    records bound for quarantine, the VARIANT only of records with fields to evolve into
    new columns, and no JSON text (parse failures are worded from their payload)."""
    from pyspark.sql import functions as F

    return Projection.adding(
        {
            "payload": F.when(F.col("_error_kind").isNotNull(), F.col("payload")),
            "_v": F.when(F.size("_unknown") > 0, F.col("_v")),
        },
        drops=("_text", "_avro_text"),
    )


def change_columns(spec: TableSpec) -> Projection:
    """CDC columns of a DynamoDB change: operation, sequence number, and the key of a
    remove (whose new image is empty) taken from the keys."""
    from pyspark.sql import functions as F

    operation = F.try_variant_get(F.col("_v"), "$.event_name", "string")
    columns = {
        "_op": F.when(operation == "INSERT", "insert")
        .when(operation == "MODIFY", "modify")
        .when(operation == "REMOVE", "remove"),
        "_sequence_number": F.try_variant_get(F.col("_v"), "$.sequence_number", "string"),
    }
    key = spec.table.event_id
    if key:
        from_keys = F.coalesce(
            *[
                F.try_variant_get(F.col("_v"), f"$.keys.{key}.{kind}", "string")
                for kind in ("S", "N")
            ]
        )
        columns[key] = F.coalesce(F.col(key), from_keys)
    if spec.table.event_time:
        created = F.try_variant_get(F.col("_v"), "$.approximate_creation_time", "timestamp")
        columns[spec.table.event_time] = F.coalesce(F.col(spec.table.event_time), created)
    return Projection.adding(columns)
