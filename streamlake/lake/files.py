"""Small files under one location on the local disk or S3 (``s3a://``/``s3://``, with a
boto3 client), read and written without a JVM: checkpoints, leases."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


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
