"""The pipeline spec: sources, tables, rules, jobs, workflows and AWS resources."""

from __future__ import annotations

import re
import warnings
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from streamlake.config.ddl import columns, expression_columns, parse_type
from streamlake.config.settings import StrictModel
from streamlake.lake.tables import (
    CURATED,
    CURRENT_STATE_SYSTEM,
    HISTORY_COLUMNS,
    LAYERS,
    PROCESSED_SYSTEM,
    QUARANTINE,
    RAW,
    STREAMING_LAYERS,
)
from streamlake.notifications import DEFAULT_QUARANTINE_RATIO, EVENTS, Event
from streamlake.schedule import parse_schedule

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=128)]


class KafkaSource(StrictModel):
    kind: Literal["kafka"]
    topic: Name
    partitions: int = Field(default=1, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    starting_offsets: Literal["earliest", "latest"] = "earliest"
    max_offsets_per_trigger: int | None = Field(default=None, ge=1)
    # Spark tasks a batch reads with (Spark's minPartitions); a topic partition's range is
    # split when this is more than the partitions. None: one task per topic partition.
    min_partitions: int | None = Field(default=None, ge=1)


class KinesisSource(StrictModel):
    kind: Literal["kinesis"]
    stream: Name
    shards: int = Field(default=1, ge=1)
    starting_position: Literal["TRIM_HORIZON", "LATEST"] = "TRIM_HORIZON"
    # Caps the records one batch takes from a shard; None takes all that is there.
    max_records_per_trigger: int | None = Field(default=None, ge=1)


class DynamoDbSource(StrictModel):
    kind: Literal["dynamodb"]
    table: Name
    hash_key: str
    hash_key_type: Literal["S", "N", "B"] = "S"
    range_key: str | None = None
    range_key_type: Literal["S", "N", "B"] = "S"
    stream_view: Literal["NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES", "KEYS_ONLY"] = (
        "NEW_AND_OLD_IMAGES"
    )
    # Caps the records one batch takes from a shard; None takes all that is there.
    max_records_per_trigger: int | None = Field(default=None, ge=1)


# Watermarks and skews, which streamlake computes with itself: "10 minutes", "1.5 hours".
INTERVAL = r"^\d+(\.\d+)? (millisecond|second|minute|hour|day)s?$"

# A landing location: a local folder, or a bucket and prefix on S3.
LANDING = re.compile(r"^(s3a?://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?|[^:]+)$")


class FilesSource(StrictModel):
    """Files pushed to a landing location (``path``: a local folder or ``s3://bucket/
    prefix``), each read once: JSON lines, CSV (with a header naming the table's columns
    in order, unless ``header`` is false), Parquet or Avro, optionally gzipped (``.gz``);
    ``format`` ``auto`` tells by each file's extension. A file read is moved under
    ``archive``; one that cannot be read, under ``errors``, with ``<name>.reason.json``
    beside it. ``max_files_per_trigger`` bounds a batch."""

    kind: Literal["files"]
    path: str = Field(min_length=1)
    format: Literal["auto", "json", "csv", "parquet", "avro"] = "auto"
    archive: str = Field(min_length=1)
    errors: str = Field(min_length=1)
    header: bool = True
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    max_files_per_trigger: int = Field(default=100, ge=1)

    @field_validator("path", "archive", "errors")
    @classmethod
    def _is_a_location(cls, value: str) -> str:
        if not LANDING.match(value):
            raise ValueError(f"{value!r}: a local folder or s3://bucket/prefix (s3a:// too)")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _places_apart(self) -> FilesSource:
        def normal(place: str) -> str:
            return place.replace("s3a://", "s3://", 1) + "/"

        landing = normal(self.path)
        for key in ("archive", "errors"):
            place = normal(getattr(self, key))
            if place.startswith("s3://") != landing.startswith("s3://"):
                raise ValueError(
                    f"{key} {getattr(self, key)!r} and path {self.path!r}: files move between "
                    "places on the same storage, all on S3 or all on a local disk"
                )
            if place.startswith(landing) or landing.startswith(place):
                raise ValueError(
                    f"{key} {getattr(self, key)!r} and path {self.path!r} overlap: files moved "
                    "there would be read again, or the landing files with them"
                )
        return self


class JdbcSource(StrictModel):
    """A relational table pulled by a ``pull`` job, incrementally by ``bookmark`` (an
    increasing id or an updated-at timestamp, never null): each pull reads the rows whose
    bookmark is at least the highest one already in raw less ``overlap`` (an interval for a
    timestamp or date bookmark, a count for an integer one), so that rows committed late
    with an older bookmark are still read; rows already in raw (same bookmark and ``key``)
    are left out. ``connection`` names the environment file's ``jdbc`` connection (URL and
    credentials); ``table`` is the database table, ``schema.table`` or ``table``."""

    kind: Literal["jdbc"]
    connection: Name
    table: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")]
    key: list[str] = Field(min_length=1)
    bookmark: str
    overlap: Annotated[str, Field(pattern=INTERVAL)] | Annotated[int, Field(ge=0)] | None = None
    # Rows the driver fetches per round trip (the JDBC fetchsize).
    fetch_size: int = Field(default=10_000, ge=1)


Source = Annotated[
    KafkaSource | KinesisSource | DynamoDbSource | FilesSource | JdbcSource,
    Field(discriminator="kind"),
]

RuleKind = Literal["not_null", "type", "range", "in_set", "regex", "length", "unique", "custom_sql"]


# Spark's processing-time triggers: "10 seconds", "interval 1 minute 30 seconds"; only
# seconds may have a fraction.
_TRIGGER_PART = r"(\d+ (day|hour|minute|millisecond|microsecond)s?|\d+(\.\d+)? seconds?)"
TRIGGER = rf"(?i)^(interval )?{_TRIGGER_PART}( {_TRIGGER_PART})*$"
UNIT_SECONDS = {"millisecond": 0.001, "second": 1, "minute": 60, "hour": 3600, "day": 86400}


def interval_seconds(interval: str) -> float:
    """An INTERVAL string ("10 minutes", "1.5 hours") in seconds."""
    amount, unit = interval.split()
    return float(amount) * UNIT_SECONDS[unit.rstrip("s")]


# Spark's regexes are Java's. Python's `re` reads most of them, but not all (\p{L}, \z,
# \Q..\E): only faults both engines reject stop the config from loading.
STRUCTURAL_REGEX_FAULTS = (
    "missing )",
    "unbalanced parenthesis",
    "unterminated character set",
    "nothing to repeat",
    "multiple repeat",
)


class Rule(StrictModel):
    """A row-level check, a subset of Glue Data Quality's DQDL."""

    name: Name
    kind: RuleKind
    column: str | None = None
    min: float | None = None
    max: float | None = None
    values: list[str] | None = None
    pattern: str | None = None
    type: str | None = None
    expr: str | None = None

    @field_validator("type")
    @classmethod
    def _type_parses(cls, value: str | None) -> str | None:
        if value is not None:
            parse_type(value)
        return value

    @field_validator("expr")
    @classmethod
    def _expr_parses(cls, value: str | None) -> str | None:
        if value is not None:
            expression_columns(value)
        return value

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Java's [a-z&&[^e]] warns in Python
                re.compile(value)
        except re.error as exc:
            if any(fault in exc.msg for fault in STRUCTURAL_REGEX_FAULTS):
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _arguments_match_kind(self) -> Rule:
        needs: dict[str, tuple[str, ...]] = {
            "not_null": ("column",),
            "type": ("column", "type"),
            "range": ("column",),
            "in_set": ("column", "values"),
            "regex": ("column", "pattern"),
            "length": ("column",),
            "unique": ("column",),
            "custom_sql": ("expr",),
        }
        missing = [arg for arg in needs[self.kind] if getattr(self, arg) is None]
        if missing:
            raise ValueError(f"rule kind {self.kind!r} needs {', '.join(missing)}")
        if self.kind in ("range", "length") and self.min is None and self.max is None:
            raise ValueError(f"rule kind {self.kind!r} needs min, max or both")
        return self


# VACUUM below this could delete the files of a batch still being written (they are not in
# the log until its commit).
MIN_RETENTION_S = 3600


class Compaction(StrictModel):
    """How `batch run compact` keeps a table: bin-packing (optionally Z-ordered) and VACUUM
    of files unreferenced for longer than ``retention``."""

    zorder_by: list[str] = Field(default_factory=list)
    retention: str = Field(default="7 days", pattern=INTERVAL)
    # Who rewrites the files: Delta's OPTIMIZE in the Spark session (tasks across the
    # cluster), or delta-rs in the job's own process (no JVM tasks: much faster on tables of
    # many small files, bounded by one machine). VACUUM is Spark's either way.
    engine: Literal["spark", "delta-rs"] = "spark"

    @field_validator("retention")
    @classmethod
    def _retention_is_safe(cls, value: str) -> str:
        if interval_seconds(value) < MIN_RETENTION_S:
            raise ValueError(
                f"retention {value!r} is under 1 hour: VACUUM could delete the files of a "
                "batch still being written"
            )
        return value


class AvroFormat(StrictModel):
    """Where the writer schemas of an Avro table's payloads live.

    ``glue``: payloads framed by the AWS Glue Schema Registry serializer, schemas in the
    Glue registry ``registry_name``. ``confluent``: the Confluent wire format, schemas in the
    registry at the environment's ``schema_registry.url``. ``schema_name`` is the Glue
    schema or Confluent subject producers register under."""

    registry: Literal["glue", "confluent"]
    schema_name: Name
    registry_name: Name | None = None

    @model_validator(mode="after")
    def _glue_names_its_registry(self) -> AvroFormat:
        if self.registry == "glue" and self.registry_name is None:
            raise ValueError("a glue registry needs registry_name")
        if self.registry == "confluent" and self.registry_name is not None:
            raise ValueError(
                "registry_name names a Glue registry; a confluent registry's URL is "
                "schema_registry.url in the environment file"
            )
        return self


class Table(StrictModel):
    source: str
    # How payloads are parsed: JSON text, Avro framed by a schema registry, or CSV records
    # (from a files source reading CSV: the columns by position, as declared).
    format: Literal["json", "avro", "csv"] = "json"
    avro: AvroFormat | None = None
    # Spark DDL of the processed columns, e.g. "order_id STRING, amount DECIMAL(12,2)".
    schema_ddl: str
    event_id: str | None = None
    event_time: str | None = None
    watermark: str = Field(default="10 minutes", pattern=INTERVAL)
    # How far an event time may run ahead of its ingest time (producer clocks drift); an
    # event beyond it is quarantined by the built-in rule event_time_not_in_future. null
    # turns the rule off, and with it the bound on the watermark's reference.
    event_time_skew: Annotated[str, Field(pattern=INTERVAL)] | None = "1 hour"
    drift: Literal["evolve", "strict", "rescue"] = "evolve"
    accept_data_loss: bool = False
    cdc: bool = False
    rules: list[Rule] = Field(default_factory=list)
    # Applies to processed.<table>; raw and quarantine take its retention, never Z-order.
    compaction: Compaction = Compaction()

    @field_validator("schema_ddl")
    @classmethod
    def _schema_parses(cls, value: str) -> str:
        columns(value)
        return value

    @model_validator(mode="after")
    def _names_are_columns(self) -> Table:
        declared = {name.lower() for name, _type in columns(self.schema_ddl)}
        for key in ("event_id", "event_time"):
            name = getattr(self, key)
            if name is not None and name.lower() not in declared:
                raise ValueError(f"{key} {name!r} is not a column of schema_ddl")
        for column in self.compaction.zorder_by:
            if column.lower() not in declared:
                raise ValueError(f"compaction.zorder_by: {column!r} is not a column of schema_ddl")
        checkable = declared | set(RAW.names) | ({"_op", "_sequence_number"} if self.cdc else set())
        for index, rule in enumerate(self.rules):
            # A nested field (address.city) is checked by its top-level column.
            top = (rule.column or "").split(".")[0].strip("`").lower()
            if rule.column is not None and top not in checkable:
                raise ValueError(
                    f"rules[{index}] ({rule.name}): column {rule.column!r} is not a column of "
                    "schema_ddl"
                )
            unknown = sorted(expression_columns(rule.expr) - checkable) if rule.expr else []
            if unknown:
                raise ValueError(
                    f"rules[{index}] ({rule.name}): expr reads {', '.join(unknown)}, not "
                    "columns of schema_ddl"
                )
        return self

    @model_validator(mode="after")
    def _avro_names_its_registry(self) -> Table:
        if self.format == "avro" and self.avro is None:
            raise ValueError("format avro needs an avro block (registry, schema_name)")
        if self.format != "avro" and self.avro is not None:
            raise ValueError("an avro block needs format: avro")
        if self.cdc and self.format == "avro":
            raise ValueError("cdc tables read DynamoDB change records, which are JSON")
        return self

    @model_validator(mode="after")
    def _unique_means_the_event_id(self) -> Table:
        for rule in self.rules:
            if rule.kind == "unique" and rule.column != self.event_id:
                raise ValueError(
                    f"rule {rule.name}: unique is enforced by deduplication on the event id, "
                    f"so its column must be event_id ({self.event_id!r})"
                )
        return self


QualityKind = Literal["completeness", "uniqueness", "referential", "row_count", "freshness"]

# The arguments each kind of quality rule needs, and those it may take besides.
QUALITY_ARGUMENTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "completeness": (("column", "min_ratio"), ()),
    "uniqueness": (("columns",), ("min_ratio",)),
    "referential": (("columns", "reference"), ("reference_columns", "min_ratio")),
    "row_count": ((), ("min", "max")),
    "freshness": (("max_age",), ("column",)),
}


