"""Files pushed to a landing place, as a Spark stream of raw records.

Spark's own file source (``binaryFile``) finds the files and keeps the list of those taken
in the checkpoint, so each file is taken by one batch, the same one on a replay. A Python
step splits each file into records (``reader``). Once the batch is committed to raw, its
files are moved to the archive (``archive_batch``); a file that cannot be read is moved to
the error place with its reason as it is found, and yields no record.

Delivery: exactly once per file name, with Delta's idempotent batch writes: a batch
replayed after a crash reads the same files (those already archived or rejected are
skipped, and their records were committed before they moved). A file dropped again under a
name already taken within Spark's ``maxFileAge`` (7 days) is not read again: a corrected
file needs a new name.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from connectors.files.landing import Landing, spark_location
from connectors.files.reader import ReadOptions, UnreadableFileError, file_records
from streamlake.config.ddl import columns
from streamlake.config.pipeline import FilesSource, Table
from streamlake.lake.checkpoint import CheckpointFiles

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

BINARY_FILES = "path STRING, modificationTime TIMESTAMP, length BIGINT, content BINARY"
# What the Python step returns per file: the name below the landing place (None for a file
# moved to the error place) and its records.
SPLIT = "struct<name: string, records: array<binary>>"


def read_options(source: FilesSource, table: Table) -> ReadOptions:
    declared = tuple(name for name, _ in columns(table.schema_ddl))
    return ReadOptions(source.format, source.delimiter, source.header, declared)


def read_files_stream(
    spark: SparkSession, source: FilesSource, table: Table, landing: Landing
) -> DataFrame:
    from pyspark.sql import functions as F

    files = (
        spark.readStream.format("binaryFile")
        .schema(BINARY_FILES)
        .option("maxFilesPerTrigger", source.max_files_per_trigger)
        .option("recursiveFileLookup", "true")
        # A replayed batch's files may have moved on since it first ran.
        .option("ignoreMissingFiles", "true")
        .load(spark_location(source.path))
    )
    # A plain Python UDF (rows pickled, no pandas): one call per file, which is the unit.
    splitter = FileSplitter(landing, read_options(source, table))
    # Not deterministic: it moves unreadable files, so Spark must call it once per file.
    split = F.udf(splitter, SPLIT, useArrow=False).asNondeterministic()
    parts = files.select(
        split("path", "content", "length").alias("file"), F.col("modificationTime")
    ).where(F.col("file.name").isNotNull())
    records = parts.select(
        F.concat(F.lit(landing.key_prefix()), F.col("file.name")).alias("partition"),
        F.posexplode("file.records").alias("index", "payload"),
        F.col("modificationTime").alias("event_ts"),
    )
    return records.select(
        "payload",
        F.lit("files").alias("source"),
        F.lit(source.path).alias("stream"),
        "partition",
        (F.col("index") + 1).cast("string").alias("position"),
        F.lit(None).cast("string").alias("key"),
        "event_ts",
    )


@dataclass(frozen=True)
class FileSplitter:
    """The UDF: a file's path, content and size in, its name and records out (a file that
    cannot be read is moved to the error place, and gives a None name)."""

    landing: Landing
    options: ReadOptions

    def __call__(self, path: str, content: bytes | None, length: int | None) -> tuple[Any, ...]:
        name = self.landing.name_of(path)
        try:
            return (name, file_records(name, content or b"", self.options))
        except UnreadableFileError as exc:
            self.landing.reject_file(name, str(exc), int(length or 0))
            return (None, [])


def batch_files(checkpoint: CheckpointFiles, batch_id: int) -> list[str]:
    """The paths of the files batch ``batch_id`` took, from Spark's file source log."""
    offset = json.loads(checkpoint.source_offset(batch_id))
    log_offset = int(offset["logOffset"])
    # Spark logs each path URI-encoded (a space as %20); the files themselves are not.
    return [unquote(entry["path"]) for entry in checkpoint.file_source_entries(log_offset)]


def archive_batch(checkpoint: CheckpointFiles, landing: Landing, batch_id: int) -> None:
    """Move the files of committed batch ``batch_id`` to the archive (those still in the
    landing place: a rejected file has moved already)."""
    moved = 0
    for path in batch_files(checkpoint, batch_id):
        moved += landing.archive_file(landing.name_of(path))
    if moved:
        log.info("batch %s: %d files moved to %s", batch_id, moved, landing.archive)
