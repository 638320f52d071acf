"""The record processor the KCL MultiLangDaemon starts for each shard it leases:
``python -m connectors.kinesis.kcl_processor <processor.json>``.

It speaks the MultiLang protocol on stdin and stdout through amazon-kclpy, calls the
consumer's handler for every record of a batch, then checkpoints the batch's last record.
A handler that raises ends the process without a checkpoint, so the batch is read again
on the next start. What it does is appended to the consumer's event log.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from datetime import UTC
from pathlib import Path
from typing import Any, TextIO

from amazon_kclpy import kcl
from amazon_kclpy.checkpoint_error import CheckpointError
from amazon_kclpy.v3 import processor

from connectors.aws import AwsEndpoint
from connectors.kinesis.kcl import (
    ConsumerContext,
    EventLog,
    Handler,
    KinesisRecord,
    resolve_handler,
)
from streamlake.errors import first_line

log = logging.getLogger(__name__)

CHECKPOINT_ATTEMPTS = 5


class HandlerProcessor(processor.RecordProcessorBase):  # type: ignore[misc]
    """One shard's processor; each hook is called by kclpy when the daemon says so."""

    def __init__(self, handler: Handler, config: dict[str, Any], events: EventLog) -> None:
        self.handler = handler
        self.config = config
        self.events = events
        self.aws = AwsEndpoint.from_options(config["aws"])
        self.shard_id = ""
        self.context: ConsumerContext | None = None

    def initialize(self, initialize_input: Any) -> None:
        """Called once, when the daemon hands this process a shard."""
        self.shard_id = initialize_input.shard_id
        self.context = ConsumerContext(
            application=self.config["application"],
            stream=self.config["stream"],
            shard_id=self.shard_id,
            aws=self.aws,
            topic=self.config.get("topic"),
        )
        self.events.write(event="started", shard=self.shard_id)

    def process_records(self, process_records_input: Any) -> None:
        """Called for each batch read from the shard."""
        assert self.context is not None, "initialize comes first"
        records = process_records_input.records
        last: Any = None
        for raw in records:
            try:
                record = self._record(raw)
                self.handler(record, self.context)
            except Exception as exc:
                self._fail(raw.sequence_number, exc)
            last = raw
        self.events.write(event="batch", shard=self.shard_id, records=len(records))
        if last is not None:
            self._checkpoint(
                process_records_input.checkpointer,
                last.sequence_number,
                int(last.sub_sequence_number or 0),
            )

    def _record(self, raw: Any) -> KinesisRecord:
        assert self.context is not None
        arrival = raw.approximate_arrival_timestamp  # kclpy's is in the host's zone
        return KinesisRecord(
            stream=self.context.stream,
            shard_id=self.shard_id,
            sequence_number=raw.sequence_number,
            sub_sequence_number=int(raw.sub_sequence_number or 0),
            partition_key=raw.partition_key,
            arrival=arrival.astimezone(UTC) if arrival is not None else None,
            data=raw.binary_data,
        )

    def lease_lost(self, lease_lost_input: Any) -> None:
        """Called when another worker took the shard: no checkpoint is possible any more."""
        self.events.write(event="ended", shard=self.shard_id, reason="lease lost")

    def shard_ended(self, shard_ended_input: Any) -> None:
        """Called when the shard was split or merged and read to its end."""
        self._checkpoint(shard_ended_input.checkpointer, None, None)
        self.events.write(event="ended", shard=self.shard_id, reason="shard ended")

    def shutdown_requested(self, shutdown_requested_input: Any) -> None:
        """Called on the daemon's graceful shutdown (SIGTERM): what was handled is already
        checkpointed, batch by batch."""
        self.events.write(event="ended", shard=self.shard_id, reason="shutdown")

    def _checkpoint(self, checkpointer: Any, sequence: str | None, sub: int | None) -> None:
        for attempt in range(1, CHECKPOINT_ATTEMPTS + 1):
            try:
                checkpointer.checkpoint(sequence, sub)
            except CheckpointError as exc:
                if exc.value == "ThrottlingException" and attempt < CHECKPOINT_ATTEMPTS:
                    time.sleep(0.2 * 2**attempt)
                    continue
                if exc.value == "ShutdownException":
                    log.info("shard %s: lease lost before the checkpoint", self.shard_id)
                    return
                raise
            else:
                if sequence is not None:
                    self.events.write(event="checkpointed", shard=self.shard_id, sequence=sequence)
                return

    def _fail(self, sequence: str, exc: Exception) -> None:
        # kclpy reports any other exception as a finished batch; exiting, whatever happens
        # on the way, is what keeps the daemon from reading on past a batch not handled.
        try:
            log.error("handler failed on %s %s", self.shard_id, sequence, exc_info=exc)
            self.events.write(
                event="failed",
                shard=self.shard_id,
                sequence=sequence,
                error=f"{type(exc).__name__}: {first_line(exc)}",
            )
        finally:
            raise SystemExit(1)


def watch_parent(every_s: float = 1.0) -> None:
    """Ends this process when the daemon that started it is gone (killed outright): a
    handler busy in a long call would otherwise never read the closed stdin and live on."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every_s)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: list[str]) -> int:
    config = json.loads(Path(argv[1]).read_text())
    logging.basicConfig(
        filename=config["log_file"],
        level=logging.INFO,
        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s",
    )
    watch_parent()
    events = EventLog(Path(config["events_file"]))
    handler = resolve_handler(config["handler"], Path(config["search_path"]))
    # stdout is the protocol's channel: what the handler prints goes to stderr instead.
    protocol_out: TextIO = sys.stdout
    sys.stdout = sys.stderr
    kcl.KCLProcess(
        HandlerProcessor(handler, config, events),
        input_file=sys.stdin,
        output_file=protocol_out,
        error_file=sys.stderr,
    ).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