class QualityRule(StrictModel):
    """A dataset-level check of one table, as AWS Glue Data Quality's DQDL rules
    (Completeness, Uniqueness, ReferentialIntegrity, RowCount, DataFreshness), run by the
    quality job.

    ``completeness``: the share of rows where ``column`` is not null is at least
    ``min_ratio``. ``uniqueness``: no two rows share the key ``columns`` (rows with a null
    key column are left out), or, with ``min_ratio``, distinct keys over rows is at least
    that. ``referential``: every row's ``columns`` (rows with a null one left out) match
    ``reference_columns`` (default: the same names) of a row of ``reference``
    (``layer.table``), or at least ``min_ratio`` of them do. ``row_count``: rows between
    ``min`` and ``max``. ``freshness``: the newest value of ``column`` is no older than
    ``max_age``; without ``column``, the layer's arrival time (raw ``ingest_ts``, processed
    ``_ingest_ts``, quarantine ``quarantined_at``) or, for curated tables, the time of the
    newest commit that changed rows. A failing ``blocking`` rule fails the job (exit 1);
    any other is reported and logged as a warning."""

    name: Name
    kind: QualityKind
    column: str | None = None
    columns: list[str] | None = Field(default=None, min_length=1)
    min_ratio: float | None = Field(default=None, ge=0, le=1)
    reference: str | None = None
    reference_columns: list[str] | None = Field(default=None, min_length=1)
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)
    max_age: str | None = Field(default=None, pattern=INTERVAL)
    blocking: bool = True

    @model_validator(mode="after")
    def _arguments_match_kind(self) -> QualityRule:
        needs, takes = QUALITY_ARGUMENTS[self.kind]
        missing = [arg for arg in needs if getattr(self, arg) is None]
        if missing:
            raise ValueError(f"quality rule kind {self.kind!r} needs {', '.join(missing)}")
        arguments = {a for needed, taken in QUALITY_ARGUMENTS.values() for a in needed + taken}
        extra = sorted(a for a in arguments - {*needs, *takes} if getattr(self, a) is not None)
        if extra:
            allowed = ", ".join((*needs, *takes))
            raise ValueError(
                f"quality rule kind {self.kind!r} takes no {', '.join(extra)} (it takes {allowed})"
            )
        if self.kind == "row_count":
            if self.min is None and self.max is None:
                raise ValueError("quality rule kind 'row_count' needs min, max or both")
            if self.min is not None and self.max is not None and self.min > self.max:
                raise ValueError(f"min {self.min} is more than max {self.max}")
        if self.reference_columns is not None and len(self.reference_columns) != len(
            self.columns or []
        ):
            raise ValueError("reference_columns needs as many columns as columns")
        return self

    @property
    def min_share(self) -> float:
        """The ratio a completeness, uniqueness or referential rule must reach."""
        return 1.0 if self.min_ratio is None else self.min_ratio

    @property
    def key(self) -> list[str]:
        """The columns a uniqueness or referential rule reads in the checked table."""
        return self.columns or []

    @property
    def reference_key(self) -> list[str]:
        """The columns a referential rule matches in its reference table."""
        return self.reference_columns or self.key

    @property
    def max_age_seconds(self) -> float | None:
        return None if self.max_age is None else interval_seconds(self.max_age)

    def named_columns(self) -> list[str]:
        """The columns of the checked table the rule names."""
        return [*([self.column] if self.column else []), *self.key]


