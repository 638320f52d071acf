"""How far each consumer of a table has read it: for a curated table the newest version of
each input it took in (``_meta/input_versions``), for an export what it has delivered
(``_meta/export_positions``).

A consumer records its versions only after its own write has committed. A crash between
the two makes the next run read the same changes again, so what a consumer writes from
them must be idempotent (a MERGE that compares before it changes anything is)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from streamlake.config.settings import Settings
from streamlake.lake.delta_rs import delta_rs_location, read_rows
from streamlake.lake.spark_delta import ensure_table
from streamlake.lake.tables import INPUT_VERSIONS

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@dataclass(frozen=True)
class InputVersion:
    """A version of one input table, known by its Delta table id."""

    version: int
    table_id: str


def read_input_versions(path: str, consumer: str, settings: Settings) -> dict[str, InputVersion]:
    """Input -> what ``consumer`` last recorded for it (empty: it never ran). Read through
    delta-rs: a small table a Spark read would take a second to open."""
    table = read_rows(path, settings, ["consumer", "input", "version", "table_id", "recorded_at"])
    if table is None:
        return {}
    newest: dict[str, tuple[Any, InputVersion]] = {}
    for row in table.to_pylist():
        if row["consumer"] != consumer:
            continue
        seen = newest.get(row["input"])
        if seen is None or row["recorded_at"] > seen[0]:
            version = InputVersion(int(row["version"]), str(row["table_id"]))
            newest[row["input"]] = (row["recorded_at"], version)
    return {name: version for name, (_, version) in newest.items()}


def record_input_versions(
    spark: SparkSession, path: str, consumer: str, versions: dict[str, InputVersion]
) -> None:
    """Append ``consumer``'s input versions (one commit)."""
    from pyspark.sql import functions as F

    if not versions:
        return
    ensure_table(spark, path, INPUT_VERSIONS)
    rows = [(consumer, name, v.version, v.table_id) for name, v in sorted(versions.items())]
    frame = spark.createDataFrame(
        rows, "consumer STRING, input STRING, version BIGINT, table_id STRING"
    )
    frame.withColumn("recorded_at", F.current_timestamp()).write.format("delta").mode(
        "append"
    ).save(path)


@dataclass(frozen=True)
class ExportPosition:
    """How far an export has delivered one table (known by its Delta ``table_id``): every
    change up to version ``delivered`` (-1: none yet), and the open window of versions
    ``delivered + 1`` to ``window_to`` being delivered under the export's ``definition``
    (a digest of what it selects), of whose records those numbered in ``acked`` (their
    place in the window's order) Firehose has acknowledged. ``sequence`` grows by one with
    each position recorded: the newest is the one with the highest, whatever the clocks."""

    table_id: str
    delivered: int = -1
    window_to: int | None = None
    acked: frozenset[int] = frozenset()
    definition: str = ""
    sequence: int = 0

    def opened(self, window_to: int, definition: str) -> ExportPosition:
        return replace(
            self,
            window_to=window_to,
            acked=frozenset(),
            definition=definition,
            sequence=self.sequence + 1,
        )

    def with_acked(self, ordinals: Iterable[int]) -> ExportPosition:
        return replace(self, acked=self.acked | set(ordinals), sequence=self.sequence + 1)

    def closed(self) -> ExportPosition:
        assert self.window_to is not None
        return replace(
            self,
            delivered=self.window_to,
            window_to=None,
            acked=frozenset(),
            sequence=self.sequence + 1,
        )

    def restarted(self, table_id: str) -> ExportPosition:
        """From the start of a table created anew (its versions number from 0 again)."""
        return ExportPosition(table_id, sequence=self.sequence + 1)


def read_export_position(path: str, export: str, settings: Settings) -> ExportPosition | None:
    """The newest position ``export`` recorded (None: it never ran). Read with delta-rs."""
    table = read_rows(path, settings)
    if table is None:
        return None
    rows = [r for r in table.to_pylist() if r["export"] == export]
    if not rows:
        return None
    newest = max(rows, key=lambda r: r["sequence"])
    return ExportPosition(
        str(newest["table_id"]),
        int(newest["delivered"]),
        None if newest["window_to"] is None else int(newest["window_to"]),
        frozenset(expand_ranges(json.loads(newest["acked"]))),
        str(newest.get("definition") or ""),
        int(newest["sequence"]),
    )


def record_export_position(
    path: str, export: str, position: ExportPosition, settings: Settings
) -> None:
    """Append ``export``'s position (one commit, through delta-rs: the export runs without a
    JVM)."""
    import pyarrow as pa
    from deltalake import write_deltalake

    uri, options = delta_rs_location(path, settings)
    row = pa.table(
        {
            "export": [export],
            "table_id": [position.table_id],
            "delivered": pa.array([position.delivered], pa.int64()),
            "window_to": pa.array([position.window_to], pa.int64()),
            "acked": [json.dumps(compact_ranges(position.acked))],
            "definition": [position.definition],
            "sequence": pa.array([position.sequence], pa.int64()),
            "recorded_at": pa.array([datetime.now(UTC)], pa.timestamp("us", tz="UTC")),
        }
    )
    # merge: a table an earlier version wrote without the definition column gains it.
    write_deltalake(uri, row, mode="append", schema_mode="merge", storage_options=options or None)


def compact_ranges(ordinals: Iterable[int]) -> list[list[int]]:
    """Sorted ordinals as [first, last] runs: a window's acknowledged records stay small."""
    runs: list[list[int]] = []
    for ordinal in sorted(ordinals):
        if runs and runs[-1][1] == ordinal - 1:
            runs[-1][1] = ordinal
        else:
            runs.append([ordinal, ordinal])
    return runs


def expand_ranges(runs: list[list[int]]) -> Iterator[int]:
    for first, last in runs:
        yield from range(first, last + 1)
