"""Avro schemas in a Confluent Schema Registry, over its REST API (standard library HTTP).

Guarantees: ``register`` is idempotent (the registry gives an identical definition the id
it already has, in any subject). Lookups are cached for the life of the object: a schema
id always names the same definition. Unreachable, overloaded (429) or failing (5xx)
registries raise a retryable ServiceError; other refusals are terminal.
"""

from __future__ import annotations

import json
from http.client import HTTPException
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import quote
from urllib.request import Request, urlopen

from connectors.schema_registry.registry import SchemaNotFoundError
from connectors.schema_registry.wire import Wire, frame_confluent
from streamlake.errors import ResourceError, ServiceError, StreamlakeError

SERVICE = "schema registry"
CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class ConfluentSchemaRegistry:
    """One Confluent Schema Registry at ``url``; refs are schema ids as decimal strings."""

    wire: Wire = "confluent"

    def __init__(self, url: str, timeout_s: float = 10) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._definitions: dict[str, str] = {}

    def register(self, name: str, definition: str) -> str:
        """Register ``definition`` under subject ``name``; return its schema id."""
        path = f"/subjects/{quote(name, safe='')}/versions"
        try:
            response = self._send("POST", path, {"schema": definition})
        except HTTPError as exc:
            raise self._refused(exc, "Confluent subject", name) from exc
        return str(response["id"])

    def schema(self, ref: str) -> str:
        """The definition of schema id ``ref``; SchemaNotFoundError if the registry has none."""
        key = str(_schema_id(ref))
        if key not in self._definitions:
            try:
                response = self._send("GET", f"/schemas/ids/{key}")
            except HTTPError as exc:
                if exc.code == 404:
                    raise SchemaNotFoundError(
                        _registry_message(exc),
                        f"was the payload written through another registry than {self.url}?",
                        kind="Confluent schema id",
                        name=ref,
                    ) from exc
                raise self._refused(exc, "Confluent schema id", ref) from exc
            self._definitions[key] = response["schema"]
        return self._definitions[key]

    def frame(self, ref: str, body: bytes) -> bytes:
        return frame_confluent(_schema_id(ref), body)

    def _send(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        """The decoded JSON answer; HTTPError for an error status, ServiceError when the
        registry cannot be reached or does not answer JSON."""
        data = json.dumps(payload).encode() if payload is not None else None
        request = Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Content-Type": CONTENT_TYPE, "Accept": CONTENT_TYPE},
        )
        try:
            with urlopen(request, timeout=self.timeout_s) as response:
                raw = response.read()
        except HTTPError:
            raise
        except (URLError, TimeoutError, ConnectionError, HTTPException) as exc:
            reason = exc.reason if isinstance(exc, URLError) else exc
            raise ServiceError(
                f"unreachable: {reason}", service=SERVICE, address=self.url, retryable=True
            ) from exc
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ServiceError(
                f"{method} {path} answered with something that is not JSON",
                "is the URL a Confluent Schema Registry?",
                service=SERVICE,
                address=self.url,
            ) from exc

    def _refused(self, exc: HTTPError, kind: str, name: str) -> StreamlakeError:
        message = f"HTTP {exc.code}: {_registry_message(exc)}"
        # 429 is throttling: as transient as a 5xx, whatever its class.
        if exc.code >= 500 or exc.code == 429:
            return ServiceError(message, service=SERVICE, address=self.url, retryable=True)
        return ResourceError(message, kind=kind, name=name)


def _schema_id(ref: str) -> int:
    """``ref`` as a schema id; SchemaNotFoundError if it cannot be one."""
    if not (ref.isascii() and ref.isdigit()):
        raise SchemaNotFoundError(
            "not a schema id",
            "Confluent schema ids are decimal integers",
            kind="Confluent schema id",
            name=ref,
        )
    return int(ref)


def _registry_message(exc: HTTPError) -> str:
    """The registry's own ``message`` field, else the HTTP reason."""
    try:
        body = json.loads(exc.read())
    except (ValueError, OSError):
        return str(exc.reason)
    finally:
        exc.close()
    message = body.get("message") if isinstance(body, dict) else None
    return message if isinstance(message, str) else str(exc.reason)
