"""The demo's Kinesis consumer: ``streamlake consume clickstream`` with the purchase-alert
handler, run in a background thread while the Spark jobs run, and its SNS alerts."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from connectors.aws import AwsEndpoint
from connectors.kinesis.kcl import ConsumerSpec, KclConsumer
from connectors.kinesis.purchase_alerts import EVENT
from streamlake.config.pipeline import KinesisSource, Pipeline
from streamlake.config.settings import Settings
from streamlake.paths import checkout_root, default_kcl_jars_dir
from streamlake.produce.events import EventMix, events_for

log = logging.getLogger(__name__)

SOURCE = "clickstream"
HANDLER = "connectors.kinesis.purchase_alerts:on_purchase"


def purchase_ids(mix: EventMix) -> set[str]:
    """The event ids of the well-formed purchase events ``mix`` sends to clickstream."""
    ids = set()
    for event in events_for(SOURCE, mix):
        if event.kind == "bad":
            continue
        body = json.loads(event.payload)
        if body.get("event_type") == EVENT:
            ids.add(body["event_id"])
    return ids


@dataclass
class PurchaseAlerts:
    """Runs the consumer from ``start`` to ``stop``; ``alerts`` are the purchase alerts
    taken from the demo's queue."""

    pipeline: Pipeline
    settings: Settings
    aws: AwsEndpoint
    alerts: list[dict[str, Any]] = field(default_factory=list)
    error: BaseException | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @property
    def application(self) -> str:
        return f"{self.pipeline.name}-demo-purchase-alerts"

    def available(self) -> bool:
        source = self.pipeline.sources.get(SOURCE)
        return isinstance(source, KinesisSource) and self.pipeline.notifications.topic is not None

    def start(self) -> None:
        source = self.pipeline.sources[SOURCE]
        assert isinstance(source, KinesisSource)
        spec = ConsumerSpec(
            application=self.application,
            stream=source.stream,
            handler=HANDLER,
            aws=self.aws,
            run_dir=self.settings.local.state_dir / "consume" / self.application,
            jars_dir=default_kcl_jars_dir(),
            topic=self.pipeline.notifications.topic,
            # From the oldest record on the first start (produced while the consumer was
            # still starting), from its checkpoints after that.
            initial_position="TRIM_HORIZON",
            search_path=checkout_root(),
        )
        self._thread = threading.Thread(
            target=self._run, args=(KclConsumer(spec),), name="demo-consumer", daemon=True
        )
        self._thread.start()

    def _run(self, consumer: KclConsumer) -> None:
        try:
            consumer.run(self._stop)
        except BaseException as exc:
            self.error = exc

    def take(self, notifications: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Keeps the purchase alerts among ``notifications``; returns the others."""
        others = []
        for notification in notifications:
            if notification["attributes"].get("event") == EVENT:
                self.alerts.append(notification)
            else:
                others.append(notification)
        return others

    def alerted_ids(self) -> set[str]:
        return {str(alert["message"].get("event_id")) for alert in self.alerts}

    def wait_for(self, expected: set[str], receive: Any, timeout_s: float) -> list[dict[str, Any]]:
        """Takes notifications (``receive()``) until every expected purchase was alerted,
        the consumer failed, or ``timeout_s`` passed; returns the other notifications."""
        others: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout_s
        while True:
            others += self.take(receive())
            missing = expected - self.alerted_ids()
            if not missing or self.error is not None or time.monotonic() > deadline:
                return others
            time.sleep(1.0)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(90)
