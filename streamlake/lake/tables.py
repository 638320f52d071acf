"""The lake's table contracts: the columns of every raw, quarantine, processed and `_meta`
table, in one place. A table lives at ``<lake_root>/<layer>/<table>`` and the pipeline's
own state at ``<lake_root>/_meta/<name>`` (see ``LakeSettings``)."""

from __future__ import annotations

from dataclasses import dataclass

# The layers a streaming table's jobs write; the curated layer is written by batch jobs.
STREAMING_LAYERS = ("raw", "processed", "quarantine")
CURATED = "curated"
LAYERS = (*STREAMING_LAYERS, CURATED)


@dataclass(frozen=True)
class Contract:
    """A table's columns as (name, Spark SQL type), and its partition columns."""

    columns: tuple[tuple[str, str], ...]
    partition_by: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    @property
    def ddl(self) -> str:
        return ", ".join(f"{name} {kind}" for name, kind in self.columns)


# Where a record came from; (source, stream, partition, position) is unique in a raw table.
SOURCE_COORDINATES = ("source", "stream", "partition", "position")

# What a source stream yields; the ingest job adds ingest_ts and ingest_date.
SOURCE_RECORD = Contract(
    (
        ("payload", "BINARY"),
        ("source", "STRING"),
        ("stream", "STRING"),
        ("partition", "STRING"),
        ("position", "STRING"),
        ("key", "STRING"),
        ("event_ts", "TIMESTAMP"),
    )
)

RAW = Contract(
    (*SOURCE_RECORD.columns, ("ingest_ts", "TIMESTAMP"), ("ingest_date", "DATE")),
    partition_by=("ingest_date",),
)

# Why a record is in quarantine: its ``error_kind``.
ERROR_KINDS = ("parse", "schema", "rule", "drift")

QUARANTINE = Contract(
    (
        ("payload", "BINARY"),
        ("error_kind", "STRING"),
        ("error", "STRING"),
        ("rule", "STRING"),
        *[(name, "STRING") for name in SOURCE_COORDINATES],
        ("key", "STRING"),
        ("quarantined_at", "TIMESTAMP"),
    )
)

# A processed table is the declared columns plus these.
PROCESSED_COORDINATES = ("_source", "_stream", "_partition", "_position")
PROCESSED_LINEAGE = (*PROCESSED_COORDINATES, "_ingest_ts")
PROCESSED_PARTITION = "event_date"
# True where the table declares an event time and the record has none (its event_date and
# watermark then come from its ingest time).
EVENT_TIME_MISSING = "_event_time_missing"
# _rescued under the rescue drift policy; _op and _sequence_number in CDC tables.
PROCESSED_SYSTEM = (
    *PROCESSED_LINEAGE,
    "_late",
    EVENT_TIME_MISSING,
    "_rescued",
    "_op",
    "_sequence_number",
    PROCESSED_PARTITION,
)

# What a curated current-state table holds besides its input's declared columns, and what
# its ``<name>_history`` table adds to that (each version's validity), as
# batch/curated_state.py writes them.
CURRENT_STATE_SYSTEM = ("_sequence_number",)
HISTORY_COLUMNS = ("valid_from", "valid_to", "is_current")

BATCH_METRICS = Contract(
    (
        ("job", "STRING"),
        ("batch_id", "BIGINT"),
        ("rows_in", "BIGINT"),
        ("processed", "BIGINT"),
        ("quarantined", "BIGINT"),
        ("duplicates", "BIGINT"),
        ("late", "BIGINT"),
        ("no_event_time", "BIGINT"),
        ("quarantine_ratio", "DOUBLE"),
        ("alert", "BOOLEAN"),
        ("quarantined_by_kind", "MAP<STRING, BIGINT>"),
        ("recorded_at", "TIMESTAMP"),
    )
)


# The newest version of each input a consumer (a curated table, an export) has taken in:
# the consumer's next run reads the input's changes after it. ``table_id`` is the input's
# Delta table id: a table deleted and created anew starts its versions again. Append-only;
# the newest row per (consumer, input) counts.
INPUT_VERSIONS = Contract(
    (
        ("consumer", "STRING"),
        ("input", "STRING"),
        ("version", "BIGINT"),
        ("table_id", "STRING"),
        ("recorded_at", "TIMESTAMP"),
    )
)

# Keys a current-state table deleted, with the sequence number of the delete: an older
# change of the key that arrives later must not bring it back. ``key`` is the key columns
# as JSON.
CDC_TOMBSTONES = Contract(
    (
        ("table", "STRING"),
        ("key", "STRING"),
        ("sequence_number", "STRING"),
        ("deleted_at", "TIMESTAMP"),
    ),
    partition_by=("table",),
)

