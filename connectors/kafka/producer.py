"""A Kafka producer for synthetic and replayed records (kafka-python).

Delivery: acks=all with idempotence, so a retried send is written once per partition;
``acked`` counts records the broker confirmed, ``failed`` those it did not.
"""

from __future__ import annotations

import logging
from typing import Any

from streamlake.errors import StreamlakeError

log = logging.getLogger(__name__)


class KafkaRecordProducer:
    def __init__(self, client: dict[str, Any], topic: str) -> None:
        """``client``: kafka-python's connection settings (``client_config``)."""
        from kafka import KafkaProducer

        self.topic = topic
        self.sent = 0
        self.acked = 0
        self.failed = 0
        self.last_error: Exception | None = None
        self._producer = KafkaProducer(
            **client,
            acks="all",
            enable_idempotence=True,
            linger_ms=10,
            batch_size=256 * 1024,
            compression_type=None,
        )

    def send(self, key: bytes | None, value: bytes) -> None:
        future = self._producer.send(self.topic, key=key, value=value)
        future.add_callback(self._on_ack)
        future.add_errback(self._on_error)
        self.sent += 1

    def _on_ack(self, _metadata: Any) -> None:
        self.acked += 1

    def _on_error(self, error: Exception) -> None:
        self.failed += 1
        self.last_error = error

    def flush(self, timeout_s: float = 60.0) -> None:
        self._producer.flush(timeout=timeout_s)
        if self.failed:
            raise StreamlakeError(
                f"{self.failed} of {self.sent} records to Kafka topic {self.topic} failed: "
                f"{self.last_error}",
                "check the broker and the topic, then produce again",
                retryable=True,
            )

    def close(self) -> None:
        self._producer.close(timeout=30)
