"""HTTP/2 in front of the local AWS API server, for clients that speak nothing else.

The Kinesis Client Library builds its Kinesis client for HTTP/2 only (Kinesis on AWS
serves it over TLS). Pointed at a plain ``http://`` endpoint it sends HTTP/2 with prior
knowledge, which the local server (HTTP/1.1) cannot read. The front accepts HTTP/2
cleartext (and HTTP/1.1) on 127.0.0.1 and passes each request on to the server unchanged,
the same bytes to the same path, so the server sees what any other client sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import logging
import socket
import threading
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

# Hop-by-hop headers (and the length, which the front sets itself) are not passed on.
HOP_HEADERS = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "upgrade", "host"}
)
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Http2Front:
    """Serves HTTP/2 cleartext on ``127.0.0.1:<port>`` (a free one unless given) in a
    background thread and forwards every request to ``upstream`` (``http://host:port``)."""

    def __init__(self, upstream: str, port: int = 0, timeout_s: float = 60.0) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the front forwards to a plain http:// endpoint, not {upstream}")
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port or 80
        self.timeout_s = timeout_s
        self.port = port
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def error(self) -> BaseException | None:
        """What stopped the front, if it stopped by itself."""
        return self._error

    def start(self, timeout_s: float = 10.0) -> Http2Front:
        """Returns once the front's socket listens (connections wait in its backlog until
        the server takes them)."""
        self._thread = threading.Thread(target=self._run, name="h2c-front", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s) or self._error is not None:
            raise RuntimeError(f"the HTTP/2 front did not start: {self._error}")
        log.info("HTTP/2 front on %s for %s:%s", self.url, self.upstream_host, self.upstream_port)
        return self

    def stop(self) -> None:
        """Stops serving; called once the daemon that used it has stopped."""
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> Http2Front:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        from hypercorn.asyncio import serve
        from hypercorn.config import Config

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        # Bound and listening here, then handed to hypercorn: the port is known, and no
        # other process can take it in between.
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self.port = listener.getsockname()[1]
        config = Config()
        config.bind = [f"fd://{listener.detach()}"]
        config.accesslog = None
        config.errorlog = logging.getLogger("hypercorn.error")
        config.keep_alive_timeout = 600
        self._loop.call_soon(self._ready.set)
        await serve(self._app, config, shutdown_trigger=self._stop.wait)  # type: ignore[arg-type]

    async def _app(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["raw_path"].decode("latin-1")
        if scope["query_string"]:
            path += "?" + scope["query_string"].decode("latin-1")
        headers = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if not name.startswith(b":") and name.decode("latin-1").lower() not in HOP_HEADERS
        }
        status, answer_headers, answer = await asyncio.to_thread(
            self._forward, scope["method"], path, headers, bytes(body)
        )
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (name.lower().encode("latin-1"), value.encode("latin-1"))
                    for name, value in answer_headers
                    if name.lower() not in HOP_HEADERS
                ]
                + [(b"content-length", str(len(answer)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(
            self.upstream_host, self.upstream_port, timeout=self.timeout_s
        )
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        except OSError as exc:
            log.warning("HTTP/2 front: %s %s failed upstream: %s", method, path, exc)
            return 502, [("content-type", "text/plain")], str(exc).encode()
        finally:
            connection.close()