# One row per quality rule per run of a quality job (append-only). ``status`` is passed,
# failed or skipped (the table, or the rule's reference, not written yet); ``passed`` is
# null when skipped. ``value`` is what was measured, in ``measure``: ``ratio`` (0..1, for
# completeness, uniqueness and referential rules, against ``threshold_min``), ``rows``
# (row count, between ``threshold_min`` and ``threshold_max``) or ``age_seconds``
# (freshness, at most ``threshold_max``). ``failing_rows``: rows missing the value, rows
# repeating a key, orphan rows, or rows short of (beyond) the row count bounds.
# ``table_version`` and ``reference_version`` are the Delta versions the rule read.
QUALITY_RESULTS = Contract(
    (
        ("run_id", "STRING"),
        ("job", "STRING"),
        ("table_name", "STRING"),
        ("rule", "STRING"),
        ("kind", "STRING"),
        ("blocking", "BOOLEAN"),
        ("status", "STRING"),
        ("passed", "BOOLEAN"),
        ("measure", "STRING"),
        ("value", "DOUBLE"),
        ("threshold_min", "DOUBLE"),
        ("threshold_max", "DOUBLE"),
        ("failing_rows", "BIGINT"),
        ("rows_checked", "BIGINT"),
        ("table_version", "BIGINT"),
        ("reference", "STRING"),
        ("reference_version", "BIGINT"),
        ("detail", "STRING"),
        ("checked_at", "TIMESTAMP"),
    )
)

# Where each export stands (append-only; the newest row per export counts): every change of
# its table up to version ``delivered`` is delivered; ``window_to``, when set, closes the
# window of versions being delivered, and ``acked`` lists (as JSON [first, last] runs) the
# places in that window's order of the records Firehose acknowledged, ``definition`` a digest
# of the export's selection the window was opened under. ``sequence`` grows by one per row
# of an export: its highest is the export's position. Written with delta-rs.
EXPORT_POSITIONS = Contract(
    (
        ("export", "STRING"),
        ("table_id", "STRING"),
        ("delivered", "BIGINT"),
        ("window_to", "BIGINT"),
        ("acked", "STRING"),
        ("definition", "STRING"),
        ("sequence", "BIGINT"),
        ("recorded_at", "TIMESTAMP"),
    )
)

# Records an export could not deliver and will not retry (over Firehose's 1,000 KiB record
# limit), whole, with the reason: counted as delivered, kept here instead of dropped.
EXPORT_REJECTS = Contract(
    (
        ("export", "STRING"),
        ("table_name", "STRING"),
        ("export_id", "STRING"),
        ("reason", "STRING"),
        ("size_bytes", "BIGINT"),
        ("record", "STRING"),
        ("rejected_at", "TIMESTAMP"),
    )
)

# Heartbeats of the pipeline's jobs, one row per job every few seconds while it runs and one
# when it ends: ``state`` running, stopped or failed (``error`` says why); the counts are
# those since the job's previous row (``batches``, ``rows``), the rest the latest known
# (``rows_per_s`` and the source lag of its last batch). ``interval_s`` is how often the job
# beats: a running job silent for several intervals is lost. Written with delta-rs.
JOB_STATUS = Contract(
    (
        ("job", "STRING"),
        ("kind", "STRING"),
        ("run_id", "STRING"),
        ("host", "STRING"),
        ("pid", "BIGINT"),
        ("pid_started_at", "DOUBLE"),
        ("state", "STRING"),
        ("error", "STRING"),
        ("started_at", "TIMESTAMP"),
        ("beat_at", "TIMESTAMP"),
        ("interval_s", "DOUBLE"),
        ("last_batch_at", "TIMESTAMP"),
        ("batches", "BIGINT"),
        ("rows", "BIGINT"),
        ("rows_per_s", "DOUBLE"),
        ("source_lag", "BIGINT"),
        ("source_lag_s", "DOUBLE"),
        ("pending_versions", "BIGINT"),
    )
)

# The run log of workflows: one row when a run starts (``job`` empty) and when it ends, and
# one when each job's attempt starts and ends; the newest row of a (run, job, attempt)
# says how it stands. ``state``: a run's running, succeeded, failed, stopped (on request);
# a job's running, succeeded, failed, timeout, stopped, skipped (why, in ``error``).
# ``trigger`` is manual, schedule or arrival. Written with delta-rs.
WORKFLOW_RUNS = Contract(
    (
        ("run_id", "STRING"),
        ("workflow", "STRING"),
        ("trigger", "STRING"),
        ("job", "STRING"),
        ("attempt", "BIGINT"),
        ("state", "STRING"),
        ("error", "STRING"),
        ("started_at", "TIMESTAMP"),
        ("ended_at", "TIMESTAMP"),
        ("recorded_at", "TIMESTAMP"),
        ("host", "STRING"),
        ("pid", "BIGINT"),
        ("pid_started_at", "DOUBLE"),
    )
)

# The pipeline's own Delta tables under _meta, by name.
META_TABLES = {
    "batch_metrics": BATCH_METRICS,
    "input_versions": INPUT_VERSIONS,
    "cdc_tombstones": CDC_TOMBSTONES,
    "quality_results": QUALITY_RESULTS,
    "export_positions": EXPORT_POSITIONS,
    "export_rejects": EXPORT_REJECTS,
    "job_status": JOB_STATUS,
    "workflow_runs": WORKFLOW_RUNS,
}


def as_processed_coordinates() -> dict[str, str]:
    """Source coordinate column -> its lineage name in processed."""
    return dict(zip(SOURCE_COORDINATES, PROCESSED_COORDINATES, strict=True))
