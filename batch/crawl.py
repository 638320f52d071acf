"""The crawl job: folders of data files without a Delta log (S3 landing files, exports)
registered in the AWS Glue Data Catalog with the schema and partitions read from the files,
as an AWS Glue crawler does. No Spark: files are listed with pathlib or boto3, and sampled
with pyarrow and fastavro.

Per crawler (``crawlers:`` in pipeline.yaml) one table: every data file is listed (hidden
and empty files skipped), its ``key=value`` folders are its partition, the newest
``sample_files`` files of each partition are read for their columns (text files up to
their first MiB, Parquet and Avro files their footer or header), and the columns are
merged. Against the table Glue already holds the change is applied as a crawler's default
policy does: new columns added and widened types updated (UPDATE_IN_DATABASE), columns no
file has any more kept and reported (LOG for deletions). Glue is written only where it
differs, so a crawl that finds nothing new makes no write call.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any

from batch.crawl_formats import (
    AvroDeclared,
    FileFormat,
    UnreadableFileError,
    avro_declarations,
    avro_literal,
    format_of,
    read_schema,
    serde_parameters,
    storage_descriptor,
    table_parameters,
)
from batch.crawl_schema import (
    Columns,
    MergedSchema,
    PartitionPath,
    SchemaChanges,
    is_hidden,
    partition_keys,
    partition_of,
    reconcile,
)
from batch.jobs import BatchRun
from batch.report import BatchReport, TableOutcome
from connectors.aws import aws_endpoint
from connectors.glue_catalog import (
    PartitionChanges,
    PartitionValues,
    get_table,
    glue_location,
    prepare_database,
    sync_partitions,
    sync_table,
)
from connectors.s3 import location_files
from streamlake.config.pipeline import Crawler
from streamlake.errors import CatalogError, CrawlError, UsageError
from streamlake.lake.files import LocationFiles, StoredFile

log = logging.getLogger(__name__)

# The --table namespace of crawlers: `--table name` or `--table crawl.name`.
CRAWL = "crawl"


@dataclass(frozen=True)
class Listing:
    """A crawler's data files (of its one format), and the files ``auto`` could not tell
    the format of."""

    files: list[StoredFile]
    kind: FileFormat
    ignored: int = 0


@dataclass
class Inferred:
    """What the sampled files say: their merged columns, the columns no Glue type
    describes, and (Avro) each column's newest declaration and the newest writer schema."""

    merged: MergedSchema = field(default_factory=MergedSchema)
    left_out: dict[str, str] = field(default_factory=dict)
    declared: dict[str, AvroDeclared] = field(default_factory=dict)
    writer: dict[str, Any] | None = None


def run(run: BatchRun) -> BatchReport:
    """The ``crawl`` batch job."""
    return crawl_all(run, aws_endpoint(run.settings).client("glue"))


def crawl_all(run: BatchRun, glue: Any) -> BatchReport:
    """Crawl every crawler the run selects through the Glue client ``glue``. A crawler that
    fails is reported and the others still run; the report then names what failed."""
    report = BatchReport(job=run.job, kind=CRAWL)
    failures = []
    for name in selected_crawlers(run):
        run.progress(f"crawling {name}")
        started = time.monotonic()
        try:
            outcome = crawl(run, glue, name)
        except (CrawlError, CatalogError) as exc:
            log.error("%s", exc)
            failures.append(str(exc))
            outcome = TableOutcome(
                target(run, name), "failed", seconds=time.monotonic() - started, detail=str(exc)
            )
        report.tables.append(outcome)
    report.failed = "; ".join(failures) or None
    return report


def selected_crawlers(run: BatchRun) -> list[str]:
    """The crawlers ``--table`` names: by crawler name, ``crawl.<name>`` or the Glue
    ``database.table`` it registers; all without it."""
    names = [
        n for n in run.pipeline.crawlers if run.selects(CRAWL, n) or run.only == target(run, n)
    ]
    if not names:
        declared = ", ".join(sorted(run.pipeline.crawlers)) or "none"
        raise UsageError(f"no crawler named {run.only!r}", f"crawlers: {declared}")
    return names


def target(run: BatchRun, name: str) -> str:
    """The Glue table a crawler registers, as ``database.table``."""
    return f"{run.pipeline.crawler_database(name)}.{run.pipeline.crawler_table(name)}"


