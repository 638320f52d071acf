"""Avro schemas in an AWS Glue Schema Registry, through boto3's ``glue`` client.

Guarantees: ``register`` is idempotent (an identical definition gets its existing version
id) and returns only once the version is AVAILABLE, or raises. New schemas are created
with BACKWARD compatibility, so Glue refuses a version that readers on it could not use
to read data written with the previous version. Lookups are cached for the life of the
object: a schema version id always names the same definition.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import ClientError, HTTPClientError, NoCredentialsError
from botocore.exceptions import ConnectionError as BotoConnectionError

from connectors.aws import AwsEndpoint
from connectors.schema_registry.registry import SchemaNotFoundError
from connectors.schema_registry.wire import Wire, frame_glue
from streamlake.errors import ResourceError, ServiceError

SERVICE = "Glue Schema Registry"
# Codes that mean "try again later" once boto3's own retries are spent.
_TRANSIENT = {"ThrottlingException", "InternalServiceException", "ConcurrentModificationException"}


class GlueSchemaRegistry:
    """One Glue schema registry; refs are schema version ids (lowercase UUIDs)."""

    wire: Wire = "glue"

    def __init__(
        self,
        endpoint: AwsEndpoint,
        registry_name: str,
        *,
        compress: bool = False,
        wait_s: float = 30.0,
        poll_s: float = 0.5,
    ) -> None:
        self.endpoint = endpoint
        self.registry_name = registry_name
        self.compress = compress
        self.wait_s = wait_s
        self.poll_s = poll_s
        self._glue = endpoint.client("glue")
        self._definitions: dict[str, str] = {}

    def registry_exists(self) -> bool:
        with self._calling():
            try:
                self._glue.get_registry(RegistryId={"RegistryName": self.registry_name})
            except self._glue.exceptions.EntityNotFoundException:
                return False
        return True

    def ensure_registry(self) -> bool:
        """Create the registry if it does not exist; True if created."""
        if self.registry_exists():
            return False
        with self._calling():
            try:
                self._glue.create_registry(RegistryName=self.registry_name)
            except self._glue.exceptions.AlreadyExistsException:
                return False
        return True

    def register(self, name: str, definition: str) -> str:
        """Register ``definition`` as schema ``name`` (or a new version of it); return the
        version id once it is AVAILABLE."""
        with self._calling(kind="Glue schema", name=name):
            if not self._schema_exists(name):
                created = self._create_schema(name, definition)
                if created is not None:
                    return self._available(name, *created)
            existing = self._version_by_definition(name, definition)
            if existing is not None:
                return self._available(name, *existing)
            registered = self._glue.register_schema_version(
                SchemaId=self._schema_id(name), SchemaDefinition=definition
            )
            return self._available(name, registered["SchemaVersionId"], registered["Status"])

    def schema(self, ref: str) -> str:
        """The definition of schema version ``ref``; SchemaNotFoundError if Glue has none."""
        key = _canonical(ref)
        if key not in self._definitions:
            with self._calling(kind="Glue schema version", name=ref):
                try:
                    version = self._glue.get_schema_version(SchemaVersionId=key)
                except self._glue.exceptions.EntityNotFoundException as exc:
                    raise _not_found(ref) from exc
            self._definitions[key] = version["SchemaDefinition"]
        return self._definitions[key]

    def frame(self, ref: str, body: bytes) -> bytes:
        return frame_glue(ref, body, compress=self.compress)

    def _schema_id(self, name: str) -> dict[str, str]:
        return {"RegistryName": self.registry_name, "SchemaName": name}

    def _schema_exists(self, name: str) -> bool:
        try:
            self._glue.get_schema(SchemaId=self._schema_id(name))
            return True
        except self._glue.exceptions.EntityNotFoundException:
            return False

    def _create_schema(self, name: str, definition: str) -> tuple[str, str] | None:
        """(version id, status) of the new schema's first version; None if another writer
        created the schema first."""
        try:
            created = self._glue.create_schema(
                RegistryId={"RegistryName": self.registry_name},
                SchemaName=name,
                DataFormat="AVRO",
                Compatibility="BACKWARD",
                SchemaDefinition=definition,
            )
        except self._glue.exceptions.AlreadyExistsException:
            return None
        except self._glue.exceptions.EntityNotFoundException as exc:
            raise ResourceError(
                "the registry does not exist",
                "create it first (GlueSchemaRegistry.ensure_registry)",
                kind="Glue schema registry",
                name=self.registry_name,
            ) from exc
        return created["SchemaVersionId"], created["SchemaVersionStatus"]

    def _version_by_definition(self, name: str, definition: str) -> tuple[str, str] | None:
        try:
            found = self._glue.get_schema_by_definition(
                SchemaId=self._schema_id(name), SchemaDefinition=definition
            )
        except self._glue.exceptions.EntityNotFoundException:
            return None
        return found["SchemaVersionId"], found["Status"]

    def _available(self, name: str, version_id: str, status: str) -> str:
        """``version_id`` once Glue has finished checking it; raises if it fails."""
        deadline = time.monotonic() + self.wait_s
        while status == "PENDING":
            if time.monotonic() > deadline:
                raise ResourceError(
                    f"version {version_id} still PENDING after {self.wait_s:.0f}s",
                    kind="Glue schema",
                    name=name,
                    retryable=True,
                )
            time.sleep(self.poll_s)
            status = self._glue.get_schema_version(SchemaVersionId=version_id)["Status"]
        if status != "AVAILABLE":
            raise ResourceError(
                f"version {version_id} is {status}",
                "FAILURE means the definition breaks the schema's compatibility mode",
                kind="Glue schema",
                name=name,
            )
        return version_id

    @contextmanager
    def _calling(self, kind: str = "Glue schema registry", name: str = "") -> Iterator[None]:
        """Turn transport and unexpected service failures into streamlake errors; the
        expected ones (not found, already exists) are handled inside the block."""
        address = self.endpoint.endpoint_url or f"glue.{self.endpoint.region}.amazonaws.com"
        try:
            yield
        except (BotoConnectionError, HTTPClientError) as exc:
            raise ServiceError(str(exc), service=SERVICE, address=address, retryable=True) from exc
        except NoCredentialsError as exc:
            raise ServiceError(
                str(exc), "configure AWS credentials", service=SERVICE, address=address
            ) from exc
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code, message = error.get("Code", ""), error.get("Message", str(exc))
            if code in _TRANSIENT:
                raise ServiceError(
                    f"{code}: {message}", service=SERVICE, address=address, retryable=True
                ) from exc
            raise ResourceError(
                f"{code}: {message}", kind=kind, name=name or self.registry_name
            ) from exc


def _canonical(ref: str) -> str:
    """The lowercase dashed form Glue and the wire use; SchemaNotFoundError if not a UUID,
    since no Glue schema version can have that ref."""
    try:
        return str(uuid.UUID(ref))
    except ValueError as exc:
        raise SchemaNotFoundError(
            "not a schema version id",
            "Glue schema version ids are UUIDs",
            kind="Glue schema version",
            name=ref,
        ) from exc


def _not_found(ref: str) -> SchemaNotFoundError:
    # Version ids are unique across an account's registries, so the registry is no clue.
    return SchemaNotFoundError(
        "Glue has no schema version with this id",
        "was the payload written in another AWS account or region?",
        kind="Glue schema version",
        name=ref,
    )
