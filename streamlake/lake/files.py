"""Files under one location on the local disk or S3 (``s3a://``/``s3://``, with a boto3
client), read and written without a JVM: checkpoints and leases (small files, whole), and
the data files crawlers list and sample (opened for ranged reads)."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

# How much of an S3 object one ranged GET fetches at least: reads of a file's head or
# footer take a call or two.
S3_READ_BLOCK = 256 * 1024


@dataclass(frozen=True)
class StoredFile:
    """A file found under a location: its path below it ('/'-separated), size and
    modification time (epoch seconds)."""

    name: str
    size: int
    modified: float


@dataclass(frozen=True)
class LocationFiles:
    """The files under one location; ``s3`` is needed only for S3 locations."""

    location: str
    s3: Any | None = None

    @property
    def on_s3(self) -> bool:
        return self.location.startswith(("s3a://", "s3://"))

    def _local(self, name: str = "") -> Path:
        root = Path(self.location.removeprefix("file:"))
        return root / name if name else root

    def _client(self) -> Any:
        if self.s3 is None:
            raise ValueError(f"an S3 client is needed for {self.location}")
        return self.s3

    def _bucket_key(self, name: str = "") -> tuple[str, str]:
        bucket, _, prefix = self.location.split("://", 1)[1].partition("/")
        prefix = prefix.rstrip("/")
        return bucket, f"{prefix}/{name}" if name else f"{prefix}/"

    def read(self, name: str) -> str | None:
        """The file's text, None if it does not exist."""
        if not self.on_s3:
            path = self._local(name)
            return path.read_text(encoding="utf-8") if path.is_file() else None
        bucket, key = self._bucket_key(name)
        try:
            body = self._client().get_object(Bucket=bucket, Key=key)["Body"].read()
        except self._client().exceptions.NoSuchKey:
            return None
        return str(body.decode("utf-8"))

    def write(self, name: str, text: str) -> None:
        if not self.on_s3:
            path = self._local(name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            return
        bucket, key = self._bucket_key(name)
        self._client().put_object(Bucket=bucket, Key=key, Body=text.encode("utf-8"))

    def create(self, name: str, text: str) -> bool:
        """Write the file only if it does not exist, atomically (an exclusive open locally,
        a conditional PUT on S3); False when it already exists."""
        if not self.on_s3:
            path = self._local(name)
            path.parent.mkdir(parents=True, exist_ok=True)
            # Written aside, then linked in place: a reader never sees the file empty, and
            # the link fails if the name exists (an exclusive open would show it empty).
            aside = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
            aside.write_text(text, encoding="utf-8")
            try:
                os.link(aside, path)
            except FileExistsError:
                return False
            finally:
                aside.unlink(missing_ok=True)
            return True
        bucket, key = self._bucket_key(name)
        client = self._client()
        try:
            client.put_object(Bucket=bucket, Key=key, Body=text.encode("utf-8"), IfNoneMatch="*")
        except client.exceptions.ClientError as exc:
            # 412: the object exists; 409: another conditional write to it is under way.
            code = exc.response.get("Error", {}).get("Code")
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                return False
            raise
        return True

    def modified(self, name: str) -> float | None:
        """The file's modification time (epoch seconds), None if it does not exist."""
        if not self.on_s3:
            path = self._local(name)
            return path.stat().st_mtime if path.is_file() else None
        bucket, key = self._bucket_key(name)
        client = self._client()
        try:
            answer = client.head_object(Bucket=bucket, Key=key)
        except client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                return None
            raise
        return float(answer["LastModified"].timestamp())

    def names(self, directory: str) -> list[str]:
        """The names of the files directly under ``directory`` (empty if there is none)."""
        if not self.on_s3:
            path = self._local(directory)
            return sorted(p.name for p in path.iterdir() if p.is_file()) if path.is_dir() else []
        bucket, prefix = self._bucket_key(f"{directory}/")
        found = []
        for page in (
            self._client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        ):
            found += [item["Key"][len(prefix) :] for item in page.get("Contents", [])]
        return sorted(name for name in found if name and "/" not in name)

    def walk(self) -> Iterator[StoredFile]:
        """Every file below the location, in no particular order; folders whose name
        starts with ``.`` or ``_`` (``_temporary``, ``.spark-staging``) are not entered on
        the local disk. Raises FileNotFoundError when the folder or bucket does not exist;
        a prefix with no object under it is an empty location."""
        if self.on_s3:
            yield from self._walk_s3()
            return
        root = self._local()
        if not root.is_dir():
            raise FileNotFoundError(f"{self.location} does not exist or is not a folder")
        for folder, folders, files in os.walk(root):
            folders[:] = sorted(f for f in folders if not f.startswith((".", "_")))
            for name in files:
                path = Path(folder) / name
                stat = path.stat()
                yield StoredFile(path.relative_to(root).as_posix(), stat.st_size, stat.st_mtime)

    def _walk_s3(self) -> Iterator[StoredFile]:
        bucket, _, prefix = self.location.split("://", 1)[1].partition("/")
        prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        client = self._client()
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        try:
            for page in pages:
                for item in page.get("Contents", []):
                    name = item["Key"][len(prefix) :]
                    if name and not name.endswith("/"):  # "/" ends a console folder marker
                        yield StoredFile(name, item["Size"], item["LastModified"].timestamp())
        except client.exceptions.NoSuchBucket as exc:
            raise FileNotFoundError(f"{self.location}: bucket {bucket} does not exist") from exc

    def open(self, file: StoredFile) -> BinaryIO:
        """A seekable binary reader of a file ``walk`` found. On S3 it reads with ranged
        GETs, so reading a Parquet footer or the head of a large file fetches that part."""
        if not self.on_s3:
            return self._local(file.name).open("rb")
        bucket, _, prefix = self.location.split("://", 1)[1].partition("/")
        key = f"{prefix.strip('/')}/{file.name}" if prefix.strip("/") else file.name
        raw = S3RangeReader(self._client(), bucket, key, file.size)
        return io.BufferedReader(raw, buffer_size=S3_READ_BLOCK)

    def delete(self, name: str) -> None:
        if not self.on_s3:
            self._local(name).unlink(missing_ok=True)
            return
        bucket, key = self._bucket_key(name)
        self._client().delete_object(Bucket=bucket, Key=key)

    def move_aside(self, suffix: str) -> str:
        """Move the checkpoint to ``<location>.<suffix>``, keeping it for inspection."""
        target = f"{self.location.rstrip('/')}.{suffix}"
        if not self.on_s3:
            self._local().rename(Path(target.removeprefix("file:")))
            return target
        bucket, prefix = self._bucket_key()
        _, target_prefix = LocationFiles(target, self.s3)._bucket_key()
        for page in (
            self._client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        ):
            for item in page.get("Contents", []):
                moved = target_prefix + item["Key"][len(prefix) :]
                source = {"Bucket": bucket, "Key": item["Key"]}
                self._client().copy_object(Bucket=bucket, Key=moved, CopySource=source)
                self._client().delete_object(Bucket=bucket, Key=item["Key"])
        return target


class S3RangeReader(io.RawIOBase):
    """An S3 object as a seekable raw stream: each read is a ranged GET. An S3 error is an
    OSError, as a local read's would be."""

    def __init__(self, s3: Any, bucket: str, key: str, size: int) -> None:
        super().__init__()
        self.s3, self.bucket, self.key, self.size = s3, bucket, key, size
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def readinto(self, buffer: Any) -> int:
        wanted = min(len(buffer), self.size - self.position)
        if wanted <= 0:
            return 0
        from botocore.exceptions import BotoCoreError

        end = self.position + wanted - 1
        try:
            answer = self.s3.get_object(
                Bucket=self.bucket, Key=self.key, Range=f"bytes={self.position}-{end}"
            )
            data = answer["Body"].read()
        except self.s3.exceptions.ClientError as exc:
            error = exc.response.get("Error", {})
            raise OSError(f"s3://{self.bucket}/{self.key}: {error.get('Code', '?')}") from exc
        except BotoCoreError as exc:  # the connection dropped, the body was cut short
            raise OSError(f"s3://{self.bucket}/{self.key}: {exc}") from exc
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)
