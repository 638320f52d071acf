"""The background sender: everything handed over is sent once, in order, batched as it
queued up; a send that hangs costs ``close`` its bounded wait and leaves what was queued
reported, not lost silently."""

from __future__ import annotations

import threading

from streamlake.background import BackgroundSender


def test_items_are_sent_once_in_order_in_batches_of_what_queued() -> None:
    sent: list[list[int]] = []
    gate = threading.Event()

    def send(items: list[int]) -> None:
        gate.wait(5)  # the first call holds until the rest has queued up
        sent.append(items)

    sender = BackgroundSender[int]("test-sender", send)
    for n in range(10):
        sender.put(n)
    gate.set()
    assert sender.close(5) == []
    assert [n for batch in sent for n in batch] == list(range(10))
    assert len(sent) < 10  # what queued behind the first call went in one


def test_close_returns_what_a_hung_send_left_queued() -> None:
    hung, called = threading.Event(), threading.Event()

    def send(items: list[str]) -> None:
        called.set()
        hung.wait(30)

    sender = BackgroundSender[str]("test-hung", send)
    sender.put("first")
    assert called.wait(5)  # the first is in flight, in a call that hangs
    sender.put("second")
    sender.put("third")
    try:
        left = sender.close(0.5)
    finally:
        hung.set()
    assert left == ["second", "third"]


def test_a_send_that_raises_does_not_stop_the_ones_after_it() -> None:
    sent: list[int] = []
    first = threading.Event()

    def send(items: list[int]) -> None:
        if not first.is_set():
            first.set()
            raise RuntimeError("the service is down")
        sent.extend(items)

    sender = BackgroundSender[int]("test-raising", send)
    sender.put(1)
    assert first.wait(5)
    sender.put(2)
    assert sender.close(5) == []
    assert sent == [2]
