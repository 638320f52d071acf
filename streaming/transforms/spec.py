"""What processing one table means: its declared fields and its dedup and time columns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from streaming.transforms.parse import NEW_IMAGE, PLAIN, Document
from streamlake.config.pipeline import Table, interval_seconds
from streamlake.lake.tables import PROCESSED_COORDINATES

if TYPE_CHECKING:
    from pyspark.sql import Column, SparkSession
    from pyspark.sql.types import StructField


@dataclass(frozen=True)
class TableSpec:
    name: str
    table: Table
    fields: tuple[StructField, ...]

    @classmethod
    def of(cls, spark: SparkSession, name: str, table: Table) -> TableSpec:
        from pyspark.sql.types import StructType

        schema = spark.createDataFrame([], table.schema_ddl).schema
        assert isinstance(schema, StructType)
        return cls(name, table, tuple(schema.fields))

    @property
    def document(self) -> Document:
        return NEW_IMAGE if self.table.cdc else PLAIN

    @property
    def dedup_keys(self) -> tuple[str, ...]:
        """What makes two records the same event."""
        if self.table.cdc:
            # A change stream repeats keys by design: each change is its own event.
            return ("_sequence_number",)
        if self.table.event_id:
            return (self.table.event_id,)
        # No event id: only the same source record read twice is a duplicate.
        return PROCESSED_COORDINATES

    def not_in_future(self, time: Column, reference: Column | None = None) -> Column:
        """``time`` is at most the table's allowed skew after ``reference`` (default: now);
        always true when the table allows any skew."""
        from pyspark.sql import functions as F

        if self.table.event_time_skew is None:
            return F.lit(True)
        skew_us = int(interval_seconds(self.table.event_time_skew) * 1_000_000)
        limit = F.unix_micros(reference if reference is not None else F.current_timestamp())
        return F.unix_micros(time) <= limit + F.lit(skew_us)

    def time_column(self) -> Column:
        """A processed row's event time: the declared one, else its ingest time."""
        from pyspark.sql import functions as F

        return F.coalesce(F.col(self.table.event_time or "_ingest_ts"), F.col("_ingest_ts"))
