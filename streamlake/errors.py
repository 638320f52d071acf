"""The error hierarchy: every failure a user can act on is a StreamlakeError.

Each error carries the data that locates the problem (file and key, service and address,
table, topic and offsets) and a hint saying what to do. ``retryable`` separates transient
conditions (a service still starting, throttling) from terminal ones (bad config).
"""

from __future__ import annotations

from dataclasses import dataclass, field

EXIT_JOB_FAILED = 1
EXIT_BAD_USAGE = 2


def first_line(exc: BaseException) -> str:
    """An exception's first line (Spark's and Delta's run on with plans and stacks)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


@dataclass
class StreamlakeError(Exception):
    """Root of all streamlake errors."""

    message: str
    hint: str = ""
    retryable: bool = field(default=False, kw_only=True)
    exit_code: int = field(default=EXIT_JOB_FAILED, kw_only=True)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


@dataclass
class ConfigError(StreamlakeError):
    """A configuration file or override is invalid: names the file and the key path."""

    source: str = ""
    key: str = ""
    exit_code: int = field(default=EXIT_BAD_USAGE, kw_only=True)

    def __str__(self) -> str:
        where = f"{self.source}: {self.key}: " if self.key else f"{self.source}: "
        return where + super().__str__()


@dataclass
class UsageError(StreamlakeError):
    """The command line asks for something that does not exist or cannot be done."""

    exit_code: int = field(default=EXIT_BAD_USAGE, kw_only=True)


@dataclass
class SetupError(StreamlakeError):
    """Something the setup step installs is missing (jars, Java, the virtualenv)."""

    path: str = ""
    exit_code: int = field(default=EXIT_BAD_USAGE, kw_only=True)


@dataclass
class ServiceError(StreamlakeError):
    """A local or remote service is unreachable or unhealthy."""

    service: str = ""
    address: str = ""
    log_file: str = ""

    def __str__(self) -> str:
        text = f"{self.service} at {self.address}: {super().__str__()}"
        return f"{text}; see {self.log_file}" if self.log_file else text


@dataclass
class ResourceError(StreamlakeError):
    """An AWS or Kafka resource could not be created or checked."""

    kind: str = ""
    name: str = ""

    def __str__(self) -> str:
        return f"{self.kind} {self.name!r}: {super().__str__()}"


@dataclass
class CatalogError(StreamlakeError):
    """The Glue Data Catalog refused or lacks what a catalog run needs: names the database
    and, where there is one, the table. A failed job (exit 1): the configuration is valid,
    the account's catalog is not as it expects."""

    database: str = ""
    table: str = ""

    def __str__(self) -> str:
        where = f"{self.database}.{self.table}" if self.table else self.database
        return f"glue catalog {where}: {super().__str__()}"


@dataclass
class CrawlError(StreamlakeError):
    """A crawler could not infer its table from its files: a file that does not read as its
    format, or folders that disagree on the partition keys. Names the crawler and the path.
    The crawl of that table fails (exit 1); the other crawlers still run."""

    crawler: str = ""
    path: str = ""

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"crawler {self.crawler}: {where}{super().__str__()}"


@dataclass
class ExportError(StreamlakeError):
    """An export could not deliver: Firehose refused the records outright (no such stream,
    no access), or kept failing them past the attempts allowed. Names the export, the table,
    the stream and, when attempts ran out, the window of versions and the records not
    delivered, which the next run delivers. Exit 1."""

    export: str = ""
    table: str = ""
    stream: str = ""
    versions: str = ""
    undelivered: int = 0

    def __str__(self) -> str:
        where = f"export {self.export} ({self.table} to {self.stream})" if self.export else ""
        return f"{where}: {super().__str__()}" if where else super().__str__()


@dataclass
class ConsumerError(StreamlakeError):
    """A Kinesis consumer stopped: its handler could not be imported (exit 2) or raised on a
    record (exit 1; names the shard and record, whose batch was not checkpointed), or its
    KCL daemon exited by itself."""

    application: str = ""
    stream: str = ""
    shard: str = ""
    sequence: str = ""
    handler: str = ""


@dataclass
class DataLossError(StreamlakeError):
    """Source data the job had not read yet is gone (retention, trimming, deleted partition).

    Terminal: the job stops rather than skip it. ``accept_data_loss`` on the table lets an
    operator go on past the gap."""

    stream: str = ""
    partition: str = ""
    lost_from: str = ""
    lost_to: str = ""
    # Kafka names the first lost offset; shard sources name the last record they still had.
    start_exclusive: bool = False

    def __str__(self) -> str:
        where = f"{self.stream} partition {self.partition}"
        opening = "(" if self.start_exclusive else "["
        if self.lost_to:
            span = f"positions {opening}{self.lost_from}, {self.lost_to})"
        elif self.lost_from:
            span = f"positions after {self.lost_from}"
        else:
            span = "some positions"
        return f"data lost in {where}: {span}: {super().__str__()}"


@dataclass
class JobError(StreamlakeError):
    """A job failed; names the job and, where known, the batch."""

    job: str = ""
    batch_id: int | None = None

    def __str__(self) -> str:
        batch = f" (batch {self.batch_id})" if self.batch_id is not None else ""
        return f"job {self.job}{batch}: {super().__str__()}"


@dataclass
class CheckpointError(StreamlakeError):
    """A job's checkpoint disagrees with the table it writes; going on would write records
    twice or skip them. Terminal: the operator picks a recovery."""

    job: str = ""
    checkpoint: str = ""
    table: str = ""

    def __str__(self) -> str:
        return f"job {self.job}: {super().__str__()}"


@dataclass
class LeaseHeldError(StreamlakeError):
    """Another job holds the table's lease: running now would write beside it."""

    table: str = ""
    holder: str = ""
    retryable: bool = field(default=True, kw_only=True)


@dataclass
class RetentionError(StreamlakeError):
    """A VACUUM retention shorter than a streaming reader of the table still needs: it
    would delete files the reader has yet to read. Raise the retention or let the reader
    catch up first."""

    table: str = ""
    reader: str = ""
    version: int | None = None
    exit_code: int = field(default=EXIT_BAD_USAGE, kw_only=True)

    def __str__(self) -> str:
        return f"{self.table}: {super().__str__()}"


@dataclass
class JdbcError(StreamlakeError):
    """A database a jdbc source pulls from refused or could not be reached, or its
    credentials could not be read. Names the connection, the database URL (never the
    password) and the table. Unreachable is retryable; refused credentials are not."""

    connection: str = ""
    url: str = ""
    table: str = ""

    def __str__(self) -> str:
        where = f" table {self.table}" if self.table else ""
        return f"jdbc connection {self.connection} ({self.url}){where}: {super().__str__()}"
