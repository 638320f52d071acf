"""A stand-in for Confluent's Schema Registry, which cannot run here (it is on neither
Maven Central nor PyPI): only the two endpoints streamlake calls, with the real registry's
status codes and error bodies."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


class ConfluentDouble(ThreadingHTTPServer):
    """Schema ids are global and an identical schema keeps its id, as in the real registry;
    ``fail_with`` makes every request answer that status."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ConfluentHandler)
        self.schemas: dict[str, tuple[int, str]] = {}  # normalized text -> (id, text)
        self.fail_with: int | None = None
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class ConfluentHandler(BaseHTTPRequestHandler):
    server: ConfluentDouble

    def do_POST(self) -> None:
        parts = self.path.strip("/").split("/")
        if self._failing():
            return
        if len(parts) != 3 or parts[0] != "subjects" or parts[2] != "versions":
            return self._answer(404, {"error_code": 404, "message": "HTTP 404 Not Found"})
        definition = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["schema"]
        try:
            # The real registry compares parsed schemas, not text.
            key = json.dumps(json.loads(definition), sort_keys=True)
        except ValueError:
            return self._answer(422, {"error_code": 42201, "message": "Invalid schema"})
        with self.server.lock:
            schema_id, _ = self.server.schemas.setdefault(
                key, (len(self.server.schemas) + 1, definition)
            )
        self._answer(200, {"id": schema_id})

    def do_GET(self) -> None:
        prefix = "/schemas/ids/"
        if self._failing():
            return
        if self.path.startswith(prefix):
            wanted = int(self.path.removeprefix(prefix))
            for schema_id, definition in self.server.schemas.values():
                if schema_id == wanted:
                    return self._answer(200, {"schema": definition})
        self._answer(404, {"error_code": 40403, "message": "Schema not found"})

    def _failing(self) -> bool:
        status = self.server.fail_with
        if status is not None:
            self._answer(status, {"error_code": 50001, "message": "Error in the backend"})
        return status is not None

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the test output quiet


@pytest.fixture
def confluent_double() -> Iterator[ConfluentDouble]:
    server = ConfluentDouble()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
