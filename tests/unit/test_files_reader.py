"""A landed file's records, as the files source splits them in Spark's Python workers: JSON
lines and CSV records as their text, Parquet and Avro rows as JSON; a file that cannot be
read says why. And the files source's configuration."""

from __future__ import annotations

import datetime as dt
import decimal
import gzip
import io
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from connectors.aws import AwsEndpoint
from connectors.files.landing import Landing
from connectors.files.reader import ReadOptions, UnreadableFileError, file_records
from streamlake.config.pipeline import FilesSource, Pipeline
from streamlake.lake.checkpoint import CheckpointFileError, CheckpointFiles

RETURNS = ("return_id", "qty", "note")
CSV = ReadOptions("csv", columns=RETURNS)


def test_json_lines_are_records_blank_lines_are_not() -> None:
    content = b'{"a": 1}\n\n{"a": 2}\r\n  \n{"a": 3}'  # no newline at the end
    assert file_records("x.jsonl", content, ReadOptions()) == [
        b'{"a": 1}',
        b'{"a": 2}',
        b'{"a": 3}',
    ]


def test_a_bad_line_is_a_record_for_the_process_job_to_quarantine() -> None:
    assert file_records("x.json", b'{"a": 1}\nnot json\n', ReadOptions()) == [
        b'{"a": 1}',
        b"not json",
    ]


def test_csv_records_are_their_own_text_without_the_header() -> None:
    content = (
        "\ufeffreturn_id,qty,note\r\n"
        "r-1,2,plain\r\n"
        'r-2,1,"a note\nover two lines, with a comma"\r\n'
        "\r\n"
        "r-3,x\r\n"  # too few fields: the process job quarantines it
    ).encode()
    assert file_records("returns.csv", content, CSV) == [
        b"r-1,2,plain",
        b'r-2,1,"a note\nover two lines, with a comma"',
        b"r-3,x",
    ]


def test_a_csv_header_that_is_not_the_declared_columns_makes_the_file_unreadable() -> None:
    with pytest.raises(UnreadableFileError) as caught:
        file_records("returns.csv", b"qty,return_id,note\n2,r-1,x\n", CSV)
    assert str(caught.value) == (
        "its header (qty, return_id, note) is not the table's columns in order "
        "(return_id, qty, note)"
    )


def test_a_headerless_csv_file_is_all_records() -> None:
    options = ReadOptions("csv", delimiter=";", header=False, columns=RETURNS)
    assert file_records("r.csv", b"r-1;2;a\nr-2;1;b\n", options) == [b"r-1;2;a", b"r-2;1;b"]


def test_csv_that_is_not_utf8_is_unreadable() -> None:
    with pytest.raises(UnreadableFileError, match="not UTF-8 text"):
        file_records("r.csv", b"return_id,qty,note\n\xff\xfe,1,x\n", CSV)


ROWS: list[dict[str, Any]] = [
    {
        "id": "a",
        "amount": decimal.Decimal("12.30"),
        "at": dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC),
        "day": dt.date(2026, 11, 28),
        "tags": ["x", "y"],
        "blob": b"\x00\x01",
    },
    {"id": "b", "amount": None, "at": None, "day": None, "tags": [], "blob": None},
]
EXPECTED = [
    {
        "id": "a",
        "amount": "12.30",
        "at": "2026-11-28T12:00:00+00:00",
        "day": "2026-11-28",
        "tags": ["x", "y"],
        "blob": "AAE=",
    },
    {"id": "b", "amount": None, "at": None, "day": None, "tags": [], "blob": None},
]


def parquet_file(rows: list[dict[str, Any]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), out)
    return out.getvalue()


def test_parquet_rows_are_json_objects_with_exact_decimals_and_iso_times() -> None:
    records = file_records("part-0.parquet", parquet_file(ROWS), ReadOptions())
    assert [json.loads(r) for r in records] == EXPECTED


def avro_file(rows: list[dict[str, Any]]) -> bytes:
    import fastavro

    schema = {
        "type": "record",
        "name": "Row",
        "fields": [
            {"name": "id", "type": "string"},
            {"name": "qty", "type": ["null", "int"]},
            {"name": "at", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}]},
        ],
    }
    out = io.BytesIO()
    fastavro.writer(out, fastavro.parse_schema(schema), rows)
    return out.getvalue()


def test_avro_rows_are_json_objects() -> None:
    at = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
    content = avro_file([{"id": "a", "qty": 2, "at": at}, {"id": "b", "qty": None, "at": None}])
    records = file_records("x.avro", content, ReadOptions())
    assert [json.loads(r) for r in records] == [
        {"id": "a", "qty": 2, "at": "2026-11-28T12:00:00+00:00"},
        {"id": "b", "qty": None, "at": None},
    ]


def test_gzipped_files_are_read_by_their_inner_extension() -> None:
    content = gzip.compress(b"return_id,qty,note\nr-1,2,x\n")
    assert file_records("r.csv.gz", content, CSV) == [b"r-1,2,x"]


