"""Synthetic events for the `shop` sources, with bad and duplicate records mixed in on demand.

Every generator is deterministic for a seed, so a test or a benchmark can produce the same
events twice. Bad records are of the kinds the processed layer must quarantine: bytes that
are not JSON, truncated JSON, wrong types, missing fields, values outside the rules.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

COUNTRIES = ("DE", "FR", "PL", "SE", "GB", "US", "ES", "IT", "NL")
CURRENCIES = ("EUR", "USD", "GBP", "SEK", "PLN")
STATUSES = ("created", "paid", "shipped", "delivered", "cancelled")
EVENT_TYPES = ("page_view", "add_to_cart", "checkout", "purchase")
TIERS = ("bronze", "silver", "gold")
FIRST_NAMES = ("Ada", "Alan", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Dennis")
LAST_NAMES = ("Lovelace", "Turing", "Hopper", "Torvalds", "Hamilton", "Thompson", "Liskov")

Kind = Literal["good", "bad", "duplicate"]
Op = Literal["put", "delete"]


@dataclass(frozen=True)
class SyntheticEvent:
    """One event to send. ``item`` is set for table sources (DynamoDB), ``payload`` always."""

    key: str
    payload: bytes
    kind: Kind = "good"
    op: Op = "put"
    item: dict[str, Any] | None = None


@dataclass
class EventMix:
    count: int
    bad_ratio: float = 0.0
    duplicate_ratio: float = 0.0
    seed: int = 0
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)


def uuid4(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def iso(ts: datetime) -> str:
    return ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def order(rng: random.Random, now: datetime) -> dict[str, Any]:
    lines = [(rng.randint(1, 5), round(rng.uniform(1, 250), 2)) for _ in range(rng.randint(1, 4))]
    items = [
        {"sku": f"sku-{rng.randint(1, 999):04d}", "qty": qty, "price": f"{price:.2f}"}
        for qty, price in lines
    ]
    amount = sum(qty * price for qty, price in lines)
    return {
        "order_id": uuid4(rng),
        "customer_id": f"c-{rng.randint(1, 5000):06d}",
        "country": rng.choice(COUNTRIES),
        "items": items,
        "amount": f"{amount:.2f}",
        "currency": rng.choice(CURRENCIES),
        "status": rng.choice(STATUSES),
        "created_at": iso(now - timedelta(milliseconds=rng.randint(0, 5000))),
    }


def click(rng: random.Random, now: datetime) -> dict[str, Any]:
    customer = f"c-{rng.randint(1, 5000):06d}" if rng.random() < 0.6 else None
    return {
        "event_id": uuid4(rng),
        "session_id": f"s-{rng.randint(1, 20000):07d}",
        "customer_id": customer,
        "event_type": rng.choices(EVENT_TYPES, weights=(70, 18, 8, 4))[0],
        "url": f"https://shop.example/p/{rng.randint(1, 999)}",
        "ts": iso(now - timedelta(milliseconds=rng.randint(0, 2000))),
    }


def customer(rng: random.Random, now: datetime, customer_id: str) -> dict[str, Any]:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    return {
        "customer_id": customer_id,
        "name": f"{first} {last}",
        "email": f"{first}.{last}{rng.randint(1, 99)}@mail.example".lower(),
        "country": rng.choice(COUNTRIES),
        "tier": rng.choice(TIERS),
        "updated_at": iso(now),
    }


def spoil(record: dict[str, Any], rng: random.Random, id_field: str) -> bytes:
    """A record the processed layer must quarantine, of a randomly chosen kind."""
    choice = rng.randrange(5)
    if choice == 0:
        return b"\xff\xfe not json at all \x00"
    text = json.dumps(record)
    if choice == 1:
        return text[: max(1, len(text) // 2)].encode()
    broken = dict(record)
    if choice == 2:
        broken.pop(id_field)
    elif choice == 3:
        first_text_field = next(
            k for k, v in broken.items() if isinstance(v, str) and k != id_field
        )
        broken[first_text_field] = {"unexpected": [1, 2, 3]}
    else:
        broken[id_field] = None
    return json.dumps(broken).encode()


def json_events(
    mix: EventMix,
    make: Callable[[random.Random, datetime], dict[str, Any]],
    id_field: str,
    key_field: str,
) -> Iterator[SyntheticEvent]:
    rng = mix.rng
    sent: list[SyntheticEvent] = []
    for _ in range(mix.count):
        draw = rng.random()
        if sent and draw < mix.duplicate_ratio:
            original = rng.choice(sent)
            yield SyntheticEvent(original.key, original.payload, "duplicate")
            continue
        record = make(rng, datetime.now(UTC))
        key = str(record.get(key_field) or record[id_field])
        if draw < mix.duplicate_ratio + mix.bad_ratio:
            yield SyntheticEvent(key, spoil(record, rng, id_field), "bad")
            continue
        event = SyntheticEvent(key, json.dumps(record).encode())
        if len(sent) < 10_000:
            sent.append(event)
        yield event


def customer_changes(mix: EventMix) -> Iterator[SyntheticEvent]:
    """Inserts, updates and deletes of customer items, about 50/35/15 once some exist."""
    rng = mix.rng
    known: list[str] = []
    for _ in range(mix.count):
        now = datetime.now(UTC)
        draw = rng.random()
        if known and draw < 0.15:
            customer_id = known.pop(rng.randrange(len(known)))
            yield SyntheticEvent(customer_id, b"", op="delete", item={"customer_id": customer_id})
            continue
        if known and draw < 0.5:
            customer_id = rng.choice(known)
        else:
            customer_id = f"c-{uuid4(rng)[:12]}"
            known.append(customer_id)
        item = customer(rng, now, customer_id)
        kind: Kind = "good"
        if rng.random() < mix.bad_ratio:
            item["email"] = "not-an-email"
            item["tier"] = "platinum-plus"
            kind = "bad"
        yield SyntheticEvent(customer_id, json.dumps(item).encode(), kind, "put", item)


RETURN_REASONS = ("damaged", "wrong_size", "not_as_described", "changed_mind")


def returned_item(rng: random.Random, now: datetime) -> dict[str, Any]:
    return {
        "return_id": uuid4(rng),
        "order_id": uuid4(rng),
        "sku": f"SKU-{rng.randrange(1000, 9999)}",
        "qty": rng.randint(1, 3),
        "reason": rng.choice(RETURN_REASONS),
        "amount": f"{rng.uniform(5, 400):.2f}",
        "currency": rng.choice(CURRENCIES),
        "returned_at": iso(now - timedelta(minutes=rng.randrange(0, 30))),
    }


def csv_line(values: list[str]) -> bytes:
    return ",".join(values).encode()


def spoil_csv(record: dict[str, Any], rng: random.Random) -> bytes:
    """A CSV record the processed layer must quarantine."""
    values = [str(v) for v in record.values()]
    choice = rng.randrange(4)
    if choice == 0:
        return csv_line(values[:-2])  # too few fields
    if choice == 1:
        values[3] = "two"  # qty not a number
    elif choice == 2:
        values[0] = ""  # no return id
    else:
        values[5] = f"-{values[5]}"  # a negative amount
    return csv_line(values)


def csv_returns(mix: EventMix) -> Iterator[SyntheticEvent]:
    """Returned items as CSV records (``item`` holds the row, whose keys are the header)."""
    rng = mix.rng
    sent: list[SyntheticEvent] = []
    for _ in range(mix.count):
        record = returned_item(rng, datetime.now(UTC))
        draw = rng.random()
        if sent and draw < mix.duplicate_ratio:
            original = rng.choice(sent)
            yield SyntheticEvent(original.key, original.payload, "duplicate", item=original.item)
            continue
        if draw < mix.duplicate_ratio + mix.bad_ratio:
            yield SyntheticEvent(record["return_id"], spoil_csv(record, rng), "bad", item=record)
            continue
        event = SyntheticEvent(
            record["return_id"], csv_line([str(v) for v in record.values()]), item=record
        )
        if len(sent) < 10_000:
            sent.append(event)
        yield event


CATEGORIES = ("apparel", "footwear", "accessories", "outdoor")
PRODUCT_WORDS = ("Trail", "Linen", "Merino", "Canvas", "Harbor", "Alpine", "Summit", "Coastal")
PRODUCT_THINGS = ("Jacket", "Sneaker", "Backpack", "Scarf", "Boot", "Cap", "Shirt", "Tent")


def product(rng: random.Random, now: datetime, product_id: str) -> dict[str, Any]:
    """A product row as the database holds it (typed values, not text)."""
    return {
        "product_id": product_id,
        "name": f"{rng.choice(PRODUCT_WORDS)} {rng.choice(PRODUCT_THINGS)}",
        "category": rng.choice(CATEGORIES),
        "price": Decimal(f"{rng.uniform(5, 300):.2f}"),
        "stock": rng.randint(0, 500),
        "updated_at": now,
    }


def product_changes(mix: EventMix) -> Iterator[SyntheticEvent]:
    """New products and changes to known ones (price, stock), about 60/40 once some exist;
    a bad one breaks a rule (a negative price, an unknown category), as a database with
    typed columns lets through."""
    rng = mix.rng
    known: list[str] = []
    for _ in range(mix.count):
        now = datetime.now(UTC)
        if known and rng.random() < 0.4:
            product_id = rng.choice(known)
        else:
            product_id = f"p-{uuid4(rng)[:12]}"
            known.append(product_id)
        item = product(rng, now, product_id)
        kind: Kind = "good"
        if rng.random() < mix.bad_ratio:
            item["price"] = -item["price"]
            item["category"] = "unknown"
            kind = "bad"
        yield SyntheticEvent(product_id, json.dumps(item, default=str).encode(), kind, item=item)


GENERATORS: dict[str, Callable[[EventMix], Iterator[SyntheticEvent]]] = {
    "products": product_changes,
    "returns": csv_returns,
    "orders": lambda mix: json_events(mix, order, "order_id", "customer_id"),
    "clickstream": lambda mix: json_events(mix, click, "event_id", "session_id"),
    "customers": customer_changes,
}
GENERATED_SOURCES = tuple(GENERATORS)


def events_for(source: str, mix: EventMix) -> Iterator[SyntheticEvent]:
    return GENERATORS[source](mix)
