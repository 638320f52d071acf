"""The catalog job: every lake table registered in the AWS Glue Data Catalog, without
crawlers.

Per layer a database (``Pipeline.glue_database``); per Delta table two Glue tables:

- ``<table>``: the Delta table itself (``table_type`` DELTA), which Athena reads natively
  from the Delta log, schema and partitions included;
- ``<table>_manifest``: a Hive table over the table's symlink manifest (Delta writes, per
  partition, a file listing the Parquet files of the current version), which is how
  Redshift Spectrum and other Hive readers see exactly the table's active files. Hive
  readers find partitions in the catalog, so this table's partitions are registered too.

Columns come from the Delta log, read with delta-rs; the manifests are written by Delta
itself through Spark. Glue is only written where it disagrees, so a run over an unchanged
lake makes no write call.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from batch.jobs import BatchRun
from batch.report import BatchReport, TableOutcome
from connectors.aws import aws_endpoint
from connectors.glue_catalog import (
    HIVE_DEFAULT_PARTITION,
    PARQUET_INPUT,
    PARQUET_OUTPUT,
    PARQUET_SERDE,
    SYMLINK_INPUT,
    TEXT_OUTPUT,
    PartitionChanges,
    PartitionValues,
    glue_location,
    hive_type,
    prepare_database,
    spark_type_name,
    sync_partitions,
    sync_table,
)
from connectors.s3 import location_files
from streamlake.config.pipeline import Pipeline, glue_name
from streamlake.config.settings import Settings
from streamlake.errors import CatalogError, UsageError, first_line
from streamlake.lake.delta_rs import delta_table_exists, open_delta_table
from streamlake.lake.files import LocationFiles
from streamlake.lake.query import LakeTable, declared_tables, found_tables
from streamlake.lake.tables import CURATED, LAYERS

log = logging.getLogger(__name__)

MANIFEST_DIR = "_symlink_format_manifest"
MANIFEST_SUFFIX = "_manifest"
# The Delta version a Glue definition was written from. Bookkeeping: a commit that leaves
# the columns and partitions as they were is no reason to rewrite the definition.
VERSION_PARAMETER = "streamlake.delta_version"
IGNORED = (VERSION_PARAMETER,)

# Characters Spark escapes as %XX in partition paths (ExternalCatalogUtils.escapePathName),
# so the manifest's partition folders are found where Delta wrote them.
PATH_ESCAPED = frozenset([chr(c) for c in range(0x01, 0x20)] + list("\"#%'*/:=?\\\x7f{[]^"))


@dataclass(frozen=True)
class DeltaSnapshot:
    """What Glue is told about one version of a Delta table."""

    version: int
    columns: list[dict[str, str]]
    partition_keys: list[dict[str, str]]
    partitions: list[PartitionValues]
    # Columns left out of Glue, as "name (type)": no Glue reader reads them (VARIANT).
    unregistered: tuple[str, ...]
    # Why Delta cannot write this table's symlink manifest, None when it can.
    manifest_blocker: str | None


def run(run: BatchRun) -> BatchReport:
    """The ``catalog`` batch job."""
    return sync_catalog(run, aws_endpoint(run.settings).client("glue"))


def sync_catalog(run: BatchRun, glue: Any) -> BatchReport:
    """Register every written lake table the run selects through the Glue client ``glue``;
    declared tables not written yet are reported as skipped."""
    report = BatchReport(job=run.job, kind="catalog")
    declared = [t for t in lake_tables(run.pipeline, run.settings) if run.selects(t.layer, t.name)]
    if run.only is not None and not declared:
        names = sorted({t.name for t in lake_tables(run.pipeline, run.settings)})
        raise UsageError(
            f"--table {run.only!r}: no lake table of that name",
            f"name a table ({', '.join(names)}) or one layer of it (processed.orders)",
        )
    check_glue_names(run.pipeline, declared)
    written = {t for t in declared if delta_table_exists(t.path, run.settings)}
    prepare_databases(glue, run.pipeline, {t.layer for t in written})
    for table in declared:
        if table in written:
            report.tables.append(register(run, glue, table))
        else:
            log.info("%s not registered: not written yet (no Delta log)", table.qualified)
            report.tables.append(TableOutcome(table.qualified, "skipped", detail="not written yet"))
    return report


def lake_tables(pipeline: Pipeline, settings: Settings) -> list[LakeTable]:
    """The lake tables the pipeline declares (``_meta`` aside), then curated tables written
    by hand under a local lake's curated folder."""
    declared = [t for t in declared_tables(pipeline, settings) if t.layer in LAYERS]
    names = {t.qualified for t in declared}
    found = [t for t in found_tables(settings) if t.layer == CURATED]
    return declared + [t for t in found if t.qualified not in names]


