"""Distinct order events for the benchmark, and a paced Kafka load producer.

Every event has its own order id, so the process job's deduplication keeps them all; the
documents come from a few thousand templates of about 1 KB whose order id is replaced.
Run as ``python -m bench.load`` the producer works in a process of its own, so its Python
does not compete with the Spark driver's for the interpreter lock.
"""

from __future__ import annotations

import json
import random
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated

import typer

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


def producer(bootstrap_servers: str) -> object:
    from kafka import KafkaProducer

    return KafkaProducer(
        bootstrap_servers=bootstrap_servers,
        acks=1,
        linger_ms=5,
        batch_size=256 * 1024,
        max_in_flight_requests_per_connection=5,
    )


def send_all(bootstrap_servers: str, topic: str, count: int) -> float:
    """Send ``count`` distinct orders as fast as the client goes; return the seconds taken."""
    client = producer(bootstrap_servers)
    started = time.monotonic()
    for payload in distinct_orders(count):
        client.send(topic, value=payload)  # type: ignore[attr-defined]
    client.flush(timeout=300)  # type: ignore[attr-defined]
    client.close(timeout=30)  # type: ignore[attr-defined]
    return time.monotonic() - started


def send_paced(bootstrap_servers: str, topic: str, rate: float, seconds: float, first: int) -> int:
    """Send distinct orders at ``rate`` per second for ``seconds``; return how many were sent.

    Each record's Kafka timestamp is the moment it was handed to the client (CreateTime):
    the start of the end-to-end latency."""
    client = producer(bootstrap_servers)
    orders = distinct_orders(int(rate * seconds) + 1, first)
    started = time.monotonic()
    sent = 0
    while (elapsed := time.monotonic() - started) < seconds:
        due = min(int(rate * elapsed), int(rate * seconds))
        while sent < due:
            client.send(topic, value=next(orders))  # type: ignore[attr-defined]
            sent += 1
        time.sleep(0.002)  # pacing, not synchronisation: the next slice of the schedule
    client.flush(timeout=300)  # type: ignore[attr-defined]
    client.close(timeout=30)  # type: ignore[attr-defined]
    return sent


def main(
    bootstrap_servers: Annotated[str, typer.Option()],
    topic: Annotated[str, typer.Option()],
    rate: Annotated[float, typer.Option(help="Records per second.")],
    seconds: Annotated[float, typer.Option(help="How long to produce.")],
    first: Annotated[int, typer.Option(help="Order number to start from.")] = 0,
) -> None:
    """Produce distinct orders at a steady rate; print the count sent as JSON."""
    started = time.monotonic()
    sent = send_paced(bootstrap_servers, topic, rate, seconds, first)
    json.dump({"sent": sent, "seconds": round(time.monotonic() - started, 3)}, sys.stdout)


if __name__ == "__main__":
    typer.run(main)
