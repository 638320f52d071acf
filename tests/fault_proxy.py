"""An HTTP proxy on 127.0.0.1 in front of the local AWS API server that fails a chosen share
of Firehose PutRecordBatch calls, as Firehose does under load: HTTP 500s, throttling
(ServiceUnavailableException), and partial answers (``FailedPutCount``: some records
refused, only the others passed on); on request, answers lost after delivery. It can
also hold calls (forwarding nothing) so a test can kill the client mid-call. Every other
request is passed through unchanged. Used by the export tests and the soak suite.

A test double only in the sense that it injects failures; the records it lets through are
delivered by the real (local) Firehose API."""

from __future__ import annotations

import http.client
import json
import random
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlparse

PUT_RECORD_BATCH = "Firehose_20150804.PutRecordBatch"
FAULTS = ("http500", "throttle", "partial")
# Not among the defaults, since it makes records arrive twice: the call is delivered, then
# answered with HTTP 500, as when Firehose's answer is lost on the way back.
LOST_ANSWER = "lost_answer"


@dataclass
class FaultPlan:
    """Which PutRecordBatch calls fail and how: each call fails with probability
    ``share``, by one of ``kinds`` chosen at random; with ``hold_after`` set, calls after
    that many forwarded ones are held until ``release``."""

    share: float = 0.0
    kinds: tuple[str, ...] = FAULTS
    hold_after: int | None = None
    seed: int = 0


@dataclass
class FaultCounts:
    forwarded_calls: int = 0
    records_forwarded: int = 0
    injected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FAULTS, 0))
    held: int = 0


class FaultProxy:
    def __init__(self, upstream: str, plan: FaultPlan | None = None) -> None:
        target = urlparse(upstream)
        self.upstream = (target.hostname or "127.0.0.1", target.port or 80)
        self.plan = plan or FaultPlan()
        self.counts = FaultCounts()
        self.random = random.Random(self.plan.seed)
        self.lock = threading.Lock()
        self.released = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()

    def release(self) -> None:
        """Held calls are answered with HTTP 500, forwarding nothing."""
        self.released.set()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("X-Amz-Target") == PUT_RECORD_BATCH:
                    status, headers, answer = proxy.put_record_batch(self, body)
                else:
                    status, headers, answer = proxy.forward(self, body)
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any  # noqa: N815

        return Handler

    def forward(
        self, request: BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(*self.upstream, timeout=60)
        headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
        headers["Content-Length"] = str(len(body))
        connection.request(request.command, request.path, body=body, headers=headers)
        response = connection.getresponse()
        answer = response.read()
        connection.close()
        return response.status, response.getheaders(), answer

    def put_record_batch(
        self, request: BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        with self.lock:
            plan = self.plan
            hold = plan.hold_after is not None and self.counts.forwarded_calls >= plan.hold_after
            fault = None
            if not hold and self.random.random() < plan.share:
                fault = self.random.choice(plan.kinds)
                self.counts.injected[fault] = self.counts.injected.get(fault, 0) + 1
            if hold:
                self.counts.held += 1
        if hold:
            self.released.wait()
            return error(500, "InternalFailure", "held, then dropped")
        if fault == "http500":
            return error(500, "InternalFailure", "injected")
        if fault == "throttle":
            return error(503, "ServiceUnavailableException", "Slow down (injected)")
        if fault == "partial":
            return self.partial(request, body)
        if fault == LOST_ANSWER:
            self.passed(request, body)
            return error(500, "InternalFailure", "delivered, answer lost (injected)")
        return self.passed(request, body)

    def passed(
        self, request: BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        status, headers, answer = self.forward(request, body)
        if status == 200:
            with self.lock:
                self.counts.forwarded_calls += 1
                self.counts.records_forwarded += len(json.loads(body)["Records"])
        return status, headers, answer

    def partial(
        self, request: BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Refuse a random part of the records (at least one); pass the others on."""
        call = json.loads(body)
        records = call["Records"]
        with self.lock:
            refused = set(
                self.random.sample(range(len(records)), self.random.randint(1, len(records)))
            )
        kept = [r for i, r in enumerate(records) if i not in refused]
        ids: list[str] = []
        if kept:
            status, _headers, answer = self.passed(
                request, json.dumps({**call, "Records": kept}).encode()
            )
            if status != 200:
                return error(status, "InternalFailure", "upstream failed")
            ids = [r["RecordId"] for r in json.loads(answer)["RequestResponses"]]
        responses = []
        for index in range(len(records)):
            if index in refused:
                responses.append(
                    {"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "injected"}
                )
            else:
                responses.append({"RecordId": ids.pop(0)})
        answer = {"FailedPutCount": len(refused), "Encrypted": False, "RequestResponses": responses}
        return 200, [("Content-Type", "application/x-amz-json-1.1")], json.dumps(answer).encode()


def error(status: int, code: str, message: str) -> tuple[int, list[tuple[str, str]], bytes]:
    body = json.dumps({"__type": code, "message": message}).encode()
    return status, [("Content-Type", "application/x-amz-json-1.1")], body
