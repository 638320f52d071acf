"""Paced producers for the chaos soak: one thread per source, every record with an id of
its own, a known share of them made to fail a rule, a rate that can be raised (overload)
and a gate that holds the AWS sources while the AWS API server restarts."""

from __future__ import annotations

import contextlib
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from connectors.aws import AwsEndpoint
from connectors.base import Send, Sink
from connectors.registry import source_kind
from streamlake.config.pipeline import Pipeline
from streamlake.config.settings import Settings
from streamlake.produce.events import SyntheticEvent, click, customer, order

log = logging.getLogger(__name__)

TICK_S = 0.2
RETRY_PAUSE_S = 1.0
# One record in this many fails a rule and must end in quarantine.
BAD_EVERY = 50
# One record in this many is an earlier good record sent again (not to the DynamoDB table,
# where a put of an unchanged item is no change): processed keeps it once.
DUPLICATE_EVERY = 40


@dataclass(frozen=True)
class SourceLoad:
    """How one source's records look: the pipeline's table, its event id column, the id of
    record ``n``, a pattern that finds ids in payload bytes, and the record itself."""

    source: str
    table: str
    id_column: str
    ids: re.Pattern[bytes]
    make: Callable[[int, bool], SyntheticEvent]
    on_aws: bool
    duplicates: bool = True


def order_id(seed: int, n: int) -> str:
    # A valid UUID (the table's rule), with the run's seed and the record's number in it.
    return f"{n:08x}-50a4-4000-8000-{seed:012x}"


def loads(seed: int) -> dict[str, SourceLoad]:
    rng = random.Random(seed)

    def make_order(n: int, bad: bool) -> SyntheticEvent:
        record = order(rng, datetime.now(UTC)) | {"order_id": order_id(seed, n)}
        if bad:
            record["currency"] = "XXX"
        return SyntheticEvent(record["customer_id"], json.dumps(record).encode(), kind(bad))

    def make_click(n: int, bad: bool) -> SyntheticEvent:
        record = click(rng, datetime.now(UTC)) | {"event_id": f"ck-{seed}-{n}"}
        if bad:
            record["event_type"] = "teleport"
        return SyntheticEvent(record["session_id"], json.dumps(record).encode(), kind(bad))

    def make_customer(n: int, bad: bool) -> SyntheticEvent:
        record = customer(rng, datetime.now(UTC), f"cu-{seed}-{n}")
        if bad:
            record["tier"] = "platinum-plus"
        payload = json.dumps(record).encode()
        return SyntheticEvent(record["customer_id"], payload, kind(bad), "put", record)

    return {
        "orders": SourceLoad(
            "orders",
            "orders",
            "order_id",
            re.compile(rb"[0-9a-f]{8}-50a4-4000-8000-%012x" % seed),
            make_order,
            on_aws=False,
        ),
        "clickstream": SourceLoad(
            "clickstream",
            "clickstream",
            "event_id",
            re.compile(rb"ck-%d-\d+" % seed),
            make_click,
            on_aws=True,
        ),
        "customers": SourceLoad(
            "customers",
            "customers",
            "customer_id",
            re.compile(rb"cu-%d-\d+" % seed),
            make_customer,
            on_aws=True,
            duplicates=False,
        ),
    }


def kind(bad: bool) -> Any:
    return "bad" if bad else "good"


def record_id(event: SyntheticEvent, load: SourceLoad) -> str:
    found = load.ids.search(event.payload)
    assert found is not None
    return found.group().decode()


@dataclass
class Produced:
    """What one producer got acknowledged, by id; ``duplicated`` good ids were sent twice on
    purpose, ``resent`` ids again after a failed flush: the source may hold those twice."""

    good: set[str] = field(default_factory=set)
    bad: set[str] = field(default_factory=set)
    duplicated: set[str] = field(default_factory=set)
    resent: set[str] = field(default_factory=set)
    failure_notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.good) + len(self.bad)


class PacedProducer(threading.Thread):
    """Sends ``rate * factor`` records a second to one source until stopped."""

    def __init__(
        self,
        load: SourceLoad,
        rate: float,
        open_producer: Callable[[], tuple[Send, Sink]],
        gate: threading.Event,
    ) -> None:
        super().__init__(name=f"produce-{load.source}", daemon=True)
        self.load = load
        self.rate = rate
        self.factor = 1.0
        self.open_producer = open_producer
        self.gate = gate
        self.produced = Produced()
        self.stopping = threading.Event()
        self.error: BaseException | None = None
        # Held while records are on their way: a restart of the AWS server waits for it.
        self.in_flight = threading.Lock()
        self._lock = threading.Lock()
        self._next = 0
        self._last_good: SyntheticEvent | None = None

    def run(self) -> None:
        try:
            self._produce()
        except BaseException as exc:  # reported by the harness, which fails the run
            self.error = exc
            log.exception("producer for %s failed", self.load.source)

    def _produce(self) -> None:
        send, sink = self.open_producer()
        owed = 0.0
        last = time.monotonic()
        while not self.stopping.is_set():
            if self.load.on_aws and not self.gate.is_set():
                self.gate.wait(timeout=1)
                last = time.monotonic()
                continue
            now = time.monotonic()
            owed += (now - last) * self.rate * self.factor
            last = now
            count, owed = int(owed), owed - int(owed)
            events = [self._make() for _ in range(count)]
            send, sink = self._deliver(events, send, sink)
            self.stopping.wait(TICK_S)  # pacing: the next slice of the schedule
        with contextlib.suppress(Exception):
            sink.close()

    def _make(self) -> SyntheticEvent:
        n = self._next
        self._next += 1
        if self.load.duplicates and self._last_good and n % DUPLICATE_EVERY == DUPLICATE_EVERY // 2:
            return replace(self._last_good, kind="duplicate")
        event = self.load.make(n, n % BAD_EVERY == BAD_EVERY - 1)
        if event.kind == "good":
            self._last_good = event
        return event

    def _deliver(self, events: list[SyntheticEvent], send: Send, sink: Sink) -> tuple[Send, Sink]:
        while True:
            if self.load.on_aws:
                self.gate.wait()
            failure: Exception | None = None
            with self.in_flight:
                try:
                    for event in events:
                        send(event)
                    sink.flush()
                except Exception as exc:
                    failure = exc
            if failure is None:
                break
            if len(self.produced.failure_notes) < 5:
                self.produced.failure_notes.append(f"{time.strftime('%H:%M:%S')} {failure}")
            log.warning("producing to %s failed (%s); sending again", self.load.source, failure)
            self.produced.resent.update(record_id(e, self.load) for e in events)
            with contextlib.suppress(Exception):
                sink.close()
            self.stopping.wait(RETRY_PAUSE_S)  # back off before the next attempt
            send, sink = self.open_producer()
        with self._lock:
            for event in events:
                chosen = {"bad": self.produced.bad, "duplicate": self.produced.duplicated}
                chosen.get(event.kind, self.produced.good).add(record_id(event, self.load))
        return send, sink

    def count(self) -> int:
        with self._lock:
            return self.produced.total


def start_producers(
    pipeline: Pipeline,
    settings: Settings,
    aws: AwsEndpoint,
    rates: dict[str, float],
    seed: int,
    gate: threading.Event,
) -> dict[str, PacedProducer]:
    producers = {}
    for name, load in loads(seed).items():
        source = pipeline.sources[name]

        def open_producer(source: Any = source) -> tuple[Send, Sink]:
            return source_kind(source).producer(source, settings, aws)

        producers[name] = PacedProducer(load, rates[name], open_producer, gate)
    for producer in producers.values():
        producer.start()
    return producers
