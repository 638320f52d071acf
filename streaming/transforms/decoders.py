"""What turns a table's payloads into JSON text before parsing, by the table's format: Avro
framed by a schema registry, CSV records; JSON payloads are parsed as they are."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from streaming.transforms.avro import avro_decoder
from streaming.transforms.csv_text import CsvDecoder
from streamlake.config.ddl import columns
from streamlake.config.pipeline import Pipeline
from streamlake.config.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


class PayloadDecoder(Protocol):
    def decode(self, raw: DataFrame) -> DataFrame:
        """``raw`` with ``_avro_text`` (the record as JSON text, None when it does not
        decode) and ``_decode_error`` (why not)."""
        ...


def payload_decoder(pipeline: Pipeline, table: str, settings: Settings) -> PayloadDecoder | None:
    """The decoder of table ``table``'s payloads; None for JSON tables."""
    spec = pipeline.tables[table]
    if spec.format == "csv":
        source = pipeline.sources[spec.source]
        delimiter = source.delimiter if source.kind == "files" else ","
        return CsvDecoder([name for name, _ in columns(spec.schema_ddl)], delimiter)
    return avro_decoder(spec, settings)