# Column types a bookmark may have: ordered, and encoded so that text order is value order.
TIME_BOOKMARKS = ("TIMESTAMP", "TIMESTAMP_NTZ", "DATE")
INTEGER_BOOKMARKS = ("TINYINT", "SMALLINT", "INT", "INTEGER", "BIGINT", "LONG")


def check_jdbc_table(name: str, table: Table, source: JdbcSource) -> None:
    """The source's key and bookmark are declared columns, and the overlap fits the
    bookmark's type."""
    declared = {column.lower(): kind.upper() for column, kind in columns(table.schema_ddl)}
    for column in (*source.key, source.bookmark):
        if column.lower() not in declared:
            raise ValueError(
                f"tables.{name}: {column!r} (key or bookmark of source {table.source!r}) is "
                "not a column of schema_ddl"
            )
    kind = declared[source.bookmark.lower()]
    if kind not in TIME_BOOKMARKS + INTEGER_BOOKMARKS:
        raise ValueError(
            f"tables.{name}: bookmark {source.bookmark!r} is {kind}; a bookmark is a "
            "timestamp, a date or an integer"
        )
    if kind in TIME_BOOKMARKS and isinstance(source.overlap, int):
        raise ValueError(
            f"sources.{table.source}.overlap: bookmark {source.bookmark!r} is a {kind}, so "
            'the overlap is an interval ("5 minutes")'
        )
    if kind in INTEGER_BOOKMARKS and isinstance(source.overlap, str):
        raise ValueError(
            f"sources.{table.source}.overlap: bookmark {source.bookmark!r} is an integer, so "
            "the overlap is a count of ids (100)"
        )


