"""The three places of a files source: ``landing`` (files waiting), ``archive`` (files read)
and ``errors`` (files that could not be read, each with ``<name>.reason.json`` beside it),
on a local disk or S3. Moves keep a file's name below its place, and are idempotent: a
move repeated after a crash finds the file gone and does nothing."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.aws import AwsEndpoint
from streamlake.config.pipeline import FilesSource
from streamlake.lake.files import LocationFiles

log = logging.getLogger(__name__)

REASON_SUFFIX = ".reason.json"


def s3_parts(location: str) -> tuple[str, str] | None:
    """(bucket, key prefix ending in / or empty) of an S3 location; None for a local one."""
    if not location.startswith(("s3://", "s3a://")):
        return None
    bucket, _, prefix = location.split("://", 1)[1].partition("/")
    return bucket, (prefix.strip("/") + "/" if prefix.strip("/") else "")


def spark_location(location: str) -> str:
    """The location as Spark's file sources take it: s3a:// for S3, an absolute path."""
    parts = s3_parts(location)
    if parts is None:
        return str(Path(location).resolve())
    bucket, prefix = parts
    return f"s3a://{bucket}/{prefix}".rstrip("/")


@dataclass(frozen=True)
class Landing:
    """A files source's places, picklable: Spark's Python workers move unreadable files."""

    landing: str
    archive: str
    errors: str
    aws: AwsEndpoint

    @classmethod
    def of(cls, source: FilesSource, aws: AwsEndpoint) -> Landing:
        return cls(source.path, source.archive, source.errors, aws)

    def name_of(self, path: str) -> str:
        """A file's name below the landing place, from the path Spark gives it."""
        parts = s3_parts(self.landing)
        if parts is not None:
            prefix = parts[1]
            key = path.split("://", 1)[1].partition("/")[2]
            return key[len(prefix) :] if key.startswith(prefix) else key
        local = path.removeprefix("file:").removeprefix("//")
        root = str(Path(self.landing).resolve())
        return str(Path(local).relative_to(root)) if local.startswith(root) else local

    def key_prefix(self) -> str:
        """What comes before a file's name in its object key (S3), or nothing (local)."""
        parts = s3_parts(self.landing)
        return parts[1] if parts is not None else ""

    def files(self, place: str) -> LocationFiles:
        s3 = self.aws.client("s3") if s3_parts(place) is not None else None
        return LocationFiles(place, s3)

    def ensure_landing(self) -> None:
        """Make the landing place exist for Spark, which refuses a path that does not: a
        folder, or on S3 a folder marker (an empty ``<prefix>/`` object, which Spark lists
        as a folder, not a file) when nothing is under the prefix yet."""
        parts = s3_parts(self.landing)
        if parts is None:
            Path(self.landing).mkdir(parents=True, exist_ok=True, mode=0o700)
            return
        bucket, prefix = parts
        s3: Any = self.aws.client("s3")
        if prefix and not s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1).get(
            "Contents"
        ):
            s3.put_object(Bucket=bucket, Key=prefix, Body=b"")

    def archive_file(self, name: str) -> bool:
        """Move a read file to the archive; False when it is no longer in the landing place."""
        return self._move(name, self.archive)

    def reject_file(self, name: str, reason: str, size: int) -> bool:
        """Move a file that cannot be read to the error place, its reason object beside it;
        False when it is no longer in the landing place."""
        note = {
            "file": f"{self.landing}/{name}",
            "reason": reason,
            "size": size,
            "rejected_at": datetime.now(UTC).isoformat(),
        }
        self.files(self.errors).write(name + REASON_SUFFIX, json.dumps(note, indent=2))
        moved = self._move(name, self.errors)
        log.warning("%s/%s moved to %s: %s", self.landing, name, self.errors, reason)
        return moved

    def _move(self, name: str, place: str) -> bool:
        source, target = s3_parts(self.landing), s3_parts(place)
        if source is None and target is None:
            origin = Path(self.landing) / name
            if not origin.exists():
                return False
            destination = Path(place) / name
            if destination.exists():  # an earlier file of the same name is kept
                destination = destination.with_name(f"{destination.name}.{stamp()}")
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(origin, destination)
            return True
        # The configuration keeps a source's places on one storage.
        assert source is not None and target is not None
        return self._move_on_s3(source, target, name)

    def _move_on_s3(self, source: tuple[str, str], target: tuple[str, str], name: str) -> bool:
        s3: Any = self.aws.client("s3")
        key, moved = source[1] + name, target[1] + name
        if object_exists(s3, target[0], moved):  # an earlier file of the same name is kept
            moved = f"{moved}.{stamp()}"
        try:
            s3.copy_object(
                Bucket=target[0], Key=moved, CopySource={"Bucket": source[0], "Key": key}
            )
        except s3.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return False
            raise
        s3.delete_object(Bucket=source[0], Key=key)
        return True


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")


def object_exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except s3.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True
