"""`quarantine list` reads the quarantine table with delta-rs and DuckDB (no Spark)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
from deltalake import write_deltalake

from streamlake.lake.tables import QUARANTINE
from tests.conftest import CONFIGS


def quarantine_list(lake: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLAKE")}
    env["STREAMLAKE__LAKE__ROOT"] = str(lake)
    env["COLUMNS"] = "300"  # wide enough that no cell wraps
    command = [sys.executable, "-m", "streamlake", "--config", str(CONFIGS)]
    return subprocess.run(
        [*command, "quarantine", "list", *args], capture_output=True, text=True, env=env
    )


def test_payloads_that_look_like_markup_are_shown_as_they_are(tmp_path: Path) -> None:
    payloads = [b"[/x] not markup [bold]", b'{"order_id": \x1b[2J}']
    rows = {
        "payload": payloads,
        "error_kind": ["parse", "rule"],
        "error": ["invalid JSON: [/red]", "rule amount_positive [/] failed"],
        "rule": [None, "amount_positive"],
        "source": ["kafka"] * 2,
        "stream": ["orders"] * 2,
        "partition": ["0"] * 2,
        "position": ["1", "2"],
        "key": ["k"] * 2,
        "quarantined_at": [datetime.now(UTC)] * 2,
    }
    table = pa.table(rows)
    assert tuple(table.column_names) == QUARANTINE.names
    write_deltalake(str(tmp_path / "lake" / "quarantine" / "orders"), table)

    result = quarantine_list(tmp_path / "lake", "orders")

    assert result.returncode == 0, result.stderr
    assert "[/x] not markup [bold]" in result.stdout
    assert "invalid JSON: [/red]" in result.stdout
    assert "\x1b" not in result.stdout and '{"order_id": \\x1b[2J}' in result.stdout
    assert "quarantine.orders: 2 records" in result.stdout


def test_a_table_that_was_never_written_is_reported_empty(tmp_path: Path) -> None:
    result = quarantine_list(tmp_path / "lake", "orders")
    assert result.returncode == 0, result.stderr
    assert "quarantine.orders is empty" in result.stdout