def split_table_name(qualified: str) -> tuple[str, str]:
    """``processed.orders`` -> (``processed``, ``orders``); ValueError if it has no layer."""
    layer, dot, name = qualified.partition(".")
    if not dot or not layer or not name:
        raise ValueError(f"{qualified!r} is not a layer.table name (e.g. processed.orders)")
    return layer, name


# Jobs that run as Spark streaming queries (`stream run`); the others are batch jobs.
STREAMING_JOB_KINDS = ("ingest", "process")

JobKind = Literal[
    "ingest", "process", "pull", "compact", "curate", "quality", "catalog", "crawl", "export"
]


class CuratedTable(StrictModel):
    """A table `batch run curate` builds from processed tables, matched on ``keys`` with
    MERGE so that reruns and late records come out right.

    ``sql``: the SQL's rows, reading each input as ``processed.<input>``. With
    ``date_column`` (an output column holding the inputs' ``event_date``) a run recomputes
    only the event dates whose rows changed; without it, everything.
    ``current_state``: each key's newest change of a CDC input in sequence-number order,
    deletes removed (SCD type 1); ``history`` adds ``<name>_history`` (SCD type 2)."""

    kind: Literal["sql", "current_state"] = "sql"
    inputs: list[Name] = Field(min_length=1)
    keys: list[str] = Field(min_length=1)
    sql: str | None = None
    date_column: str | None = None
    history: bool = False
    compaction: Compaction = Compaction()

    @model_validator(mode="after")
    def _kind_has_its_fields(self) -> CuratedTable:
        if self.kind == "sql" and not self.sql:
            raise ValueError("kind sql needs sql")
        if self.kind == "current_state":
            if self.sql or self.date_column:
                raise ValueError("kind current_state takes no sql or date_column")
            if len(self.inputs) != 1:
                raise ValueError("kind current_state reads exactly one input (a cdc table)")
        if self.kind == "sql" and self.history:
            raise ValueError("history is for kind current_state")
        if self.date_column and self.date_column not in self.keys:
            raise ValueError(f"date_column {self.date_column!r} must be one of keys")
        if self.compaction.zorder_by:
            raise ValueError(
                "compaction.zorder_by applies to processed tables; curated tables are "
                "bin-packed only"
            )
        return self


class Job(StrictModel):
    kind: JobKind
    table: str | None = None
    trigger: str = Field(default="10 seconds", pattern=TRIGGER)
    # Process jobs: how much of the raw table one batch takes (Delta's maxFilesPerTrigger and
    # maxBytesPerTrigger). With neither set a batch takes about 64 MB of raw files, so a
    # backlog is worked off in batches that fit the driver's memory.
    max_files_per_trigger: int | None = Field(default=None, ge=1)
    max_bytes_per_trigger: str | None = Field(default=None, pattern=r"^[1-9]\d*[kmg]?$")
    # Process jobs: ``separate`` reads raw as a Delta stream (a second hop); ``inline``
    # processes each batch inside the table's ingest job, right after its raw commit (one
    # hop, the low-latency path), and is not run on its own.
    mode: Literal["separate", "inline"] = "separate"

    @model_validator(mode="after")
    def _streaming_jobs_name_a_table(self) -> Job:
        if self.kind in ("ingest", "process", "pull") and self.table is None:
            raise ValueError(f"a {self.kind} job needs a table")
        if self.mode == "inline" and self.kind != "process":
            raise ValueError("mode: inline is for process jobs")
        return self


Condition = Literal["on_success", "on_failure", "on_completion"]
CONDITIONS: tuple[Condition, ...] = ("on_success", "on_failure", "on_completion")


