"""The AWS Glue Data Catalog, where lake tables are registered for Athena and Spectrum.

Every write is preceded by a read and made only when Glue disagrees with what is wanted, so
a sync over an unchanged lake makes no write call (Glue keeps a table version per
UpdateTable, and partitions carry no version at all to compare by)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamlake.errors import CatalogError

log = logging.getLogger(__name__)

# Glue's limits per call: BatchCreatePartition and BatchUpdatePartition take 100 entries,
# BatchDeletePartition 25.
CREATE_CHUNK = 100
UPDATE_CHUNK = 100
DELETE_CHUNK = 25

PartitionValues = tuple[str, ...]

# How Hive and Spark write a null (or empty) partition value in a path and in Glue.
HIVE_DEFAULT_PARTITION = "__HIVE_DEFAULT_PARTITION__"

# The storage formats and SerDes Glue tables are registered with, as Glue's crawlers write
# them for each classification.
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
PARQUET_INPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
SYMLINK_INPUT = "org.apache.hadoop.hive.ql.io.SymlinkTextInputFormat"
TEXT_INPUT = "org.apache.hadoop.mapred.TextInputFormat"
TEXT_OUTPUT = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
JSON_SERDE = "org.openx.data.jsonserde.JsonSerDe"
CSV_SERDE = "org.apache.hadoop.hive.serde2.OpenCSVSerde"
AVRO_SERDE = "org.apache.hadoop.hive.serde2.avro.AvroSerDe"
AVRO_INPUT = "org.apache.hadoop.hive.ql.io.avro.AvroContainerInputFormat"
AVRO_OUTPUT = "org.apache.hadoop.hive.ql.io.avro.AvroContainerOutputFormat"

# Spark's (and Delta's) primitive types as Hive/Glue type strings; decimal(p,s) is kept as
# it is.
HIVE_TYPES = {
    "string": "string",
    "long": "bigint",
    "integer": "int",
    "short": "smallint",
    "byte": "tinyint",
    "float": "float",
    "double": "double",
    "boolean": "boolean",
    "binary": "binary",
    "date": "date",
    "timestamp": "timestamp",
    "timestamp_ntz": "timestamp",
}


def hive_type(spark_type: Any) -> str | None:
    """A Spark type in its JSON form (as a Delta log holds it) as a Hive type string; None
    for a type no Glue reader reads: Spark's VARIANT, whose binary encoding Athena and
    Spectrum do not decode (registering it as string would fail at read time)."""
    if isinstance(spark_type, str):
        if spark_type.startswith("decimal"):
            return spark_type.replace(" ", "")
        return HIVE_TYPES.get(spark_type)
    kind = spark_type["type"]
    if kind == "array":
        element = hive_type(spark_type["elementType"])
        return None if element is None else f"array<{element}>"
    if kind == "map":
        key, value = hive_type(spark_type["keyType"]), hive_type(spark_type["valueType"])
        return None if key is None or value is None else f"map<{key},{value}>"
    if kind == "struct":
        members = [(f["name"], hive_type(f["type"])) for f in spark_type["fields"]]
        if any(t is None for _, t in members):
            return None
        return "struct<" + ",".join(f"{n}:{t}" for n, t in members) + ">"
    return None


def spark_type_name(spark_type: Any) -> str:
    return spark_type if isinstance(spark_type, str) else str(spark_type.get("type", "?"))


def glue_location(path: str) -> str:
    """Where Glue readers find a table or folder: s3:// for one on S3 (Athena and Spectrum
    know no s3a://), an absolute path for a local one (a relative path means nothing to a
    catalog)."""
    if path.startswith("s3a://"):
        return "s3://" + path.removeprefix("s3a://")
    if "://" in path:
        return path
    return str(Path(path).resolve())


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


def prepare_database(glue: Any, name: str, *, create: bool, description: str, holds: str) -> None:
    """Create the database if it is missing and ``create`` allows; otherwise stop before any
    write when it is missing. ``holds`` says what it is for, in the error."""
    if create:
        ensure_database(glue, name, description)
    elif not database_exists(glue, name):
        raise CatalogError(
            f"database for {holds} does not exist",
            "catalog.create_databases is false: create it (infra/) or set it true",
            database=name,
        )


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
