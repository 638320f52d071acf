"""A job's checkpoint is checked against the transactions of the table it writes before the
query starts: every way the two can disagree stops the job with the recovery choices, and
each recovery moves the checkpoint aside. Checkpoints are written in Spark's file format
and tables with delta-rs (the same txn and userMetadata a job's commits carry)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import CommitProperties, Transaction, write_deltalake

from streaming.checkpoint_guard import (
    JobLedger,
    Recovery,
    StartAt,
    delta_starting_version,
    guard,
)
from streamlake.config import load_config
from streamlake.config.settings import Settings
from streamlake.errors import CheckpointError, UsageError
from streamlake.lake.checkpoint import OWNER_FILE, CheckpointFiles
from tests.conftest import CONFIGS
from tests.support import with_lake

JOB = "ingest-events"
QUERY = "11111111-2222-3333-4444-555555555555"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return with_lake(load_config("local", CONFIGS, environ={}).settings, tmp_path)


def offset_of(batch: int) -> str:
    return json.dumps({"events": {"0": 100 * (batch + 1)}})


def write_checkpoint(
    root: Path, offsets: range, commits: range, query: str | None = QUERY
) -> CheckpointFiles:
    root.mkdir(parents=True, exist_ok=True)
    if query is not None:
        (root / "metadata").write_text(json.dumps({"id": query}) + "\n")
    for log, batches in (("offsets", offsets), ("commits", commits)):
        (root / log).mkdir(exist_ok=True)
        for batch in batches:
            body = offset_of(batch) if log == "offsets" else '{"nextBatchWatermarkMs":0}'
            (root / log / str(batch)).write_text(f'v1\n{{"batchWatermarkMs":0}}\n{body}')
    return CheckpointFiles(str(root))


def write_batches(table: Path, batches: range, query: str = QUERY) -> None:
    """Batches as the ingest job commits them: txn (job:query, batch) and tagged metadata."""
    app_id = f"{JOB}:{query}"
    for batch in batches:
        tag = {"txn": app_id, "version": batch, "source_offset": offset_of(batch)}
        properties = CommitProperties(
            custom_metadata={"userMetadata": json.dumps(tag)},
            app_transactions=[Transaction(app_id, batch)],
        )
        rows = pa.table({"n": [batch]})
        write_deltalake(str(table), rows, mode="append", commit_properties=properties)


def ledger(settings: Settings) -> JobLedger:
    return JobLedger(JOB, "raw.events", settings.lake.table_path("raw", "events"))


def paths(settings: Settings) -> tuple[Path, Path]:
    return Path(settings.lake.checkpoint_path(JOB)), Path(settings.lake.table_path("raw", "events"))


def refused(settings: Settings, files: CheckpointFiles) -> str:
    with pytest.raises(CheckpointError) as raised:
        guard(ledger(settings), files, settings)
    message = str(raised.value)
    assert "--recover from-table" in message and "--recover fresh" in message
    assert raised.value.job == JOB and raised.value.table == "raw.events"
    return message


def test_a_checkpoint_that_agrees_is_marked_and_goes_on(settings: Settings) -> None:
    checkpoint, table = paths(settings)
    files = write_checkpoint(checkpoint, range(3), range(3))
    write_batches(table, range(3))

    assert guard(ledger(settings), files, settings) is None
    assert json.loads((checkpoint / OWNER_FILE).read_text()) == {"job": JOB}
    assert guard(ledger(settings), files, settings) is None


def test_a_crash_between_the_delta_commit_and_the_commit_log_goes_on(settings: Settings) -> None:
    checkpoint, table = paths(settings)
    files = write_checkpoint(checkpoint, range(4), range(3))
    write_batches(table, range(3))
    assert guard(ledger(settings), files, settings) is None  # batch 3 not written: runs
    write_batches(table, range(3, 4))
    assert guard(ledger(settings), files, settings) is None  # written: the replay skips it


def test_a_new_job_with_no_table_goes_on(settings: Settings) -> None:
    checkpoint, _table = paths(settings)
    assert guard(ledger(settings), CheckpointFiles(str(checkpoint)), settings) is None


def test_lost_metadata_stops(settings: Settings) -> None:
    checkpoint, table = paths(settings)
    files = write_checkpoint(checkpoint, range(3), range(3), query=None)
    write_batches(table, range(3))
    assert "lost its metadata" in refused(settings, files)


def test_metadata_of_another_query_stops(settings: Settings) -> None:
    checkpoint, table = paths(settings)
    files = write_checkpoint(checkpoint, range(3), range(3), query="another-query")
    write_batches(table, range(3))
    message = refused(settings, files)
    assert f"written by query {QUERY}" in message and "another-query" in message


def test_a_checkpoint_older_than_the_table_stops(settings: Settings) -> None:
    checkpoint, table = paths(settings)
    files = write_checkpoint(checkpoint, range(2), range(2))
    write_batches(table, range(4))
    assert "holds batch 3 but the checkpoint's offset log ends at batch 1" in refused(
        settings, files
    )


def test_a_deleted_table_stops(settings: Settings) -> None:
    checkpoint, _table = paths(settings)
    files = write_checkpoint(checkpoint, range(3), range(3))
    assert "holds none of the 3 batches" in refused(settings, files)


def test_a_table_missing_committed_batches_stops(settings: Settings) -> None:
    checkpoint, table = paths(settings)
    files = write_checkpoint(checkpoint, range(5), range(5))
    write_batches(table, range(2))
    assert "holds batches only up to 1" in refused(settings, files)


def test_a_truncated_offset_file_stops(settings: Settings) -> None:
    checkpoint, table = paths(settings)
    files = write_checkpoint(checkpoint, range(3), range(2))
    (checkpoint / "offsets" / "2").write_text("")
    write_batches(table, range(2))
    assert "offsets/2: empty or cut short" in refused(settings, files)


def test_deleted_commit_files_stop(settings: Settings) -> None:
    checkpoint, table = paths(settings)
    files = write_checkpoint(checkpoint, range(4), range(2))
    write_batches(table, range(2))
    assert "offset log ends at batch 3 but the commit log at batch 1" in refused(settings, files)


def test_a_checkpoint_of_another_job_stops(settings: Settings) -> None:
    checkpoint, table = paths(settings)
    files = write_checkpoint(checkpoint, range(2), range(2))
    files.write_marker({"job": "ingest-orders"})
    write_batches(table, range(2))
    assert "belongs to job ingest-orders" in refused(settings, files)


def test_a_missing_checkpoint_of_a_job_that_wrote_the_table_stops(settings: Settings) -> None:
    checkpoint, table = paths(settings)
    write_batches(table, range(2))
    message = refused(settings, CheckpointFiles(str(checkpoint)))
    assert "empty or missing" in message and "up to batch 1" in message


def test_recover_from_table_starts_after_the_last_recorded_batch(settings: Settings) -> None:
    checkpoint, table = paths(settings)
    files = write_checkpoint(checkpoint, range(3), range(3), query=None)
    write_batches(table, range(3))

    start = guard(ledger(settings), files, settings, Recovery.FROM_TABLE)

    assert start == StartAt(offset_of(2))
    moved = [p for p in checkpoint.parent.iterdir() if p.name.startswith(f"{JOB}.replaced-")]
    assert len(moved) == 1 and (moved[0] / "offsets" / "2").is_file()
    assert sorted(p.name for p in checkpoint.iterdir()) == [OWNER_FILE]
    # Killed before the new query's first commit: the next start keeps the same start.
    fresh = CheckpointFiles(str(checkpoint))
    assert guard(ledger(settings), fresh, settings) == StartAt(offset_of(2))
    write_checkpoint(checkpoint, range(1), range(0), query="the-new-query")
    assert guard(ledger(settings), fresh, settings) == StartAt(offset_of(2))
    write_batches(table, range(1), query="the-new-query")
    write_checkpoint(checkpoint, range(1), range(1), query="the-new-query")
    assert guard(ledger(settings), fresh, settings) is None


def test_recover_fresh_starts_at_the_configured_position(settings: Settings) -> None:
    checkpoint, table = paths(settings)
    files = write_checkpoint(checkpoint, range(1), range(1))
    write_batches(table, range(3))
    assert guard(ledger(settings), files, settings, Recovery.FRESH) is None
    assert not (checkpoint / "offsets").exists()
    assert guard(ledger(settings), CheckpointFiles(str(checkpoint)), settings) is None


def test_recover_refuses_a_checkpoint_that_agrees(settings: Settings) -> None:
    checkpoint, table = paths(settings)
    files = write_checkpoint(checkpoint, range(2), range(2))
    write_batches(table, range(2))
    with pytest.raises(UsageError, match="nothing to recover"):
        guard(ledger(settings), files, settings, Recovery.FRESH)
    assert (checkpoint / "offsets" / "1").is_file()


def test_a_delta_source_resumes_only_at_a_version_boundary() -> None:
    def offset(version: int, index: int, starting: bool = False) -> str:
        return json.dumps(
            {"reservoirVersion": version, "index": index, "isStartingVersion": starting}
        )

    assert delta_starting_version(offset(7, -1)) == 7
    with pytest.raises(UsageError, match="inside raw version 7"):
        delta_starting_version(offset(7, 3))
    with pytest.raises(UsageError, match="initial snapshot"):
        delta_starting_version(offset(7, -1, starting=True))


def test_a_batch_keeps_the_timestamp_spark_planned_it_with(tmp_path: Path) -> None:
    """The ingest time a batch is stamped with, the same when Spark replays it."""
    files = write_checkpoint(tmp_path / "cp", range(2), range(1))
    (tmp_path / "cp" / "offsets" / "1").write_text(
        'v1\n{"batchWatermarkMs":0,"batchTimestampMs":1764201600123}\n' + offset_of(1)
    )
    assert files.batch_timestamp_ms(1) == 1764201600123
    assert files.batch_timestamp_ms(0) is None  # the log entry does not say
    assert files.batch_timestamp_ms(7) is None  # no such batch
