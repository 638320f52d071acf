"""Checked rows as the rows the lake stores: processed (typed columns and lineage) and
quarantine (payload, reason, coordinates)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from streaming.transforms.check import failed
from streaming.transforms.drift import json_or_typed
from streaming.transforms.parse import word_parse_errors
from streaming.transforms.spec import TableSpec
from streamlake.lake.tables import (
    EVENT_TIME_MISSING,
    PROCESSED_LINEAGE,
    PROCESSED_PARTITION,
    QUARANTINE,
    SOURCE_COORDINATES,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.types import StructField


def processed_rows(
    good: DataFrame, spec: TableSpec, fields: list[StructField], keep: tuple[str, ...] = ()
) -> DataFrame:
    """Checked rows that passed, as processed columns (before dedup and ``_late``), with
    the checked columns ``keep`` carried along."""
    from pyspark.sql import functions as F

    declared = {f.name for f in spec.fields}
    columns = [
        F.col(f.name)
        if f.name in declared or f.name in good.columns
        else json_or_typed(f).alias(f.name)
        for f in fields
    ]
    lineage = zip((*SOURCE_COORDINATES, "ingest_ts"), PROCESSED_LINEAGE, strict=True)
    rows = good.select(
        *columns,
        *([F.col("_rescued")] if spec.table.drift == "rescue" else []),
        *([F.col("_op"), F.col("_sequence_number")] if spec.table.cdc else []),
        *[F.col(name).alias(alias) for name, alias in lineage],
        *keep,
    )
    event_time = spec.table.event_time
    missing = F.col(event_time).isNull() if event_time else F.lit(False)
    return rows.withColumn(EVENT_TIME_MISSING, missing).withColumn(
        PROCESSED_PARTITION, F.to_date(spec.time_column())
    )


def quarantine_rows(checked: DataFrame) -> DataFrame:
    """The failed records of ``checked`` as quarantine rows, parse failures worded in the
    JSON parser's own terms."""
    from pyspark.sql import functions as F

    bad = failed(checked)
    worded = word_parse_errors(bad.where(F.col("_error_kind") == "parse")).unionByName(
        bad.where(F.col("_error_kind") != "parse")
    )
    renamed = {"error_kind": "_error_kind", "error": "_error", "rule": "_rule"}
    stamped = worded.withColumn("quarantined_at", F.current_timestamp())
    return stamped.select(
        *[F.col(renamed.get(name, name)).alias(name) for name in QUARANTINE.names]
    )
