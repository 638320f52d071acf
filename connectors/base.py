"""What every source kind provides, so that nothing dispatches on source kinds itself.

A source kind (Kafka, Kinesis, DynamoDB Streams, ...) is one object in
``connectors.registry``, keyed by the ``kind`` literal of its config model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from streamlake.errors import StreamlakeError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from connectors.aws import AwsEndpoint
    from streamlake.config.pipeline import Table
    from streamlake.config.settings import Settings
    from streamlake.lake.checkpoint import CheckpointFiles

ErrorTranslator = Callable[[str], StreamlakeError | None]
# Called with a batch's id once the batch is committed (see ``SourceKind.after_commit``).
BatchCommitted = Callable[[int], None]


@dataclass(frozen=True)
class Resource:
    """A topic, stream, table or bucket: how to check it, and an idempotent create that
    returns True when it created something."""

    kind: str
    name: str
    exists: Callable[[], bool]
    create: Callable[[], bool]


class Event(Protocol):
    """One record to produce; ``item`` is the whole item for table sources (and a file's
    row); ``kind`` says whether it is good, bad or a duplicate."""

    @property
    def key(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def payload(self) -> bytes: ...
    @property
    def op(self) -> str: ...
    @property
    def item(self) -> dict[str, Any] | None: ...


class Sink(Protocol):
    """A producer's counts and end of life; ``acked`` counts what the service confirmed."""

    sent: int
    acked: int

    def flush(self) -> None: ...
    def close(self) -> None: ...


Send = Callable[[Event], None]


@dataclass(frozen=True)
class StreamRequest:
    """What an ingest job asks of its source's stream: the table it fills, where its
    checkpoint is, whether it runs available-now (everything there is, then stop), and, for
    a new checkpoint that resumes a recovered job, the source offset (as Spark logged it)
    after which to start instead of the source's configured start, and the gaps of lost
    records an operator accepted for this run (``<stream>/<shard>/<after>..<until>``)."""

    spark: SparkSession
    table: Table
    settings: Settings
    aws: AwsEndpoint
    checkpoint: str
    available_now: bool
    start_offset: str | None = None
    accepted_gaps: tuple[str, ...] = ()


SourceT = TypeVar("SourceT")


class SourceKind(ABC, Generic[SourceT]):
    """One source kind; ``SourceT`` is its config model in ``streamlake.config.pipeline``."""

    kind: str
    # Whether Spark's available-now trigger reads everything the source has at start (true
    # of Spark's own sources). If not, the stream opened for an available-now request
    # offers no data past the run's start, and the runtime stops the query once
    # ``available_now_done`` says a committed batch holds all of it.
    spark_available_now: bool = True

    def available_now_done(self, checkpoint: CheckpointFiles) -> bool:
        """For kinds without Spark's available-now: whether the run has read everything it
        is to read; called by the runtime while an available-now run goes on."""
        return False

    def after_commit(self, source: SourceT, request: StreamRequest) -> BatchCommitted | None:
        """What the ingest job does once a batch is committed to raw (and processed, when
        inline), called with the batch's id; None when nothing. Called when the job is
        built."""
        return None

    @abstractmethod
    def resource_identity(self, source: SourceT) -> tuple[str, str]:
        """(resource kind, name) as the local stack reports it; called when the demo looks
        for sources that `local up` created anew."""

    @abstractmethod
    def resources(self, source: SourceT, settings: Settings, aws: AwsEndpoint) -> list[Resource]:
        """What the source needs to exist; called by `local up` and `local status`."""

    @abstractmethod
    def producer(self, source: SourceT, settings: Settings, aws: AwsEndpoint) -> tuple[Send, Sink]:
        """A send function and the sink it writes to; called once per `produce` run."""

    @abstractmethod
    def open_stream(
        self, source: SourceT, request: StreamRequest
    ) -> tuple[DataFrame, ErrorTranslator]:
        """The source as raw-layer rows (without the ingest columns) and how to read the
        failures of its query; called when an ingest job is built."""