class WorkflowStep(StrictModel):
    """One job of a workflow's graph and when it runs: with no condition, as soon as the
    workflow starts; otherwise once every job it names has ended as the condition says
    (``on_success``: succeeded; ``on_failure``: failed or timed out after its retries;
    ``on_completion``: either). A condition that can no longer hold skips the job.

    ``retries``: how many times a failed run is started again, after ``retry_backoff``
    doubled at each retry; ``timeout``: how long one run may take before it is cancelled
    (a timed-out run is not retried). Unset, the workflow's own values apply."""

    on_success: list[str] = Field(default_factory=list)
    on_failure: list[str] = Field(default_factory=list)
    on_completion: list[str] = Field(default_factory=list)
    retries: int | None = Field(default=None, ge=0, le=10)
    retry_backoff: str | None = Field(default=None, pattern=INTERVAL)
    timeout: str | None = Field(default=None, pattern=INTERVAL)

    def conditions(self) -> list[tuple[Condition, str]]:
        """Each (condition, job) this step waits for."""
        return [(kind, job) for kind in CONDITIONS for job in getattr(self, kind)]


class Workflow(StrictModel):
    """Jobs chained as Glue workflows chain them. Either ``steps``, a chain (each step runs
    when the one before succeeded), or ``jobs``, a graph (job name -> ``WorkflowStep``).

    Triggers: ``schedule`` in AWS's syntax, ``cron(0 2 * * ? *)`` or ``rate(1 day)`` (UTC), as
    EventBridge and Glue take it; ``on_arrival``, a ``files`` source whose landing prefix
    gets new objects (S3 event notifications through an SQS queue); and by hand, always.
    ``retries``, ``retry_backoff`` and ``timeout`` are each job's unless it sets its own."""

    steps: list[str] | None = Field(default=None, min_length=1)
    jobs: dict[str, WorkflowStep] | None = Field(default=None, min_length=1)
    schedule: str | None = None
    on_arrival: str | None = None
    retries: int = Field(default=0, ge=0, le=10)
    retry_backoff: str = Field(default="30 seconds", pattern=INTERVAL)
    timeout: str = Field(default="2 hours", pattern=INTERVAL)

    @field_validator("schedule")
    @classmethod
    def _schedule_parses(cls, value: str | None) -> str | None:
        if value is not None:
            parse_schedule(value)  # its ValueError names what is wrong
        return value

    @model_validator(mode="after")
    def _graph_is_sound(self) -> Workflow:
        if (self.steps is None) == (self.jobs is None):
            raise ValueError("give steps (a chain) or jobs (a graph), one of the two")
        if self.steps is not None and len(set(self.steps)) != len(self.steps):
            raise ValueError("steps: a job appears twice")
        graph = self.graph()
        for name, step in graph.items():
            for kind, job in step.conditions():
                if job not in graph:
                    raise ValueError(f"jobs.{name}.{kind}: {job!r} is not a job of this workflow")
        cycle = find_cycle(graph)
        if cycle:
            raise ValueError(f"jobs: a cycle, {' -> '.join(cycle)}")
        return self

    def graph(self) -> dict[str, WorkflowStep]:
        """Job name -> its step, in declaration order; a chain as a graph."""
        if self.jobs is not None:
            return dict(self.jobs)
        steps = self.steps or []
        return {
            job: WorkflowStep(on_success=[steps[i - 1]] if i else []) for i, job in enumerate(steps)
        }

    def order(self) -> list[str]:
        """The jobs in an order they can run in: each after those it waits for, otherwise
        as declared."""
        graph, placed = self.graph(), list[str]()
        while len(placed) < len(graph):
            placed.append(
                next(
                    name
                    for name, step in graph.items()
                    if name not in placed and all(up in placed for _, up in step.conditions())
                )
            )
        return placed

    def retries_of(self, job: str) -> int:
        own = self.graph()[job].retries
        return self.retries if own is None else own

    def retry_backoff_s(self, job: str) -> float:
        return interval_seconds(self.graph()[job].retry_backoff or self.retry_backoff)

    def timeout_s(self, job: str) -> float:
        return interval_seconds(self.graph()[job].timeout or self.timeout)


def find_cycle(graph: dict[str, WorkflowStep]) -> list[str]:
    """A cycle of jobs waiting on each other (its first job repeated at the end), or []."""
    waits_on = {name: [job for _, job in step.conditions()] for name, step in graph.items()}
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> list[str]:
        if name in path:
            return [*path[path.index(name) :], name]
        if name in done:
            return []
        for upstream in waits_on.get(name, []):
            found = visit(upstream, [*path, name])
            if found:
                return found
        done.add(name)
        return []

    for name in graph:
        found = visit(name, [])
        if found:
            return list(reversed(found))
    return []


class SnsTopic(StrictModel):
    name: Name


class FirehoseStream(StrictModel):
    name: Name
    bucket: Name
    prefix: str = ""


ChangeType = Literal["insert", "update_postimage", "update_preimage", "delete"]
# The change data feed's rows that carry a table's values after a change.
NEW_VALUES: tuple[ChangeType, ...] = ("insert", "update_postimage")


class Export(StrictModel):
    """What `batch run export` delivers to Firehose delivery stream ``stream``: the rows of
    lake table ``table`` (``layer.table``) that changed since the last export, as JSON lines.
    ``changes`` are the change data feed's kinds sent (new rows and updated rows' new
    values by default); ``where`` is a SQL condition over the table's columns and
    ``columns`` the columns sent (default all). A call failing is retried up to
    ``max_attempts`` times, with exponential backoff from ``backoff`` and full jitter."""

    table: str = Field(pattern=r"^[A-Za-z0-9_]+\.[A-Za-z0-9][A-Za-z0-9_.-]*$")
    stream: Name
    where: str | None = None
    columns: list[str] | None = Field(default=None, min_length=1)
    changes: list[ChangeType] = Field(default_factory=lambda: list(NEW_VALUES), min_length=1)
    max_attempts: int = Field(default=6, ge=1, le=20)
    backoff: str = Field(default="200 milliseconds", pattern=INTERVAL)