def check_glue_names(pipeline: Pipeline, tables: list[LakeTable]) -> None:
    """Two lake tables that Glue would know by one name (``a-b`` and ``a_b``, or ``x`` and a
    table named ``x_manifest``) would be registered one over the other."""
    seen: dict[tuple[str, str], str] = {}
    for table in tables:
        for name in (glue_name(table.name), glue_name(table.name) + MANIFEST_SUFFIX):
            other = seen.setdefault((table.layer, name), table.name)
            if other != table.name:
                raise CatalogError(
                    f"{table.layer}.{other} and {table.layer}.{table.name} would both be "
                    f"registered as {name}",
                    "rename one of them",
                    database=pipeline.glue_database(table.layer),
                    table=name,
                )


def prepare_databases(glue: Any, pipeline: Pipeline, layers: set[str]) -> None:
    """Create the databases of ``layers`` that are missing, or, with
    ``catalog.create_databases`` false, stop before any write if one is missing."""
    for layer in sorted(layers, key=LAYERS.index):
        prepare_database(
            glue,
            pipeline.glue_database(layer),
            create=pipeline.catalog.create_databases,
            description=f"streamlake {pipeline.name} {layer}",
            holds=f"the {layer} layer",
        )


def register(run: BatchRun, glue: Any, table: LakeTable) -> TableOutcome:
    """Register one Delta table and its manifest table, with the manifest's partitions."""
    started = time.monotonic()
    # Glue is written from this snapshot; the manifest Spark writes next is at least as
    # new, so every partition registered has its manifest folder.
    snapshot = read_snapshot(table.path, run.settings)
    database = run.pipeline.glue_database(table.layer)
    name = glue_name(table.name)
    location = glue_location(table.path)
    notes = [f"{database}.{name} at v{snapshot.version}"]
    actions = [sync_table(glue, database, delta_table_input(name, location, snapshot), IGNORED)]
    if snapshot.unregistered:
        log.warning(
            "%s: columns not registered (no Glue reader reads them): %s",
            table.qualified,
            ", ".join(snapshot.unregistered),
        )
        notes.append(f"not registered: {', '.join(snapshot.unregistered)}")
    if snapshot.manifest_blocker:
        log.warning("%s: no manifest table: %s", table.qualified, snapshot.manifest_blocker)
        notes.append(f"no {name}{MANIFEST_SUFFIX}: {snapshot.manifest_blocker}")
        changes = PartitionChanges()
    else:
        generate_manifest(run, table, database)
        manifest = manifest_table_input(name, location, snapshot)
        actions.append(sync_table(glue, database, manifest, IGNORED))
        wanted = manifest_partitions(location, snapshot)
        changes = sync_partitions(glue, database, manifest["Name"], wanted)
        if changes:
            notes.append(changes.describe())
    return TableOutcome(
        table.qualified,
        overall_action(actions, changes),
        seconds=time.monotonic() - started,
        detail="; ".join(notes),
    )


def overall_action(actions: list[str], changes: PartitionChanges) -> str:
    """ "registered" when the Delta table was new, "updated" when anything was written."""
    if actions[0] == "registered":
        return "registered"
    if changes or any(a != "unchanged" for a in actions):
        return "updated"
    return "unchanged"


def read_snapshot(path: str, settings: Settings) -> DeltaSnapshot:
    """The table's current version, columns, partition keys and partitions, from its Delta
    log (delta-rs; no Spark)."""
    table = open_delta_table(path, settings)
    metadata = table.metadata()
    keys = list(metadata.partition_columns)
    fields = json.loads(table.schema().to_json())["fields"]
    columns, unregistered = glue_columns([f for f in fields if f["name"] not in keys])
    by_name = {f["name"]: f for f in fields}
    partition_keys, _ = glue_columns([by_name[k] for k in keys])
    partitions = (
        sorted({tuple(hive_value(p.get(k)) for k in keys) for p in table.partitions()})
        if keys
        else []
    )
    return DeltaSnapshot(
        version=int(table.version()),
        columns=columns,
        partition_keys=partition_keys,
        partitions=partitions,
        unregistered=unregistered,
        manifest_blocker=manifest_blocker(dict(metadata.configuration)),
    )


def manifest_blocker(configuration: dict[str, str]) -> str | None:
    """Delta refuses symlink manifests for tables with deletion vectors (a manifest lists
    whole files, so deleted rows would come back) and with column mapping (Parquet column
    names differ from the table's)."""
    if configuration.get("delta.enableDeletionVectors", "false").lower() == "true":
        return "deletion vectors are enabled"
    if configuration.get("delta.columnMapping.mode", "none") != "none":
        return "column mapping is enabled"
    return None


