"""Checks a job's checkpoint against the table it writes before the query starts.

Exactly-once rests on the checkpoint and the table agreeing: the table's Delta transactions
say which batches (of which query id) landed, the checkpoint's offset and commit logs say
which batches Spark will run next. A checkpoint that lost its ``metadata`` (a new query id,
so the last batch is written again), was restored from an older copy (its next batches are
versions the table already holds, so Delta skips them), was cut short, or belongs to another
job would duplicate or skip records without a word. The job stops instead, naming the two
ways on, which the operator picks with ``stream run --recover``:

- ``from-table``: a new checkpoint starting right after the last batch the table recorded
  (each batch's source offset travels in its commit's userMetadata);
- ``fresh``: a new checkpoint starting at the source's configured position.

Either moves the old checkpoint aside, never deletes it.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from connectors.s3 import s3_client_for
from streamlake.config.settings import Settings
from streamlake.errors import CheckpointError, UsageError
from streamlake.lake.checkpoint import CheckpointFileError, CheckpointFiles
from streamlake.lake.delta_rs import last_transaction_version, newest_tagged_commit

log = logging.getLogger(__name__)


class Recovery(StrEnum):
    FROM_TABLE = "from-table"
    FRESH = "fresh"


@dataclass(frozen=True)
class JobLedger:
    """The table whose Delta transactions record every batch of a job."""

    job: str
    table: str  # e.g. raw.orders, for messages
    path: str


@dataclass(frozen=True)
class StartAt:
    """Where a recovered job's new query starts: the source offset after the last batch
    the table recorded (a source offset JSON, or a Delta version for a Delta source)."""

    source_offset: str


def checkpoint_files(location: str, settings: Settings) -> CheckpointFiles:
    return CheckpointFiles(location, s3_client_for(location, settings))


def guard(
    ledger: JobLedger, files: CheckpointFiles, settings: Settings, recover: Recovery | None = None
) -> StartAt | None:
    """Stop with a CheckpointError if checkpoint and table disagree; with ``recover``, move
    the checkpoint aside. Returns where the query starts if not at the source's configured
    position: after a recovery from the table, until the new query's first commit."""
    problem = disagreement(ledger, files, settings)
    if recover is None:
        if problem is not None:
            raise mismatch(ledger, files, problem)
        return marked_start(ledger, files)
    if problem is None:
        raise UsageError(
            f"the checkpoint of {ledger.job} agrees with {ledger.table}: nothing to recover",
            "run the job without --recover",
        )
    start = resume_point(ledger, settings) if recover is Recovery.FROM_TABLE else None
    moved = files.move_aside(f"replaced-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
    log.warning(
        "job %s: %s; checkpoint moved to %s, starting %s",
        ledger.job,
        problem,
        moved,
        f"after the table's last batch at {start.source_offset}" if start else "afresh",
    )
    # Kept in the new checkpoint: a crash before the new query's first commit must not
    # lose the start, nor be taken for a lost checkpoint.
    files.write_marker(
        {
            "job": ledger.job,
            "recovered": recover.value,
            "start_offset": None if start is None else start.source_offset,
        }
    )
    return start


def marked_start(ledger: JobLedger, files: CheckpointFiles) -> StartAt | None:
    marker = files.marker()
    if marker is None:
        files.write_marker({"job": ledger.job})
        return None
    offset = marker.get("start_offset")
    # Until its first commit a source may be asked for its initial offset again.
    if isinstance(offset, str) and not files.batch_ids("commits"):
        return StartAt(offset)
    return None


def disagreement(ledger: JobLedger, files: CheckpointFiles, settings: Settings) -> str | None:
    """What is wrong with the checkpoint given the table, or None when they agree."""
    try:
        return _disagreement(ledger, files, settings)
    except CheckpointFileError as exc:
        return f"checkpoint file {exc}"


def _disagreement(ledger: JobLedger, files: CheckpointFiles, settings: Settings) -> str | None:
    marker = files.marker() or {}
    if marker.get("job", ledger.job) != ledger.job:
        return f"the checkpoint belongs to job {marker['job']}"
    if files.is_empty():
        newest = newest_job_commit(ledger, settings)
        if newest is not None and not marker.get("recovered"):
            return (
                f"the checkpoint is empty or missing, but {ledger.table} holds batches of this "
                f"job (up to batch {newest.get('version')}); a new query would read the "
                "source again from its configured start"
            )
        return None
    query_id = files.query_id()
    if query_id is None:
        return "the checkpoint has offset or commit logs but lost its metadata (query id)"
    offsets, commits = files.batch_ids("offsets"), files.batch_ids("commits")
    last_offset = offsets[-1] if offsets else -1
    last_commit = commits[-1] if commits else -1
    if last_offset >= 0:
        files.log_entry("offsets", last_offset)
    if last_commit >= 0:
        files.log_entry("commits", last_commit)
    if last_commit > last_offset or last_offset > last_commit + 1:
        return (
            f"the offset log ends at batch {last_offset} but the commit log at batch "
            f"{last_commit}: files of one of them are missing"
        )
    written = last_transaction_version(ledger.path, settings, f"{ledger.job}:{query_id}")
    if written is None:
        if last_commit < 0:
            return None  # the first batch never committed anywhere
        newest = newest_job_commit(ledger, settings)
        if newest is not None:
            return (
                f"{ledger.table} was written by query {str(newest.get('txn')).split(':', 1)[-1]} "
                f"of this job, not by the checkpoint's query {query_id}: the checkpoint's "
                "metadata was replaced or copied from elsewhere"
            )
        return (
            f"{ledger.table} holds none of the {last_commit + 1} batches the checkpoint "
            "committed: the table was deleted or replaced"
        )
    if written > last_offset:
        return (
            f"{ledger.table} holds batch {written} but the checkpoint's offset log ends at "
            f"batch {last_offset}: the checkpoint is older than the table (restored from a "
            "copy?) and its next batches would be skipped as already written"
        )
    if written < last_commit:
        return (
            f"the checkpoint committed batch {last_commit} but {ledger.table} holds batches "
            f"only up to {written}: the table lost batches (restored or rewritten?)"
        )
    return None


def newest_job_commit(ledger: JobLedger, settings: Settings) -> dict[str, Any] | None:
    """The table's newest commit written by any query of this job."""
    return newest_tagged_commit(ledger.path, settings, f"{ledger.job}:")


def resume_point(ledger: JobLedger, settings: Settings) -> StartAt:
    newest = newest_job_commit(ledger, settings)
    offset = None if newest is None else newest.get("source_offset")
    if not isinstance(offset, str):
        raise UsageError(
            f"{ledger.table} has no batch of {ledger.job} that recorded its source offset",
            "use --recover fresh to start at the source's configured position",
        )
    return StartAt(offset)


def mismatch(ledger: JobLedger, files: CheckpointFiles, problem: str) -> CheckpointError:
    return CheckpointError(
        f"checkpoint {files.location} disagrees with {ledger.table}: {problem}",
        (
            f"to go on, run `streamlake stream run {ledger.job} --recover from-table` to start "
            "right after the last batch the table recorded, or `--recover fresh` to start at "
            "the source's configured position (records may then be written again or "
            "skipped); either moves the checkpoint aside"
        ),
        job=ledger.job,
        checkpoint=files.location,
        table=ledger.table,
    )


def delta_starting_version(offset: str) -> int:
    """The raw version a Delta stream resumes at after a batch that ended at ``offset``."""
    data: dict[str, Any] = json.loads(offset)
    if data.get("isInitialSnapshot") or data.get("isStartingVersion"):
        raise UsageError(
            "the table's last batch ended inside the raw table's initial snapshot",
            "use --recover fresh",
        )
    version, index = int(data["reservoirVersion"]), int(data["index"])
    # A negative index stands before the version's first file (Delta's base and
    # metadata-change markers): the version is not started yet.
    if index >= 0:
        raise UsageError(
            f"the table's last batch ended inside raw version {version} (file {index}), "
            "where a new query cannot start",
            "use --recover fresh",
        )
    return version
