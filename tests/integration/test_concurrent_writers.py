"""Several Spark drivers writing the same Delta tables on s3a:// (the local S3) at once,
as the process jobs of a pipeline all append to the shared metrics table: no commit may
replace another's. Each writer is its own process with its own JVM, as separate jobs are;
within one driver Delta serialises commits itself and the race cannot show."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from streamlake.lake.delta_rs import open_delta_table
from streamlake.paths import checkout_root
from tests.support import poll

pytestmark = [pytest.mark.integration, pytest.mark.spark]

WRITERS = ("process-a", "process-b")
BATCHES = 8


def start_writer(job: str, env: dict[str, str], start_file: Path, log: Path) -> Any:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.concurrent_writer", job, str(BATCHES), str(start_file)],
        cwd=checkout_root(),
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def s3_text(settings: Any, location: str, limit: int = 200) -> str:
    from connectors.s3 import s3_client_for

    bucket, key = location.removeprefix("s3a://").split("/", 1)
    s3 = s3_client_for(location, settings)
    body = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{limit}")["Body"]
    return str(body.read().decode())


def test_two_drivers_appending_to_one_s3_table_lose_no_commit(
    stack_env: dict[str, str], settings: Any, tmp_path: Path
) -> None:
    lake = f"s3a://shop-lake/tests/{uuid.uuid4().hex}/lake"
    env = {
        **os.environ,
        **stack_env,
        "STREAMLAKE__LAKE__ROOT": lake,
        "STREAMLAKE__SPARK__MASTER": "local[1]",
        "STREAMLAKE__SPARK__DRIVER_MEMORY": "768m",
    }
    start_file = tmp_path / "start"
    logs = {job: tmp_path / f"{job}.log" for job in WRITERS}
    writers = {job: start_writer(job, env, start_file, logs[job]) for job in WRITERS}
    try:
        poll(
            lambda: (
                all(Path(f"{start_file}.{job}").exists() for job in WRITERS)
                or any(w.poll() is not None for w in writers.values())
            ),
            240,
            "both writers' Spark sessions",
        )
        start_file.touch()
        codes = {job: writer.wait(timeout=400) for job, writer in writers.items()}
    finally:
        for writer in writers.values():
            writer.kill()
    output = {job: logs[job].read_text(errors="replace")[-3000:] for job in WRITERS}
    assert codes == dict.fromkeys(WRITERS, 0), output

    outcomes = sorted(Path(f"{start_file}.{job}.race").read_text() for job in WRITERS)
    assert outcomes == ["refused", "won"], "one commit of a version wins, the other is refused"
    race = f"{lake}/_meta/race/_delta_log/00000000000000000000.json"
    winner = next(job for job in WRITERS if Path(f"{start_file}.{job}.race").read_text() == "won")
    assert s3_text(settings, race).startswith(f'{{"commitInfo": {{"writer": "{winner}"')

    expected = sorted((job, batch) for job in WRITERS for batch in range(BATCHES))
    metrics = open_delta_table(f"{lake}/_meta/batch_metrics", settings).to_pyarrow_table()
    recorded = sorted(
        zip(metrics.column("job").to_pylist(), metrics.column("batch_id").to_pylist(), strict=True)
    )
    assert recorded == expected, "every metrics row of both jobs, once each"
    rows = open_delta_table(f"{lake}/_meta/concurrent_rows", settings).to_pyarrow_table()
    written = sorted(
        zip(rows.column("writer").to_pylist(), rows.column("seq").to_pylist(), strict=True)
    )
    assert written == expected, "every appended row of both writers, once each"
