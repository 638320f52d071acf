"""What one pass over a checked batch learns, before anything is written: records in,
failures by kind, and what deduplication needs. One Spark job instead of one per count."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from streaming.transforms.dedup import any_null
from streaming.transforms.shape import processed_rows
from streaming.transforms.spec import TableSpec
from streamlake.lake.tables import ERROR_KINDS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.types import StructField


@dataclass(frozen=True)
class BatchSummary:
    rows_in: int
    quarantined: dict[str, int]
    passed: int
    # Records that passed with fields the table does not declare (evolve policy).
    with_unknown_fields: int
    # Passed records with a dedup key, and how many distinct keys they carry.
    keyed: int
    distinct_keys: int
    newest: Any

    @property
    def repeats_keys(self) -> bool:
        return self.keyed != self.distinct_keys


def summarize(checked: DataFrame, spec: TableSpec, fields: list[StructField]) -> BatchSummary:
    """Counts of ``checked`` (see ``check``) in one aggregation."""
    from pyspark.sql import functions as F

    rows = processed_rows(checked, spec, fields, keep=("_error_kind", "_unknown"))
    ok = F.col("_error_kind").isNull()
    keys = spec.dedup_keys
    keyed = F.when(ok & ~any_null(keys), F.struct(*keys))
    values = rows.agg(
        F.count(F.lit(1)),
        F.count_if(ok),
        F.count_if(ok & (F.size("_unknown") > 0)),
        F.count(keyed),
        F.count_distinct(keyed),
        F.max(F.when(ok, spec.time_column())),
        *[F.count_if(F.col("_error_kind") == kind) for kind in ERROR_KINDS],
    ).first()
    assert values is not None
    by_kind = {kind: int(n) for kind, n in zip(ERROR_KINDS, values[6:], strict=True) if n}
    return BatchSummary(
        rows_in=int(values[0]),
        quarantined=by_kind,
        passed=int(values[1]),
        with_unknown_fields=int(values[2]),
        keyed=int(values[3]),
        distinct_keys=int(values[4]),
        newest=values[5],
    )
