"""Distinct order events for the benchmark, and a paced Kafka load producer.

Every event has its own order id, so the process job's deduplication keeps them all; the
documents come from a few thousand templates of about 1 KB whose order id is replaced.
Records go through Kafka's console producer (a JVM client) fed on stdin.
"""

from __future__ import annotations

import json
import random
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import psutil

from streamlake.local.kafka_broker import KafkaBroker
from streamlake.produce.events import order

TEMPLATES = 5_000


def order_payloads(count: int, size: int = 1000, seed: int = 1) -> list[bytes]:
    """Realistic order JSON documents of about ``size`` bytes (more line items)."""
    rng = random.Random(seed)
    payloads = []
    now = datetime.now(UTC)
    for _ in range(count):
        document = order(rng, now)
        while len(json.dumps(document)) < size - 60:
            document["items"].append(
                dict(document["items"][0], sku=f"sku-{rng.randint(1, 999):04d}")
            )
        payloads.append(json.dumps(document).encode())
    return payloads


def distinct_orders(count: int, first: int = 0, size: int = 1000) -> Iterator[bytes]:
    """``count`` order documents with order ids ``first``.. (as UUIDs), about ``size`` bytes."""
    templates = order_payloads(TEMPLATES, size)
    template_ids = [json.loads(t)["order_id"].encode() for t in templates]
    for n in range(first, first + count):
        index = n % TEMPLATES
        order_id = str(uuid.UUID(int=n + 1, version=4)).encode()
        yield templates[index].replace(template_ids[index], order_id, 1)


def console_producer(
    broker: KafkaBroker, bootstrap_servers: str, topic: str
) -> subprocess.Popen[bytes]:
    """Kafka's own console producer, fed one JSON document per line on stdin: a JVM client
    keeps up with rates a Python client cannot reach on this machine. Each record's Kafka
    timestamp is set when the client sends it (CreateTime)."""
    command = broker.jvm_command(
        "org.apache.kafka.tools.ConsoleProducer",
        "--bootstrap-server",
        bootstrap_servers,
        "--topic",
        topic,
        "--producer-property",
        "acks=1",
        "--producer-property",
        "linger.ms=5",
        "--producer-property",
        "batch.size=262144",
    )
    return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)


def finish(client: subprocess.Popen[bytes]) -> None:
    assert client.stdin is not None
    client.stdin.close()
    if client.wait(timeout=600) != 0:
        raise RuntimeError(f"the Kafka console producer exited with {client.returncode}")


def send_all(broker: KafkaBroker, bootstrap_servers: str, topic: str, count: int) -> float:
    """Send ``count`` distinct orders as fast as the client goes; return the seconds taken."""
    client = console_producer(broker, bootstrap_servers, topic)
    assert client.stdin is not None
    started = time.monotonic()
    for payload in distinct_orders(count):
        client.stdin.write(payload + b"\n")
    finish(client)
    return time.monotonic() - started


@dataclass(frozen=True)
class Paced:
    """What a paced load sent, and the CPU it took (the producer JVM and the thread that
    feeds it): what the load generator takes from the pipeline's cores."""

    sent: int
    seconds: float
    cpu_s: float

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


def send_paced(
    broker: KafkaBroker, bootstrap_servers: str, topic: str, rate: float, seconds: float, first: int
) -> Paced:
    """Send distinct orders at ``rate`` per second for ``seconds``."""
    client = console_producer(broker, bootstrap_servers, topic)
    assert client.stdin is not None
    total = int(rate * seconds)
    orders = distinct_orders(total, first)
    feeder_cpu = time.thread_time()
    started = time.monotonic()
    sent = 0
    while sent < total:
        due = min(total, int(rate * (time.monotonic() - started)))
        while sent < due:
            client.stdin.write(next(orders) + b"\n")
            sent += 1
        client.stdin.flush()
        time.sleep(0.005)  # pacing, not synchronisation: the next slice of the schedule
    elapsed = time.monotonic() - started
    feeder_cpu = time.thread_time() - feeder_cpu
    producer_cpu = process_cpu_s(client.pid)
    finish(client)
    return Paced(sent, elapsed, feeder_cpu + producer_cpu)


def process_cpu_s(pid: int) -> float:
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)