def glue_columns(fields: list[dict[str, Any]]) -> tuple[list[dict[str, str]], tuple[str, ...]]:
    """Delta schema fields as Glue columns, and the fields left out as "name (type)".
    Names are lowercased as Glue stores them, so Glue's answer compares equal."""
    columns = []
    unregistered = []
    for field in fields:
        hive = hive_type(field["type"])
        if hive is None:
            unregistered.append(f"{field['name']} ({spark_type_name(field['type'])})")
        else:
            columns.append({"Name": field["name"].lower(), "Type": hive})
    return columns, tuple(unregistered)


def hive_value(value: str | None) -> str:
    return HIVE_DEFAULT_PARTITION if value in (None, "") else str(value)


def escape_path_name(text: str) -> str:
    return "".join(f"%{ord(c):02X}" if c in PATH_ESCAPED else c for c in text)


def delta_table_input(name: str, location: str, snapshot: DeltaSnapshot) -> dict[str, Any]:
    """The Delta table as Athena reads it natively: ``table_type`` DELTA at its location.
    The Parquet formats are what Glue's own crawler writes for a Delta table."""
    return {
        "Name": name,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {
            "table_type": "DELTA",
            "classification": "delta",
            "EXTERNAL": "TRUE",
            VERSION_PARAMETER: str(snapshot.version),
        },
        "PartitionKeys": snapshot.partition_keys,
        "StorageDescriptor": {
            "Columns": snapshot.columns,
            "Location": location,
            "InputFormat": PARQUET_INPUT,
            "OutputFormat": PARQUET_OUTPUT,
            "SerdeInfo": {"SerializationLibrary": PARQUET_SERDE},
        },
    }


def manifest_table_input(name: str, location: str, snapshot: DeltaSnapshot) -> dict[str, Any]:
    """The Hive table over the symlink manifest, for Redshift Spectrum."""
    return {
        "Name": name + MANIFEST_SUFFIX,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {
            "classification": "parquet",
            "EXTERNAL": "TRUE",
            "streamlake.manifest_of": name,
            VERSION_PARAMETER: str(snapshot.version),
        },
        "PartitionKeys": snapshot.partition_keys,
        "StorageDescriptor": manifest_storage(f"{location}/{MANIFEST_DIR}/", snapshot),
    }


def manifest_storage(location: str, snapshot: DeltaSnapshot) -> dict[str, Any]:
    return {
        "Columns": snapshot.columns,
        "Location": location,
        "InputFormat": SYMLINK_INPUT,
        "OutputFormat": TEXT_OUTPUT,
        "SerdeInfo": {"SerializationLibrary": PARQUET_SERDE},
    }


def manifest_partitions(
    location: str, snapshot: DeltaSnapshot
) -> dict[PartitionValues, dict[str, Any]]:
    """The manifest table's partitions: one per partition of the Delta table, located at
    its manifest folder. Each carries the table's columns, and is updated with them when a
    column is added: Hive readers take a partition's columns from the partition itself, and
    Athena refuses a partition whose column types differ from the table's
    (HIVE_PARTITION_SCHEMA_MISMATCH, which Delta's type widening would cause). Schema changes
    are rare; keeping partitions equal to the table costs one call per 100 partitions then."""
    keys = [k["Name"] for k in snapshot.partition_keys]
    partitions = {}
    for values in snapshot.partitions:
        fragment = "/".join(
            f"{escape_path_name(k)}={escape_path_name(v)}"
            for k, v in zip(keys, values, strict=True)
        )
        partitions[values] = {
            "Values": list(values),
            "StorageDescriptor": manifest_storage(
                f"{location}/{MANIFEST_DIR}/{fragment}/", snapshot
            ),
        }
    return partitions


def generate_manifest(run: BatchRun, table: LakeTable, database: str) -> None:
    """Have Delta (re)write the table's symlink manifest for its current version. Full
    generation: Delta rewrites each partition's manifest and removes those of partitions
    that are gone, so compaction and deletes are reflected."""
    from delta.tables import DeltaTable

    run.progress(f"manifest of {table.qualified}")
    try:
        DeltaTable.forPath(run.spark, table.path).generate("symlink_format_manifest")
    except Exception as exc:
        raise CatalogError(
            f"Delta could not write the symlink manifest of {table.qualified}: {first_line(exc)}",
            database=database,
            table=glue_name(table.name),
        ) from exc
    if table.path.startswith("s3a://"):
        rewrite_s3a_paths(location_files(f"{table.path}/{MANIFEST_DIR}", run.settings))


def rewrite_s3a_paths(manifests: LocationFiles) -> None:
    """Delta writes the data files' paths as Spark names them; on S3 that is Hadoop's
    s3a:// scheme, which Redshift Spectrum and Athena do not read. They need s3://."""
    for file in manifests.walk():
        text = manifests.read(file.name)
        if text is None or "s3a://" not in text:
            continue
        lines = text.splitlines()
        fixed = [
            "s3://" + line.removeprefix("s3a://") if line.startswith("s3a://") else line
            for line in lines
        ]
        manifests.write(file.name, "\n".join(fixed) + "\n")