def crawl(run: BatchRun, glue: Any, name: str) -> TableOutcome:
    """One crawler: list, sample, merge, compare with Glue, write what differs."""
    started = time.monotonic()
    crawler = run.pipeline.crawlers[name]
    files = location_files(crawler.path, run.settings)
    listing = list_data_files(files, crawler, name)
    if isinstance(listing, str):
        log.info("crawler %s skipped: %s", name, listing)
        return TableOutcome(target(run, name), "skipped", detail=listing)
    paths = {f.name: partition_of(f.name) for f in listing.files}
    keys = partition_keys(paths, name, crawler.path)
    sampled = sample(listing.files, paths, crawler.sample_files)
    run.progress(f"crawling {name}: reading {len(sampled)} of {len(listing.files)} files")
    inferred = infer(files, sampled, listing.kind, crawler, name)
    # A column named like a partition key is the key: Hive has one name for both.
    found = {k: v for k, v in inferred.merged.columns.items() if k not in keys}
    if len(found) < len(inferred.merged.columns):
        log.info("crawler %s: columns that are partition keys too are registered as keys", name)
    outcome = register(run, glue, name, listing, keys, paths, found, inferred)
    return replace(outcome, seconds=time.monotonic() - started)


def list_data_files(files: LocationFiles, crawler: Crawler, name: str) -> Listing | str:
    """The crawler's data files, or why there are none (the crawl is skipped)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        stored = [f for f in files.walk() if not is_hidden(f.name) and f.size > 0]
    except FileNotFoundError as exc:
        return str(exc)
    except (OSError, ClientError, BotoCoreError) as exc:
        raise CrawlError(f"cannot list the files: {exc}", crawler=name, path=crawler.path) from exc
    if not stored:
        return f"no data files under {crawler.path}"
    if crawler.format != "auto":
        return Listing(stored, crawler.format)
    by_format: dict[FileFormat, list[StoredFile]] = defaultdict(list)
    for stored_file in stored:
        kind = format_of(stored_file.name)
        if kind is not None:
            by_format[kind].append(stored_file)
    ignored = len(stored) - sum(len(found) for found in by_format.values())
    if not by_format:
        return (
            f"no data files under {crawler.path}: {ignored} file(s) with no known extension "
            "(.json, .jsonl, .ndjson, .csv, .parquet, .avro); set the crawler's format"
        )
    if len(by_format) > 1:
        (one, first), (other, second) = sorted(by_format.items())[:2]
        raise CrawlError(
            f"files of more than one format: {first[0].name} is {one}, {second[0].name} is {other}",
            "a crawler's files are of one format: point a crawler at each, or set format",
            crawler=name,
            path=crawler.path,
        )
    ((kind, chosen),) = by_format.items()
    if ignored:
        log.info("crawler %s: %d file(s) with no %s extension ignored", name, ignored, kind)
    return Listing(chosen, kind, ignored)


def newest_last(stored: StoredFile) -> tuple[float, str]:
    return (stored.modified, stored.name)


def sample(
    files: list[StoredFile], paths: dict[str, PartitionPath], per_partition: int
) -> list[StoredFile]:
    """The newest ``per_partition`` files of each partition folder (new columns arrive with
    new files), oldest first, so that newer files' columns and declarations come last."""
    by_folder: dict[str, list[StoredFile]] = defaultdict(list)
    for stored in files:
        by_folder[paths[stored.name].folder].append(stored)
    chosen = [
        f for group in by_folder.values() for f in sorted(group, key=newest_last)[-per_partition:]
    ]
    return sorted(chosen, key=newest_last)


def infer(
    files: LocationFiles, sampled: list[StoredFile], kind: FileFormat, crawler: Crawler, name: str
) -> Inferred:
    """Read and merge the sampled files' columns; a file that does not read as ``kind``
    fails the crawl, naming the file."""
    inferred = Inferred()
    for stored in sampled:
        where = f"{crawler.path.rstrip('/')}/{stored.name}"
        try:
            with files.open(stored) as stream:
                schema = read_schema(kind, stream, stored.size, crawler.delimiter)
        except UnreadableFileError as exc:
            raise CrawlError(str(exc), crawler=name, path=where) from exc
        except OSError as exc:
            raise CrawlError(f"cannot read it: {exc}", crawler=name, path=where) from exc
        inferred.merged.add(schema.columns)
        for conflict in schema.conflicts.values():
            inferred.merged.conflicts.setdefault(conflict.column, conflict)
        inferred.left_out.update({label.split(" ")[0]: label for label in schema.left_out})
        if schema.avro is not None:
            inferred.declared.update(avro_declarations(schema.avro))
            inferred.writer = schema.avro
    for column in inferred.merged.columns:
        inferred.left_out.pop(column, None)
    return inferred


