"""Every source kind with an implementation, by the ``kind`` literal of its config."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.base import SourceKind
from connectors.dynamodb_streams.kind import DYNAMODB
from connectors.files.kind import FILES
from connectors.jdbc.kind import JDBC
from connectors.kafka.kind import KAFKA
from connectors.kinesis.kind import KINESIS
from streamlake.config.pipeline import Pipeline, Source
from streamlake.errors import ConfigError, UsageError

SOURCE_KINDS: Mapping[str, SourceKind[Any]] = {
    k.kind: k for k in (KAFKA, KINESIS, DYNAMODB, FILES, JDBC)
}


def _implemented() -> str:
    return f"implemented kinds: {', '.join(SOURCE_KINDS)}"


def source_kind(source: Source) -> SourceKind[Any]:
    """The object that opens, produces to and creates ``source``."""
    try:
        return SOURCE_KINDS[source.kind]
    except KeyError:
        raise UsageError(
            f"source kind {source.kind!r} is not implemented", _implemented()
        ) from None


def check_pipeline(pipeline: Pipeline, config_file: str) -> None:
    """Refuse a pipeline declaring a source kind that has no implementation; called where
    the command line loads the configuration."""
    for name, source in pipeline.sources.items():
        if source.kind not in SOURCE_KINDS:
            raise ConfigError(
                f"source kind {source.kind!r} is not implemented yet",
                _implemented(),
                source=config_file,
                key=f"sources.{name}.kind",
            )
