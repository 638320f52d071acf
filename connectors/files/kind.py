"""Files pushed to a landing place (S3 or a local folder) as a source kind."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from connectors.base import (
    BatchCommitted,
    ErrorTranslator,
    Resource,
    Send,
    Sink,
    SourceKind,
    StreamRequest,
)
from connectors.files.landing import Landing, s3_parts
from connectors.files.producer import FileDropSink
from connectors.files.source import archive_batch, read_files_stream
from connectors.s3 import bucket_exists, ensure_bucket
from streamlake.config.pipeline import FilesSource
from streamlake.config.settings import Settings
from streamlake.lake.checkpoint import CheckpointFiles

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from connectors.aws import AwsEndpoint


def folder_exists(path: str) -> bool:
    return Path(path).is_dir()


def ensure_folder(path: str) -> bool:
    if Path(path).is_dir():
        return False
    Path(path).mkdir(parents=True, mode=0o700)
    return True


class FilesKind(SourceKind[FilesSource]):
    kind = "files"

    def resource_identity(self, source: FilesSource) -> tuple[str, str]:
        return ("landing place", source.path)

    def resources(
        self, source: FilesSource, settings: Settings, aws: AwsEndpoint
    ) -> list[Resource]:
        """Each place's bucket (S3) or folder (local)."""
        found: dict[tuple[str, str], Resource] = {}
        for place in (source.path, source.archive, source.errors):
            parts = s3_parts(place)
            if parts is None:
                found[("folder", place)] = Resource(
                    "folder", place, partial(folder_exists, place), partial(ensure_folder, place)
                )
                continue
            s3, bucket = aws.client("s3"), parts[0]
            found[("s3 bucket", bucket)] = Resource(
                "s3 bucket",
                bucket,
                partial(bucket_exists, s3, bucket),
                partial(ensure_bucket, s3, bucket, aws.region),
            )
        return list(found.values())

    def producer(
        self, source: FilesSource, settings: Settings, aws: AwsEndpoint
    ) -> tuple[Send, Sink]:
        sink = FileDropSink(Landing.of(source, aws), source.format, source.delimiter)
        return sink.send, sink

    def open_stream(
        self, source: FilesSource, request: StreamRequest
    ) -> tuple[DataFrame, ErrorTranslator]:
        landing = Landing.of(source, request.aws)
        landing.ensure_landing()
        frame = read_files_stream(request.spark, source, request.table, landing)
        return frame, lambda _message: None

    def after_commit(self, source: FilesSource, request: StreamRequest) -> BatchCommitted:
        from connectors.s3 import s3_client_for

        checkpoint = CheckpointFiles(
            request.checkpoint, s3_client_for(request.checkpoint, request.settings)
        )
        return partial(archive_batch, checkpoint, Landing.of(source, request.aws))


FILES = FilesKind()