# Glue lowercases names, and Athena and Redshift Spectrum take only lowercase letters,
# digits and underscores in database and table names.
GlueName = Annotated[str, Field(pattern=r"^[a-z0-9_]+$", max_length=255)]


def glue_name(name: str) -> str:
    """A pipeline or table name as Glue, Athena and Spectrum accept it: ``Shop-EU.v2`` is
    ``shop_eu_v2``."""
    return re.sub(r"[^a-z0-9_]", "_", name.lower())


class Notifications(StrictModel):
    """Where job events are published and which: ``topic`` is one of ``sns_topics`` (or a
    topic's ARN); none means no notification is sent. ``quarantine_ratio`` is the share of
    a batch's records quarantined above which a quality breach is raised;
    ``source_lag_records`` and ``source_lag_seconds``, how far a streaming job may trail its
    source (in records: Kafka, a process job's raw table; in time: Kinesis, DynamoDB
    Streams) before a source lag notification, and before ``streamlake status`` calls it
    lagging (none: never)."""

    topic: str | None = None
    events: list[Event] = Field(default_factory=lambda: list(EVENTS))
    quarantine_ratio: float = Field(default=DEFAULT_QUARANTINE_RATIO, gt=0, le=1)
    source_lag_records: int | None = Field(default=None, gt=0)
    source_lag_seconds: float | None = Field(default=None, gt=0)

    def lag_past_threshold(
        self, records: float | None, seconds: float | None
    ) -> tuple[str, str] | None:
        """A lag past a threshold as (the lag, the threshold) in words; None when it is not."""
        most_records, most_seconds = self.source_lag_records, self.source_lag_seconds
        if records is not None and most_records is not None and records > most_records:
            return f"{records:.0f} records", f"{most_records} records"
        if seconds is not None and most_seconds is not None and seconds > most_seconds:
            return f"{seconds:.1f} s", f"{most_seconds:g} s"
        return None


class Metrics(StrictModel):
    """Where the pipeline's metrics go besides ``_meta/batch_metrics`` and the log:
    ``namespace`` is a CloudWatch namespace (none: CloudWatch gets nothing)."""

    namespace: str | None = Field(default=None, min_length=1, max_length=255)


class Catalog(StrictModel):
    """The Glue Data Catalog databases the lake's tables are registered in, one per layer.

    ``databases`` names a layer's database; a layer not named gets ``<pipeline>_<layer>``.
    ``create_databases``: whether the catalog job creates a missing database. false when the
    databases are owned elsewhere (infra/): a run against a missing one then stops."""

    databases: dict[str, GlueName] = Field(default_factory=dict)
    create_databases: bool = True

    @field_validator("databases")
    @classmethod
    def _keys_are_layers(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(LAYERS))
        if unknown:
            raise ValueError(f"{', '.join(unknown)}: not a layer (layers: {', '.join(LAYERS)})")
        return value


# A crawler's files on S3: a bucket, and a prefix or none.
S3_FOLDER = re.compile(r"^s3a?://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$")


class Crawler(StrictModel):
    """A folder of data files without a Delta log (S3 landing files, exports) that
    `batch run crawl` registers in the Glue Data Catalog, with the schema and ``key=value``
    partitions it infers from the files, as an AWS Glue crawler does.

    ``format`` ``auto`` tells the format by each file's extension (.json/.jsonl/.ndjson,
    .csv, .parquet, .avro). ``database`` defaults to ``<pipeline>_landing`` and ``table`` to
    the crawler's name, both as Glue spells names. ``delimiter`` is the CSV field separator.
    ``sample_files``: how many files of each partition (the newest) are read for the
    schema; Glue's crawler takes 1 to 249."""

    path: str = Field(min_length=1)
    format: Literal["auto", "json", "csv", "parquet", "avro"] = "auto"
    database: GlueName | None = None
    table: GlueName | None = None
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    sample_files: int = Field(default=10, ge=1, le=249)

    @field_validator("path")
    @classmethod
    def _path_is_a_folder(cls, value: str) -> str:
        if "://" in value and not S3_FOLDER.match(value):
            raise ValueError(
                f"{value!r}: a crawler reads a local folder or s3://bucket/prefix (s3a:// too)"
            )
        return value

    @field_validator("delimiter")
    @classmethod
    def _delimiter_separates(cls, value: str) -> str:
        if value in ('"', "\\", "\n", "\r"):
            raise ValueError(f"{value!r} cannot separate CSV fields")
        return value


