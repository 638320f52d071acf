"""How far each consumer of a table (a curated table, an export) has read it: the newest
version of each input it took in, kept in ``_meta/input_versions``.

A consumer records its versions only after its own write has committed. A crash between
the two makes the next run read the same changes again, so what a consumer writes from
them must be idempotent (a MERGE that compares before it changes anything is)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from streamlake.config.settings import Settings
from streamlake.lake.delta_rs import read_rows
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