@pytest.mark.parametrize(
    ("name", "content", "options", "reason"),
    [
        ("x.parquet", b"PAR1 cut short", ReadOptions(), "not a readable parquet file: "),
        ("x.parquet", parquet_file(ROWS)[:-20], ReadOptions(), "not a readable parquet file: "),
        ("x.avro", b"Obj\x01 garbage", ReadOptions(), "not a readable avro file: "),
        ("x.jsonl.gz", b"\x1f\x8b not gzip", ReadOptions(), "not a readable gzip file: "),
        ("notes.txt", b"hello", ReadOptions(), "cannot tell the format of 'notes.txt'"),
        ("r.csv", b"a,b\n", ReadOptions(), "a CSV file in a source of format auto"),
    ],
)
def test_a_file_that_cannot_be_read_says_why(
    name: str, content: bytes, options: ReadOptions, reason: str
) -> None:
    with pytest.raises(UnreadableFileError) as caught:
        file_records(name, content, options)
    assert str(caught.value).startswith(reason), caught.value


def landing(**changes: Any) -> dict[str, Any]:
    return {
        "kind": "files",
        "path": "s3://landing/returns/",
        "archive": "s3://landing/archive/returns",
        "errors": "s3://landing/errors/returns",
        "format": "csv",
    } | changes


def test_a_files_source_keeps_its_places_apart() -> None:
    source = FilesSource.model_validate(landing())
    assert source.path == "s3://landing/returns"  # without the trailing slash
    with pytest.raises(ValidationError, match="archive 's3://landing/returns/done' and path"):
        FilesSource.model_validate(landing(archive="s3://landing/returns/done"))
    with pytest.raises(ValidationError, match="errors 's3://landing' and path"):
        FilesSource.model_validate(landing(errors="s3://landing"))
    with pytest.raises(ValidationError, match="a local folder or s3://bucket/prefix"):
        FilesSource.model_validate(landing(path="gs://bucket/x"))


def pipeline(source: dict[str, Any], table_format: str) -> dict[str, Any]:
    return {
        "name": "t",
        "sources": {"returns": source},
        "tables": {
            "returns": {"source": "returns", "format": table_format, "schema_ddl": "a STRING"}
        },
    }


def test_a_csv_table_goes_with_a_csv_files_source() -> None:
    Pipeline.model_validate(pipeline(landing(), "csv"))
    with pytest.raises(
        ValidationError, match=r"tables\.returns\.format: csv goes with a files source"
    ):
        Pipeline.model_validate(pipeline(landing(), "json"))
    with pytest.raises(
        ValidationError, match=r"tables\.returns\.format: csv goes with a files source"
    ):
        Pipeline.model_validate(pipeline(landing(format="auto"), "csv"))


def test_a_batch_s_files_are_found_in_spark_s_log_also_after_its_compaction(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "checkpoint" / "sources" / "0"
    folder.mkdir(parents=True)

    def entries(*batches: int) -> str:
        lines = [
            json.dumps({"path": f"file:///drop/f{b}%20x.csv", "timestamp": 1, "batchId": b})
            for b in batches
        ]
        return "v1\n" + "\n".join(lines) + "\n"

    # Every tenth batch Spark compacts the log (9.compact holds 0..9) and drops the files.
    (folder / "9.compact").write_text(entries(*range(10)))
    (folder / "10").write_text(entries(10))
    checkpoint = CheckpointFiles(str(tmp_path / "checkpoint"))
    assert [e["path"] for e in checkpoint.file_source_entries(3)] == ["file:///drop/f3%20x.csv"]
    assert [e["batchId"] for e in checkpoint.file_source_entries(10)] == [10]
    with pytest.raises(CheckpointFileError, match="sources/0/11: missing"):
        checkpoint.file_source_entries(11)


def test_moves_keep_names_never_overwrite_and_are_idempotent(tmp_path: Path) -> None:
    landing = Landing(
        str(tmp_path / "landing"),
        str(tmp_path / "archive"),
        str(tmp_path / "errors"),
        AwsEndpoint(region="us-east-1"),
    )
    (tmp_path / "landing" / "2026").mkdir(parents=True)
    (tmp_path / "landing" / "2026" / "a b.csv").write_text("new")
    (tmp_path / "archive" / "2026").mkdir(parents=True)
    (tmp_path / "archive" / "2026" / "a b.csv").write_text("read last year")
    assert landing.name_of(f"file:{tmp_path}/landing/2026/a b.csv") == "2026/a b.csv"
    assert landing.archive_file("2026/a b.csv")
    assert not landing.archive_file("2026/a b.csv")  # done already: nothing to do
    kept = sorted(p.name for p in (tmp_path / "archive" / "2026").iterdir())
    assert kept[0] == "a b.csv" and kept[1].startswith("a b.csv.")
    assert (tmp_path / "archive" / "2026" / "a b.csv").read_text() == "read last year"

    (tmp_path / "landing" / "bad.avro").write_bytes(b"junk")
    assert landing.reject_file("bad.avro", "not a readable avro file: junk", 4)
    reason = json.loads((tmp_path / "errors" / "bad.avro.reason.json").read_text())
    assert (reason["reason"], reason["size"]) == ("not a readable avro file: junk", 4)
    assert (tmp_path / "errors" / "bad.avro").read_bytes() == b"junk"