class Pipeline(StrictModel):
    name: Name
    # Names become folders (<lake_root>/<layer>/<table>, <checkpoint_root>/<job>): Name
    # has no path separator, so none can point outside the lake.
    sources: dict[Name, Source]
    tables: dict[Name, Table]
    jobs: dict[Name, Job] = Field(default_factory=dict)
    workflows: dict[Name, Workflow] = Field(default_factory=dict)
    curated: dict[Name, CuratedTable] = Field(default_factory=dict)
    buckets: list[Name] = Field(default_factory=list)
    sns_topics: list[SnsTopic] = Field(default_factory=list)
    firehose: list[FirehoseStream] = Field(default_factory=list)
    catalog: Catalog = Field(default_factory=Catalog)
    # Dataset-level checks the quality job runs, by table (``layer.table``).
    quality: dict[str, list[QualityRule]] = Field(default_factory=dict)
    crawlers: dict[Name, Crawler] = Field(default_factory=dict)
    notifications: Notifications = Field(default_factory=Notifications)
    metrics: Metrics = Field(default_factory=Metrics)
    # What `batch run export` delivers onward, by export name.
    exports: dict[Name, Export] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _references_resolve(self) -> Pipeline:
        for name, table in self.tables.items():
            if table.source not in self.sources:
                raise ValueError(f"tables.{name}.source: no source named {table.source!r}")
            source = self.sources[table.source]
            if source.kind == "jdbc":
                check_jdbc_table(name, table, source)
            csv_files = source.kind == "files" and source.format == "csv"
            if csv_files != (table.format == "csv"):
                raise ValueError(
                    f"tables.{name}.format: csv goes with a files source of format csv, and "
                    "only with one"
                )
        for name, job in self.jobs.items():
            if job.table is not None and job.table not in self.tables:
                raise ValueError(f"jobs.{name}.table: no table named {job.table!r}")
            self._check_job_source(name, job)
            if job.mode == "inline" and self.ingest_job_of(job.table) is None:
                raise ValueError(f"jobs.{name}.mode: inline needs an ingest job of {job.table!r}")
            if job.mode == "inline":
                others = [
                    n
                    for n, j in self.jobs.items()
                    if j.kind == "process" and j.table == job.table and n != name
                ]
                if others:
                    raise ValueError(
                        f"jobs.{name}.mode: inline processes {job.table!r}, so does "
                        f"{others[0]}: one process job per table when one is inline"
                    )
        for name, curated in self.curated.items():
            self._check_curated(name, curated)
        for name, workflow in self.workflows.items():
            self._check_workflow(name, workflow)
        for stream in self.firehose:
            if stream.bucket not in self.buckets:
                raise ValueError(
                    f"firehose.{stream.name}.bucket: {stream.bucket!r} is not in buckets"
                )
        return self

    def _check_job_source(self, name: str, job: Job) -> None:
        """A jdbc source is pulled, never streamed; only a jdbc source is pulled."""
        if job.table is None or job.kind not in ("ingest", "pull"):
            return
        pulled = self.sources[self.tables[job.table].source].kind == "jdbc"
        if job.kind == "ingest" and pulled:
            raise ValueError(
                f"jobs.{name}: table {job.table!r} comes from a jdbc source, which a pull job "
                "reads (kind: pull), not an ingest job"
            )
        if job.kind == "pull" and not pulled:
            raise ValueError(
                f"jobs.{name}: a pull job reads a table of a jdbc source; {job.table!r} is "
                "streamed by an ingest job"
            )

    def _check_workflow(self, name: str, workflow: Workflow) -> None:
        field = "steps" if workflow.steps is not None else "jobs"
        for job in workflow.graph():
            if job not in self.jobs:
                raise ValueError(f"workflows.{name}.{field}: no job named {job!r}")
            if self.jobs[job].mode == "inline":
                raise ValueError(
                    f"workflows.{name}.{field}: {job} runs inside its table's ingest job "
                    "(mode: inline); name the ingest job"
                )
        arrival = workflow.on_arrival
        if arrival is not None:
            source = self.sources.get(arrival)
            if source is None or source.kind != "files":
                files = [n for n, s in self.sources.items() if s.kind == "files"]
                raise ValueError(
                    f"workflows.{name}.on_arrival: {arrival!r} is not a files source "
                    f"(files sources: {', '.join(files) or 'none'})"
                )

    @model_validator(mode="after")
    def _one_database_per_layer(self) -> Pipeline:
        # Every layer holds a table of each name (raw.orders, processed.orders): two layers
        # in one database would register one over the other.
        seen: dict[str, str] = {}
        for layer in LAYERS:
            database = self.glue_database(layer)
            if database in seen:
                raise ValueError(
                    f"catalog.databases: {seen[database]} and {layer} are both in {database!r}; "
                    "each layer needs a database of its own"
                )
            seen[database] = layer
        return self

    @model_validator(mode="after")
    def _quality_rules_resolve(self) -> Pipeline:
        for qualified, rules in self.quality.items():
            try:
                known = self.known_columns(qualified)
            except ValueError as exc:
                raise ValueError(f"quality.{qualified}: {exc}") from None
            seen: set[str] = set()
            for index, rule in enumerate(rules):
                where = f"quality.{qualified}[{index}] ({rule.name})"
                if rule.name in seen:
                    raise ValueError(f"{where}: a rule of {qualified} has this name already")
                seen.add(rule.name)
                self._check_quality_rule(where, qualified, rule, known)
        return self

    def _check_quality_rule(
        self, where: str, qualified: str, rule: QualityRule, known: frozenset[str] | None
    ) -> None:
        for column in rule.named_columns():
            if known is not None and column.lower() not in known:
                raise ValueError(f"{where}: {column!r} is not a column of {qualified}")
        if rule.reference is None:
            return
        try:
            referenced = self.known_columns(rule.reference)
        except ValueError as exc:
            raise ValueError(f"{where}: reference: {exc}") from None
        for column in rule.reference_key:
            if referenced is not None and column.lower() not in referenced:
                raise ValueError(f"{where}: {column!r} is not a column of {rule.reference}")

    def known_columns(self, qualified: str) -> frozenset[str] | None:
        """The columns (lower case) of the lake table ``layer.table`` as the pipeline
        declares it; None for a curated SQL table, whose columns its SQL decides. ValueError
        when the pipeline declares no such table."""
        layer, name = split_table_name(qualified)
        if layer not in LAYERS:
            raise ValueError(f"{layer!r} is not a layer (layers: {', '.join(LAYERS)})")
        if layer == CURATED:
            return self._curated_columns(name)
        table = self.tables.get(name)
        if table is None:
            raise ValueError(f"no table named {name!r} (tables: {', '.join(sorted(self.tables))})")
        contract = {"raw": RAW.names, "quarantine": QUARANTINE.names}.get(layer)
        if contract is not None:
            return frozenset(contract)
        declared = {column.lower() for column, _type in columns(table.schema_ddl)}
        return frozenset(declared | set(PROCESSED_SYSTEM))

    def _curated_columns(self, name: str) -> frozenset[str] | None:
        curated = self.curated.get(name)
        if curated is None and name.endswith("_history"):
            # A current-state table's SCD type 2 companion, when it keeps history.
            owner = self.curated.get(name.removesuffix("_history"))
            curated = owner if owner is not None and owner.history else None
        if curated is None:
            names = sorted(self.curated_table_names())
            raise ValueError(
                f"no curated table named {name!r} (curated: {', '.join(names) or 'none'})"
            )
        if curated.kind != "current_state":
            return None
        source = self.tables[curated.inputs[0]]
        declared = {column.lower() for column, _type in columns(source.schema_ddl)}
        extra = CURRENT_STATE_SYSTEM + (HISTORY_COLUMNS if name not in self.curated else ())
        return frozenset(declared | set(extra))

    @model_validator(mode="after")
    def _exports_read_lake_tables_into_declared_streams(self) -> Pipeline:
        tables = {f"{layer}.{name}" for layer, name in self.lake_table_names()}
        streams = [f.name for f in self.firehose]
        for name, export in self.exports.items():
            if export.table not in tables:
                raise ValueError(
                    f"exports.{name}.table: no lake table {export.table!r} (name one as "
                    "layer.table, e.g. processed.orders or curated.daily_revenue)"
                )
            if export.stream not in streams:
                raise ValueError(
                    f"exports.{name}.stream: {export.stream!r} is not one of firehose "
                    f"({', '.join(streams) or 'none'})"
                )
        return self

    @model_validator(mode="after")
    def _notifications_go_to_a_declared_topic(self) -> Pipeline:
        topic = self.notifications.topic
        declared = [t.name for t in self.sns_topics]
        if topic is not None and not topic.startswith("arn:") and topic not in declared:
            raise ValueError(
                f"notifications.topic: {topic!r} is not one of sns_topics "
                f"({', '.join(declared) or 'none'}) nor a topic ARN"
            )
        return self

    @model_validator(mode="after")
    def _crawlers_have_tables_of_their_own(self) -> Pipeline:
        crawl_jobs = [n for n, j in self.jobs.items() if j.kind == "crawl"]
        if crawl_jobs and not self.crawlers:
            raise ValueError(f"jobs.{crawl_jobs[0]}: a crawl job needs crawlers to run")
        # The catalog job's Glue tables, which a crawled table must not overwrite.
        lake_tables = {
            (self.glue_database(layer), glue_name(table) + suffix)
            for layer, table in self.lake_table_names()
            for suffix in ("", "_manifest")
        }
        seen: dict[tuple[str, str], str] = {}
        for name in self.crawlers:
            target = (self.crawler_database(name), self.crawler_table(name))
            if target in lake_tables:
                raise ValueError(
                    f"crawlers.{name}: {'.'.join(target)} is where the catalog job registers a "
                    "lake table; name another database or table"
                )
            other = seen.setdefault(target, name)
            if other != name:
                raise ValueError(
                    f"crawlers.{name}: {other} registers {'.'.join(target)} as well; name "
                    "another table"
                )
        return self

    def crawler_database(self, crawler: str) -> str:
        """The Glue database of a crawler's table: its own, else ``<pipeline>_landing``."""
        return self.crawlers[crawler].database or glue_name(f"{self.name}_landing")

    def crawler_table(self, crawler: str) -> str:
        """The Glue table a crawler registers: its ``table``, else its name as Glue spells it."""
        return self.crawlers[crawler].table or glue_name(crawler)

    def curated_table_names(self) -> list[str]:
        """Every curated table the declarations write: each declared one, and the SCD type 2
        companion ``<name>_history`` of each that keeps history."""
        return [
            *self.curated,
            *(f"{name}_history" for name, table in self.curated.items() if table.history),
        ]

    def lake_table_names(self) -> list[tuple[str, str]]:
        """(layer, table) of every lake table the pipeline's jobs write, ``_meta`` aside:
        the one list the catalog, compaction, queries and the crawlers' checks go by."""
        names = [(layer, table) for table in self.tables for layer in STREAMING_LAYERS]
        return names + [(CURATED, name) for name in self.curated_table_names()]

    def glue_database(self, layer: str) -> str:
        """The Glue database of ``layer``'s tables."""
        return self.catalog.databases.get(layer) or glue_name(f"{self.name}_{layer}")

    def _check_curated(self, name: str, curated: CuratedTable) -> None:
        for index, source in enumerate(curated.inputs):
            if source not in self.tables:
                raise ValueError(f"curated.{name}.inputs[{index}]: no table named {source!r}")
        if curated.kind != "current_state":
            return
        cdc_input = self.tables[curated.inputs[0]]
        if not cdc_input.cdc:
            raise ValueError(
                f"curated.{name}: kind current_state needs a cdc input, {curated.inputs[0]!r} "
                "is not one"
            )
        declared = {column.lower() for column, _type in columns(cdc_input.schema_ddl)}
        for key in curated.keys:
            if key.lower() not in declared:
                raise ValueError(
                    f"curated.{name}.keys: {key!r} is not a column of {curated.inputs[0]!r}"
                )
        if curated.history and f"{name}_history" in self.curated:
            raise ValueError(f"curated.{name}.history: {name}_history is declared as well")

    def ingest_job_of(self, table: str | None) -> str | None:
        return next(
            (n for n, j in self.jobs.items() if j.kind == "ingest" and j.table == table), None
        )

    def inline_process_job_of(self, table: str | None) -> str | None:
        """The process job that runs inside ``table``'s ingest job, if there is one."""
        return next(
            (
                n
                for n, j in self.jobs.items()
                if j.kind == "process" and j.mode == "inline" and j.table == table
            ),
            None,
        )