def register(
    run: BatchRun,
    glue: Any,
    name: str,
    listing: Listing,
    keys: tuple[str, ...],
    paths: dict[str, PartitionPath],
    found: Columns,
    inferred: Inferred,
) -> TableOutcome:
    """Create or update the crawler's Glue table and its partitions where Glue differs."""
    pipeline, crawler = run.pipeline, run.pipeline.crawlers[name]
    database, table = pipeline.crawler_database(name), pipeline.crawler_table(name)
    existing = get_table(glue, database, table)
    previous = glue_columns_of(existing)
    columns, changes = reconcile(previous, found)
    for column in changes.missing:
        log.warning("%s.%s: column %s is missing from the files (kept)", database, table, column)
    for column, old, new in changes.incompatible:
        log.warning("%s.%s: column %s was %s, the files hold %s", database, table, column, old, new)
    glue_columns = [{"Name": n, "Type": t} for n, t in columns]
    literal = None
    if listing.kind == "avro":
        before = ((existing or {}).get("Parameters") or {}).get("avro.schema.literal")
        literal = avro_literal(table, columns, inferred.declared, inferred.writer, before)
    serde = serde_parameters(listing.kind, glue_columns, crawler.delimiter, literal)
    location = glue_location(crawler.path).rstrip("/") + "/"
    table_input = {
        "Name": table,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": table_parameters(listing.kind, name, crawler.delimiter, literal),
        "PartitionKeys": [{"Name": key, "Type": "string"} for key in keys],
        "StorageDescriptor": storage_descriptor(listing.kind, location, glue_columns, serde),
    }
    prepare_database(
        glue,
        database,
        create=pipeline.catalog.create_databases,
        description=f"streamlake {pipeline.name} crawled files",
        holds=f"crawler {name}",
    )
    action = sync_table(glue, database, table_input, ())
    wanted: dict[PartitionValues, dict[str, Any]] = {}
    for path in paths.values() if keys else ():
        wanted[path.values] = {
            "Values": list(path.values),
            "StorageDescriptor": storage_descriptor(
                listing.kind, f"{location}{path.folder}/", glue_columns, serde
            ),
        }
    # An unpartitioned table has no partitions to read, unless it had keys before.
    had_keys = bool((existing or {}).get("PartitionKeys"))
    partitions = sync_partitions(glue, database, table, wanted) if keys or had_keys else None
    detail = describe(
        existing, listing, keys, columns, changes, inferred, partitions or PartitionChanges()
    )
    created = action == "registered"
    changed = created or action == "updated" or bool(partitions)
    verdict = "created" if created else "updated" if changed else "unchanged"
    log.info("crawler %s: %s.%s %s (%s)", name, database, table, verdict, detail or "no change")
    return TableOutcome(f"{database}.{table}", verdict, detail=detail)


def glue_columns_of(table: dict[str, Any] | None) -> list[tuple[str, str]] | None:
    if table is None:
        return None
    columns = (table.get("StorageDescriptor") or {}).get("Columns") or []
    return [(c["Name"], c["Type"]) for c in columns]


def describe(
    existing: dict[str, Any] | None,
    listing: Listing,
    keys: tuple[str, ...],
    columns: list[tuple[str, str]],
    changes: SchemaChanges,
    inferred: Inferred,
    partitions: PartitionChanges,
) -> str:
    """The outcome in one short line: what the table is (when created) or what changed."""
    conflicts = inferred.merged.conflicts
    if existing is None:
        notes = [f"{len(columns)} columns ({listing.kind})"]
        if keys:
            notes.append(f"partitioned by {', '.join(keys)}")
        notes += [conflict.describe() for conflict in conflicts.values()]
    else:
        notes = changes_of_the_table(existing, listing, keys)
        notes += changes.describe()
        notes += [conflicts[c].describe() for c in changes.added if c in conflicts]
    if inferred.left_out:
        notes.append(f"not registered: {', '.join(inferred.left_out.values())}")
    if listing.ignored:
        notes.append(f"{listing.ignored} file(s) of no known format ignored")
    if partitions:
        notes.append(partitions.describe())
    return "; ".join(notes)


def changes_of_the_table(
    existing: dict[str, Any], listing: Listing, keys: tuple[str, ...]
) -> list[str]:
    """A changed classification or partition keys, which a crawl rewrites."""
    notes = []
    classification = (existing.get("Parameters") or {}).get("classification")
    if classification and classification != listing.kind:
        notes.append(f"classification {classification}->{listing.kind}")
    before = tuple(k["Name"] for k in existing.get("PartitionKeys") or [])
    if before != keys:
        notes.append(f"partition keys ({', '.join(before)})->({', '.join(keys)})")
    return notes
