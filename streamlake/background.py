"""Sending on the side: items handed over by any thread (Spark's listener, batch threads)
are sent by one thread of their own, so that a slow or unreachable service never holds up
a job."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)


class BackgroundSender(Generic[T]):
    """Calls ``send`` on a thread named ``name`` with everything queued since its last call,
        in the order it came (so a sender may batch it); ``send`` counts its own failures, and
    one that raises is logged, the thread going on."""

    def __init__(self, name: str, send: Callable[[list[T]], None]) -> None:
        self._send = send
        self._name = name
        self._queue: queue.Queue[T | None] = queue.Queue()
        self._thread = threading.Thread(target=self._drain, name=name, daemon=True)
        self._thread.start()

    def put(self, item: T) -> None:
        self._queue.put(item)

    def close(self, timeout_s: float) -> list[T]:
        """Send what is queued, waiting at most ``timeout_s``; what is still queued then (not
        sent, and not to be)."""
        self._queue.put(None)
        self._thread.join(timeout_s)
        if not self._thread.is_alive():
            return []
        return [item for item in list(self._queue.queue) if item is not None]

    def _drain(self) -> None:
        while True:
            items: list[T] = []
            item = self._queue.get()
            while item is not None:
                items.append(item)
                if self._queue.empty():
                    break
                item = self._queue.get()
            if items:
                try:
                    self._send(items)
                except Exception:  # the thread goes on: later items are still sent
                    log.exception("%s could not send %s items", self._name, len(items))
            if item is None:
                return
