"""CSV records (a files source's lines) turned into JSON text for the common parser.

A record's fields are the table's declared columns by position, as text; the parser then
types them as it types JSON strings. A record with another number of fields than the table
has columns gets a ``_decode_error`` and goes to quarantine as a parse error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

CORRUPT = "_csv_corrupt"


class CsvDecoder:
    """Adds ``_avro_text`` (the record as JSON text) and ``_decode_error`` to raw rows."""

    def __init__(self, columns: list[str], delimiter: str = ",") -> None:
        self.columns = columns
        self.delimiter = delimiter

    def decode(self, raw: DataFrame) -> DataFrame:
        from pyspark.sql import functions as F

        fields = ", ".join(f"`{name}` STRING" for name in self.columns)
        options = {
            "sep": self.delimiter,
            # RFC 4180, as the files source splits records: a quote in a field is doubled.
            "escape": '"',
            "mode": "PERMISSIVE",
            "columnNameOfCorruptRecord": CORRUPT,
        }
        text = F.col("payload").cast("string")
        record = F.from_csv(text, f"{fields}, `{CORRUPT}` STRING", options)
        as_json = F.to_json(F.struct(*[record[name].alias(name) for name in self.columns]))
        error = F.when(
            record[CORRUPT].isNotNull() | text.isNull(),
            F.lit(f"not a CSV record of the table's {len(self.columns)} columns"),
        )
        return raw.select(
            *raw.columns,
            F.when(error.isNull(), as_json).alias("_avro_text"),
            error.alias("_decode_error"),
        )
