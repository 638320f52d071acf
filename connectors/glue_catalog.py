"""The AWS Glue Data Catalog, where lake tables are registered for Athena and Spectrum.

Every write is preceded by a read and made only when Glue disagrees with what is wanted, so
a sync over an unchanged lake makes no write call (Glue keeps a table version per
UpdateTable, and partitions carry no version at all to compare by)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from streamlake.errors import CatalogError

log = logging.getLogger(__name__)

# Glue's limits per call: BatchCreatePartition and BatchUpdatePartition take 100 entries,
# BatchDeletePartition 25.
CREATE_CHUNK = 100
UPDATE_CHUNK = 100
DELETE_CHUNK = 25

PartitionValues = tuple[str, ...]


def database_exists(glue: Any, name: str) -> bool:
    with glue_errors(name):
        try:
            glue.get_database(Name=name)
            return True
        except glue.exceptions.EntityNotFoundException:
            return False


def ensure_database(glue: Any, name: str, description: str = "") -> bool:
    """Create the database if it does not exist; True if created."""
    if database_exists(glue, name):
        return False
    with glue_errors(name):
        try:
            glue.create_database(DatabaseInput={"Name": name, "Description": description})
        except glue.exceptions.AlreadyExistsException:
            return False
    log.info("created glue database %s", name)
    return True


@contextmanager
def glue_errors(database: str, table: str = "") -> Iterator[None]:
    """Glue's refusals (access denied, throttled past retries, limits) as a CatalogError
    naming the database and table, in one line."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise CatalogError(
            f"{exc.operation_name} failed: {error.get('Code', '?')}: {error.get('Message', '')}",
            database=database,
            table=table,
        ) from exc
    except BotoCoreError as exc:
        raise CatalogError(str(exc), database=database, table=table, retryable=True) from exc


def differs(wanted: Any, found: Any) -> bool:
    """Whether Glue's ``found`` disagrees with ``wanted`` (what would be sent). Keys Glue adds
    on its own (CreateTime, VersionId, defaults like Compressed) are not compared; an empty
    list or mapping matches one Glue leaves out."""
    if isinstance(wanted, dict):
        if not wanted:
            return found not in (None, {})
        return not isinstance(found, dict) or any(
            differs(value, found.get(key)) for key, value in wanted.items()
        )
    if isinstance(wanted, list):
        if not wanted:
            return found not in (None, [])
        return (
            not isinstance(found, list)
            or len(wanted) != len(found)
            or any(differs(w, f) for w, f in zip(wanted, found, strict=True))
        )
    return bool(wanted != found)


def get_table(glue: Any, database: str, name: str) -> dict[str, Any] | None:
    with glue_errors(database, name):
        try:
            return dict(glue.get_table(DatabaseName=database, Name=name)["Table"])
        except glue.exceptions.EntityNotFoundException:
            return None


def sync_table(
    glue: Any, database: str, table_input: dict[str, Any], ignored_parameters: tuple[str, ...]
) -> str:
    """Create or update the table ``table_input`` describes: "registered", "updated" or
    "unchanged". Parameters named in ``ignored_parameters`` (bookkeeping such as the Delta
    version) are written with a change but are no reason for one. Parameters someone else
    set on the table are kept."""
    name = table_input["Name"]
    found = get_table(glue, database, name)
    if found is None:
        with glue_errors(database, name):
            glue.create_table(DatabaseName=database, TableInput=table_input)
        log.info("registered glue table %s.%s", database, name)
        return "registered"
    parameters = table_input.get("Parameters", {})
    compared = table_input | {
        "Parameters": {k: v for k, v in parameters.items() if k not in ignored_parameters}
    }
    if not differs(compared, found):
        return "unchanged"
    kept = found.get("Parameters") or {}
    update = table_input | {"Parameters": kept | parameters}
    with glue_errors(database, name):
        glue.update_table(DatabaseName=database, TableInput=update)
    log.info("updated glue table %s.%s", database, name)
    return "updated"


@dataclass(frozen=True)
class PartitionChanges:
    created: int = 0
    updated: int = 0
    deleted: int = 0

    def __bool__(self) -> bool:
        return bool(self.created or self.updated or self.deleted)

    def describe(self) -> str:
        parts = [
            f"{sign}{count} partition{'s' if count != 1 else ''}{what}"
            for sign, count, what in (
                ("+", self.created, ""),
                ("", self.updated, " updated"),
                ("-", self.deleted, ""),
            )
            if count
        ]
        return ", ".join(parts)


def get_partitions(glue: Any, database: str, table: str) -> dict[PartitionValues, dict[str, Any]]:
    """Every partition of the table, by its values."""
    found: dict[PartitionValues, dict[str, Any]] = {}
    with glue_errors(database, table):
        pages = glue.get_paginator("get_partitions").paginate(
            DatabaseName=database, TableName=table
        )
        for page in pages:
            for partition in page["Partitions"]:
                found[tuple(partition["Values"])] = partition
    return found


def sync_partitions(
    glue: Any, database: str, table: str, wanted: dict[PartitionValues, dict[str, Any]]
) -> PartitionChanges:
    """Make the table's partitions exactly ``wanted`` (values -> PartitionInput): create the
    new ones, update those Glue holds differently, delete those no longer wanted."""
    found = get_partitions(glue, database, table)
    new = [wanted[v] for v in wanted if v not in found]
    changed = [wanted[v] for v in wanted if v in found and differs(wanted[v], found[v])]
    gone = [v for v in found if v not in wanted]
    for chunk in chunks(new, CREATE_CHUNK):
        answer = call(glue.batch_create_partition, database, table, PartitionInputList=chunk)
        raise_on_errors(answer, database, table, "BatchCreatePartition")
    for chunk in chunks(changed, UPDATE_CHUNK):
        entries = [{"PartitionValueList": p["Values"], "PartitionInput": p} for p in chunk]
        answer = call(glue.batch_update_partition, database, table, Entries=entries)
        raise_on_errors(answer, database, table, "BatchUpdatePartition")
    for values in chunks(gone, DELETE_CHUNK):
        doomed = [{"Values": list(v)} for v in values]
        answer = call(glue.batch_delete_partition, database, table, PartitionsToDelete=doomed)
        raise_on_errors(answer, database, table, "BatchDeletePartition")
    changes = PartitionChanges(len(new), len(changed), len(gone))
    if changes:
        log.info("glue table %s.%s: %s", database, table, changes.describe())
    return changes


def call(method: Any, database: str, table: str, **arguments: Any) -> dict[str, Any]:
    with glue_errors(database, table):
        return dict(method(DatabaseName=database, TableName=table, **arguments))


def raise_on_errors(answer: dict[str, Any], database: str, table: str, operation: str) -> None:
    """The batch partition calls report failed entries in the answer instead of raising."""
    errors = answer.get("Errors") or []
    if errors:
        first = errors[0]
        detail = first.get("ErrorDetail", {})
        values = first.get("PartitionValues") or first.get("PartitionValueList")
        raise CatalogError(
            f"{operation} failed for {len(errors)} partition(s), first {values}: "
            f"{detail.get('ErrorCode', '?')}: {detail.get('ErrorMessage', '')}",
            database=database,
            table=table,
        )


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
