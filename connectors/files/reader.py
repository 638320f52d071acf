"""One landed file's records as raw payloads, in plain Python (it runs in Spark's Python
workers): a JSON-lines or CSV file's records as their text, a Parquet or Avro file's rows as
JSON objects. A file that cannot be read at all raises ``UnreadableFileError`` with the reason;
a record that is merely bad (not JSON, a CSV row of the wrong width) is returned like any
other, for the process job to quarantine."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import decimal
import gzip
import io
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

FileFormat = Literal["json", "csv", "parquet", "avro"]
# What the extension of a file says its format is.
EXTENSIONS: dict[str, FileFormat] = {
    ".json": "json",
    ".jsonl": "json",
    ".ndjson": "json",
    ".csv": "csv",
    ".parquet": "parquet",
    ".avro": "avro",
}


class UnreadableFileError(Exception):
    """The file as a whole cannot be read: its reason is the message."""


@dataclass(frozen=True)
class ReadOptions:
    """How files are read: ``format`` (by extension when ``auto``), the CSV ``delimiter``,
    and ``columns``, the table's declared columns a CSV header must name, in order."""

    format: FileFormat | Literal["auto"] = "auto"
    delimiter: str = ","
    header: bool = True
    columns: tuple[str, ...] = ()


def format_of(name: str, options: ReadOptions) -> FileFormat:
    stem = name[: -len(".gz")] if name.endswith(".gz") else name
    if options.format != "auto":
        return options.format
    for extension, found in EXTENSIONS.items():
        if stem.lower().endswith(extension):
            if found == "csv":
                # Its records are parsed by position, which the table must be told.
                raise UnreadableFileError("a CSV file in a source of format auto: set format csv")
            return found
    raise UnreadableFileError(
        f"cannot tell the format of {name!r} from its extension "
        f"({', '.join(EXTENSIONS)}, optionally .gz); set the source's format"
    )


def file_records(name: str, content: bytes, options: ReadOptions) -> list[bytes]:
    """Every record of the file, in order; position n (1-based) is the n-th."""
    fmt = format_of(name, options)
    if name.endswith(".gz"):
        try:
            content = gzip.decompress(content)
        except (OSError, EOFError, zlib.error) as exc:
            raise UnreadableFileError(f"not a readable gzip file: {exc}") from None
    try:
        if fmt == "json":
            return list(text_lines(content))
        if fmt == "csv":
            return list(csv_records(content, options))
        if fmt == "parquet":
            return parquet_records(content)
        return avro_records(content)
    except UnreadableFileError:
        raise
    except Exception as exc:  # a library's own words for a broken file
        why = f"{type(exc).__name__}: {exc}"
        raise UnreadableFileError(f"not a readable {fmt} file: {why}") from None


def text_lines(content: bytes) -> Iterator[bytes]:
    """Non-blank lines, without their line ends (a final line with none included)."""
    for line in content.splitlines():
        if line.strip():
            yield line


def csv_records(content: bytes, options: ReadOptions) -> Iterator[bytes]:
    """Each CSV record's own text (a quoted field may span lines), the header checked
    against the declared columns and left out."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFileError(f"not UTF-8 text: {exc}") from None
    lines = text.splitlines(keepends=True)
    consumed: list[str] = []

    def feed() -> Iterator[str]:
        for line in lines:
            consumed.append(line)
            yield line

    reader = csv.reader(feed(), delimiter=options.delimiter, strict=False)
    first = True
    for record in reader:
        raw = "".join(consumed).rstrip("\r\n")
        consumed.clear()
        if first and options.header:
            first = False
            check_header(record, options.columns)
            continue
        first = False
        if raw.strip():
            yield raw.encode("utf-8")


def check_header(header: list[str], columns: tuple[str, ...]) -> None:
    named = [name.strip().lower() for name in header]
    if columns and named != [c.lower() for c in columns]:
        raise UnreadableFileError(
            f"its header ({', '.join(header)}) is not the table's columns in order "
            f"({', '.join(columns)})"
        )


def parquet_records(content: bytes) -> list[bytes]:
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(content))
    return [as_json(row) for row in table.to_pylist()]


def avro_records(content: bytes) -> list[bytes]:
    import fastavro

    records = fastavro.reader(io.BytesIO(content))
    return [as_json(r if isinstance(r, dict) else {"value": r}) for r in records]


def as_json(row: dict[str, Any]) -> bytes:
    return json.dumps(row, default=json_value, ensure_ascii=False).encode("utf-8")


def json_value(value: Any) -> Any:
    """What JSON lacks: times as ISO 8601, decimals as their digits in a string (a float
    would round them; the declared DECIMAL type reads the string exactly), bytes as
    base64."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not JSON")
