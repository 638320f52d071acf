"""What one pass over a checked batch learns, before anything is written: records in,
failures by kind, and what deduplication needs. One Spark job instead of one per count."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from streaming.transforms.dedup import key_hash
from streaming.transforms.shape import processed_rows
from streaming.transforms.spec import TableSpec
from streamlake.lake.tables import ERROR_KINDS, EVENT_TIME_MISSING

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
    # Passed records without their declared event time (processed uses the ingest time).
    untimed: int
    # The newest and oldest event time among passed records, in microseconds.
    newest_us: int | None
    oldest_us: int | None
    # The hash of each passed record's dedup key (records with a null key left out): 8
    # bytes a record in the driver, beside the batch's cache of 1 KB or so a record.
    key_hashes: list[int]


def summarize(checked: DataFrame, spec: TableSpec, fields: list[StructField]) -> BatchSummary:
    """Counts of ``checked`` (see ``check``) in one aggregation."""
    from pyspark.sql import functions as F

    rows = processed_rows(checked, spec, fields, keep=("_error_kind", "_unknown"))
    ok = F.col("_error_kind").isNull()
    values = rows.agg(
        F.count(F.lit(1)),
        F.count_if(ok),
        F.count_if(ok & (F.size("_unknown") > 0)),
        F.count_if(ok & F.col(EVENT_TIME_MISSING)),
        F.max(F.when(ok, F.unix_micros(spec.time_column()))),
        F.min(F.when(ok, F.unix_micros(spec.time_column()))),
        F.collect_list(F.when(ok, key_hash(spec.dedup_keys))),
        *[F.count_if(F.col("_error_kind") == kind) for kind in ERROR_KINDS],
    ).first()
    assert values is not None
    by_kind = {kind: int(n) for kind, n in zip(ERROR_KINDS, values[7:], strict=True) if n}
    return BatchSummary(
        rows_in=int(values[0]),
        quarantined=by_kind,
        passed=int(values[1]),
        with_unknown_fields=int(values[2]),
        untimed=int(values[3]),
        newest_us=None if values[4] is None else int(values[4]),
        oldest_us=None if values[5] is None else int(values[5]),
        key_hashes=[int(h) for h in values[6]],
    )
