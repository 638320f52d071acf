"""`streamlake consume`: the KCL MultiLangDaemon (real jars) against the local AWS server's
Kinesis and DynamoDB, calling handlers in tests/kcl_handlers.py."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.aws import aws_endpoint
from streamlake.config.settings import Settings
from streamlake.errors import EXIT_BAD_USAGE, EXIT_JOB_FAILED
from streamlake.paths import checkout_root
from tests.support import cli_env, poll

CONFIGS = checkout_root() / "configs"
START_S = 180  # a new application waits up to 30 s (KCL's random delay) before its lease sync


@pytest.fixture
def stream(settings: Settings) -> Iterator[str]:
    kinesis = aws_endpoint(settings).client("kinesis")
    name = f"consume-{uuid.uuid4().hex[:8]}"
    kinesis.create_stream(StreamName=name, ShardCount=2)
    yield name
    kinesis.delete_stream(StreamName=name, EnforceConsumerDeletion=True)


def put(settings: Settings, stream: str, bodies: list[dict[str, Any]], key: str = "") -> None:
    """One PutRecords call, so that a shard's reader finds them all at once."""
    kinesis = aws_endpoint(settings).client("kinesis")
    entries = [
        {"Data": json.dumps(body).encode(), "PartitionKey": key or body["id"]} for body in bodies
    ]
    answer = kinesis.put_records(StreamName=stream, Records=entries)
    assert answer["FailedRecordCount"] == 0


def handled(out: Path) -> list[tuple[str, str, int]]:
    """(shard, id, sequence) per handler call, in order."""
    if not out.exists():
        return []
    rows = [line.split() for line in out.read_text().splitlines() if line.strip()]
    return [(shard, record, int(sequence)) for shard, record, sequence in rows]


def seen(out: Path) -> Counter[str]:
    return Counter(record for _, record, _ in handled(out))


def consume(
    stream: str, handler: str, app: str, env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "streamlake", "--config", str(CONFIGS), "consume", stream]
    with log.open("ab") as out:
        return subprocess.Popen(
            [*command, "--handler", handler, "--app", app],
            cwd=checkout_root(),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def checkpoints(settings: Settings, app: str) -> dict[str, str]:
    """Each shard's checkpoint as the KCL recorded it in the application's lease table."""
    dynamodb = aws_endpoint(settings).client("dynamodb")
    items = dynamodb.scan(TableName=app)["Items"]
    return {item["leaseKey"]["S"]: item["checkpoint"]["S"] for item in items}


def stop(process: subprocess.Popen[bytes], sig: signal.Signals) -> int:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    return process.wait(timeout=90)


def test_every_record_reaches_the_handler_once_and_a_killed_consumer_resumes_from_its_checkpoint(
    settings: Settings, stream: str, tmp_path: Path, stack_env: dict[str, str]
) -> None:
    out = tmp_path / "handled.txt"
    env = {**cli_env(stack_env, tmp_path), "KCL_TEST_OUT": str(out), "KCL_TEST_HOLD": "1"}
    app = f"test-{stream}"
    handler = "tests.kcl_handlers:record_ids"
    first = [{"id": f"r-{i}"} for i in range(60)]
    put(settings, stream, first)
    log = tmp_path / "consume.log"
    process = consume(stream, handler, app, env, log)
    try:
        poll(lambda: len(seen(out)) == 60, START_S, "the first 60 records handled")
        assert set(seen(out).values()) == {1}
        poll(
            lambda: (
                (found := checkpoints(settings, app))
                and len(found) == 2
                and all(value.isdigit() for value in found.values())
            ),
            30,
            "both shards checkpointed",
        )
        # The daemon's CloudWatch client publishes to the local server too (namespace: the
        # application), as it would to CloudWatch on AWS.
        cloudwatch = aws_endpoint(settings).client("cloudwatch")
        poll(
            lambda: cloudwatch.list_metrics(Namespace=app)["Metrics"],
            60,
            "the KCL's metrics in CloudWatch",
            every_s=2,
        )
        # 30 more on one shard, the 20th holding its batch open; then the consumer is killed.
        second = [{"id": f"r-{i}", "hold": i == 79} for i in range(60, 90)]
        put(settings, stream, second, key="one-shard")
        poll(lambda: "r-79" in seen(out), 60, "the held record")
    finally:
        stop(process, signal.SIGKILL)
    before_kill = handled(out)
    (shard, _, held_at) = next(row for row in before_kill if row[1] == "r-79")
    checkpoint = int(checkpoints(settings, app)[shard])
    assert checkpoint < held_at  # the held batch was not checkpointed
    unconfirmed = {
        record for s, record, sequence in before_kill if s == shard and sequence > checkpoint
    }

    resumed = consume(stream, handler, app, {**env, "KCL_TEST_HOLD": "0"}, log)
    try:
        poll(lambda: len(seen(out)) == 90, START_S, "all 90 records handled")
        counts = seen(out)
    finally:
        code = stop(resumed, signal.SIGTERM)

    assert code == 0, log.read_text()[-2000:]
    # What the killed consumer handled after its last checkpoint came again (KCL delivers
    # at least once); nothing else did.
    again = {record for record, n in counts.items() if n > 1}
    assert again == unconfirmed and "r-79" in again
    assert max(counts.values()) == 2
    assert "records handled" in log.read_text()


def test_a_raising_handler_stops_the_consumer_with_one_line_and_no_checkpoint_past_its_batch(
    settings: Settings, stream: str, tmp_path: Path, stack_env: dict[str, str]
) -> None:
    out = tmp_path / "handled.txt"
    env = {**cli_env(stack_env, tmp_path), "KCL_TEST_OUT": str(out)}
    app = f"test-{stream}"
    bodies = [{"id": f"p-{i}", "poison": i == 5} for i in range(10)]
    put(settings, stream, bodies, key="one-shard")
    log = tmp_path / "consume.log"
    process = consume(stream, "tests.kcl_handlers:fail_on_poison", app, env, log)
    try:
        code = process.wait(timeout=START_S)
    finally:
        stop(process, signal.SIGKILL) if process.poll() is None else None

    assert code == EXIT_JOB_FAILED
    errors = [line for line in log.read_text().splitlines() if line.startswith("error:")]
    assert len(errors) == 1, log.read_text()
    assert "tests.kcl_handlers:fail_on_poison raised" in errors[0]
    assert "ValueError: cannot handle order p-5" in errors[0]
    # Handled up to the failing record (the KCL may hand the shard to a new processor
    # before the consumer stops, which calls the handler on the batch again), never past it.
    assert set(seen(out)) == {f"p-{i}" for i in range(5)}
    # No shard has a checkpoint past where it started.
    found = checkpoints(settings, app)
    assert len(found) == 2 and all(not value[0].isdigit() for value in found.values())


def test_a_handler_that_cannot_be_imported_is_one_line_and_exit_2(
    stream: str, tmp_path: Path, stack_env: dict[str, str]
) -> None:
    command = [sys.executable, "-m", "streamlake", "--config", str(CONFIGS), "consume", stream]
    result = subprocess.run(
        [*command, "--handler", "tests.no_such_handlers:on_record"],
        cwd=checkout_root(),
        env=cli_env(stack_env, tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == EXIT_BAD_USAGE
    assert result.stderr.strip().splitlines() == [
        "error: handler tests.no_such_handlers:on_record cannot be imported: "
        "ModuleNotFoundError: No module named 'tests.no_such_handlers' (check the module is "
        "on PYTHONPATH or in the current folder)"
    ]
