"""`batch run export` against the local AWS server's Firehose, which writes each call's
records to its S3 bucket: every exported record arrives there once, across reruns, updates,
injected faults (through the fault proxy), a give-up and a SIGKILL in mid-export."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from batch.export import reject_oversized, selected_targets
from batch.jobs import BatchRun, run_batch_job
from batch.report import BatchReport
from connectors.aws import AwsEndpoint, aws_endpoint
from connectors.firehose import ensure_delivery_stream
from connectors.s3 import ensure_bucket, location_files
from streamlake.config.pipeline import Export, FirehoseStream, Pipeline
from streamlake.config.settings import Settings
from streamlake.errors import EXIT_BAD_USAGE, EXIT_JOB_FAILED, ConfigError, LeaseHeldError
from streamlake.lake.delta_rs import read_rows
from streamlake.lake.leases import LEASES, TableLeases
from streamlake.process_identity import started_at
from tests.conftest import CONFIGS
from tests.fault_proxy import LOST_ANSWER, FaultPlan, FaultProxy
from tests.support import cli_env, poll, with_lake, write_config_dir

pytestmark = [pytest.mark.integration]

BUCKET = "shop-delivery"


@pytest.fixture
def stream(settings: Settings) -> str:
    """A delivery stream of this test's own, writing under its own prefix."""
    endpoint = aws_endpoint(settings)
    name = f"export-{uuid.uuid4().hex[:8]}"
    ensure_bucket(endpoint.client("s3"), BUCKET, settings.aws.region)
    role = "arn:aws:iam::123456789012:role/firehose"
    ensure_delivery_stream(endpoint.client("firehose"), name, BUCKET, f"{name}/", role)
    return name


def export_pipeline(loaded: Any, stream: str, **export: Any) -> Pipeline:
    """The demo pipeline with one export, `big_orders`, of processed.orders to ``stream``."""
    pipeline: Pipeline = loaded.pipeline
    spec = {"table": "processed.orders", "stream": stream, **export}
    return pipeline.model_copy(
        update={
            "firehose": [*pipeline.firehose, FirehoseStream(name=stream, bucket=BUCKET)],
            "exports": {"big_orders": Export.model_validate(spec)},
        }
    )


def write_orders(lake: Settings, ids: range, amount: float = 100.0) -> None:
    """Append orders ``ids`` to processed.orders."""
    path = lake.lake.table_path("processed", "orders")
    rows = pa.table(
        {
            "order_id": [f"o-{i}" for i in ids],
            "amount": pa.array([amount + i % 7 for i in ids], pa.float64()),
            "note": ["x" * 40] * len(ids),
        }
    )
    write_deltalake(path, rows, mode="append")


def export(pipeline: Pipeline, lake: Settings) -> BatchReport:
    return run_batch_job(BatchRun("export", pipeline, lake, no_spark))


def no_spark() -> Any:
    raise AssertionError("the export runs without Spark")


def delivered(endpoint: AwsEndpoint, stream: str) -> list[dict[str, Any]]:
    """Every record the delivery stream wrote to S3, in no particular order."""
    s3 = endpoint.client("s3")
    records = []
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{stream}/")
    for page in pages:
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read().decode()
            records += [json.loads(line) for line in body.splitlines() if line]
    return records


def ids_once(records: list[dict[str, Any]]) -> set[str]:
    """The order ids delivered, checking none came twice."""
    counts = Counter(r["order_id"] for r in records)
    twice = {k: v for k, v in counts.items() if v > 1}
    assert not twice, f"delivered more than once: {twice}"
    return set(counts)


def test_new_and_changed_rows_arrive_once_across_reruns(
    loaded: Any, lake: Settings, stream: str, settings: Settings
) -> None:
    """The table's change data feed is switched on after its first commit: the first export
    sends the table as it is, the next ones its changes."""
    endpoint = aws_endpoint(settings)
    pipeline = export_pipeline(loaded, stream, where="amount > 102", columns=["order_id", "amount"])
    write_orders(lake, range(0, 700))

    first = export(pipeline, lake)

    wanted = {f"o-{i}" for i in range(700) if 100 + i % 7 > 102}
    assert ids_once(delivered(endpoint, stream)) == wanted
    assert first.tables[0].action == "exported" and first.tables[0].rows_changed == len(wanted)
    assert export(pipeline, lake).tables[0].action == "unchanged"  # a rerun sends nothing
    assert ids_once(delivered(endpoint, stream)) == wanted

    table = DeltaTable(lake.lake.table_path("processed", "orders"))
    table.alter.set_table_properties({"delta.enableChangeDataFeed": "true"})
    write_orders(lake, range(700, 720))
    DeltaTable(lake.lake.table_path("processed", "orders")).update(
        updates={"amount": "500.0"}, predicate="order_id = 'o-1'"
    )
    export(pipeline, lake)

    records = delivered(endpoint, stream)
    updated = [r for r in records if r["order_id"] == "o-1"]
    assert updated == [
        {
            "order_id": "o-1",
            "amount": 500.0,
            "_change": "update_postimage",
            **version_and_id(updated),
        }
    ]
    rest = [r for r in records if r["order_id"] != "o-1"]
    assert ids_once(rest) == wanted | {f"o-{i}" for i in range(700, 720) if 100 + i % 7 > 102}
    assert set(records[0]) == {"order_id", "amount", "_change", "_version", "_export_id"}


def version_and_id(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {"_version": records[0]["_version"], "_export_id": records[0]["_export_id"]}


def test_injected_faults_are_retried_and_deliver_everything_once(
    loaded: Any, lake: Settings, stream: str, settings: Settings
) -> None:
    pipeline = export_pipeline(loaded, stream, max_attempts=20, backoff="10 milliseconds")
    write_orders(lake, range(0, 1800))
    with FaultProxy(settings.aws.endpoint_url or "", FaultPlan(share=0.6, seed=7)) as proxy:
        through = lake.model_copy(
            update={"aws": lake.aws.model_copy(update={"endpoint_url": proxy.url})}
        )
        report = export(pipeline, through)
    assert report.failed is None
    assert all(count > 0 for count in proxy.counts.injected.values()), proxy.counts
    assert ids_once(delivered(aws_endpoint(settings), stream)) == {f"o-{i}" for i in range(1800)}


def test_a_call_delivered_but_answered_with_an_error_is_resent_with_the_same_export_ids(
    loaded: Any, lake: Settings, stream: str, settings: Settings
) -> None:
    """The one case the export resends: Firehose delivered a call whose answer was lost.
    Its records arrive twice, each copy with the same ``_export_id``, by which a
    consumer keeps one."""
    pipeline = export_pipeline(loaded, stream)
    write_orders(lake, range(0, 1200))
    plan = FaultPlan(share=0.5, kinds=(LOST_ANSWER,), seed=1)
    with FaultProxy(settings.aws.endpoint_url or "", plan) as proxy:
        through = lake.model_copy(
            update={"aws": lake.aws.model_copy(update={"endpoint_url": proxy.url})}
        )
        report = export(pipeline, through)
    assert report.failed is None and proxy.counts.injected[LOST_ANSWER] > 0
    records = delivered(aws_endpoint(settings), stream)
    by_id: dict[str, set[str]] = {}
    for record in records:
        by_id.setdefault(record["_export_id"], set()).add(record["order_id"])
    assert len(records) > 1200  # some came twice
    assert all(len(orders) == 1 for orders in by_id.values())  # a copy is the same record
    assert {order for orders in by_id.values() for order in orders} == {
        f"o-{i}" for i in range(1200)
    }
    assert len(by_id) == 1200


def run_cli(config: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "streamlake", "--config", str(config), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def test_giving_up_exits_1_naming_what_is_missing_and_the_next_run_completes(
    loaded: Any, stream: str, settings: Settings, tmp_path: Path, stack_env: dict[str, str]
) -> None:
    pipeline = export_pipeline(loaded, stream, max_attempts=3, backoff="10 milliseconds")
    config = write_config_dir(tmp_path / "configs", pipeline, CONFIGS / "local.yaml")
    lake = with_lake(settings, tmp_path)
    write_orders(lake, range(0, 1200))
    env = cli_env(stack_env, tmp_path)
    plan = FaultPlan(share=1.0, kinds=("partial", "throttle"), seed=3)
    with FaultProxy(settings.aws.endpoint_url or "", plan) as proxy:
        result = run_cli(
            config, {**env, "STREAMLAKE__AWS__ENDPOINT_URL": proxy.url}, "batch", "run", "export"
        )
    assert result.returncode == EXIT_JOB_FAILED, result.stderr
    failure = [line for line in result.stdout.splitlines() if "export failed" in line]
    assert len(failure) == 1, result.stdout
    assert "processed.orders" in failure[0] and "versions 0..0" in failure[0]
    assert "of 1200 records" in failure[0] and "not delivered after 3 attempts" in failure[0]
    partly = delivered(aws_endpoint(settings), stream)
    assert len(ids_once(partly)) == proxy.counts.records_forwarded < 1200

    # Half delivered, the window is rebuilt only under the definition it was opened with.
    edited = export_pipeline(loaded, stream, where="amount > 0")
    edited_config = write_config_dir(tmp_path / "edited", edited, CONFIGS / "local.yaml")
    refused = run_cli(edited_config, env, "batch", "run", "export")
    assert refused.returncode == EXIT_BAD_USAGE, refused.stderr
    assert "changed while versions 0..0 were being delivered" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1

    result = run_cli(config, env, "batch", "run", "export")

    assert result.returncode == 0, result.stderr
    assert ids_once(delivered(aws_endpoint(settings), stream)) == {f"o-{i}" for i in range(1200)}


def test_a_sigkill_mid_export_resends_only_what_firehose_did_not_acknowledge(
    loaded: Any, stream: str, settings: Settings, tmp_path: Path, stack_env: dict[str, str]
) -> None:
    """The export is killed while Firehose holds its third call (two answered, one not):
    the rerun sends the rest, and nothing arrives twice."""
    pipeline = export_pipeline(loaded, stream)
    config = write_config_dir(tmp_path / "configs", pipeline, CONFIGS / "local.yaml")
    lake = with_lake(settings, tmp_path)
    write_orders(lake, range(0, 2100))
    env = cli_env(stack_env, tmp_path)
    with FaultProxy(settings.aws.endpoint_url or "", FaultPlan(hold_after=2)) as proxy:
        command = [sys.executable, "-m", "streamlake", "--config", str(config)]
        process = subprocess.Popen(
            [*command, "batch", "run", "export"],
            env={**env, "STREAMLAKE__AWS__ENDPOINT_URL": proxy.url},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            poll(lambda: proxy.counts.held or None, 120, "the third Firehose call")
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    first = delivered(aws_endpoint(settings), stream)
    assert len(ids_once(first)) == 1000  # two calls of 500

    result = run_cli(config, env, "batch", "run", "export", "--json")

    assert result.returncode == 0, result.stderr
    assert ids_once(delivered(aws_endpoint(settings), stream)) == {f"o-{i}" for i in range(2100)}
    (outcome,) = json.loads(result.stdout)["tables"]
    assert outcome["rows_changed"] == 1100 and "(1000 sent before)" in outcome["detail"]


def test_a_record_over_the_limit_is_kept_with_the_reason_not_sent(
    loaded: Any, lake: Settings, stream: str, settings: Settings
) -> None:
    path = lake.lake.table_path("processed", "orders")
    write_orders(lake, range(0, 3))
    huge = pa.table({"order_id": ["o-huge"], "amount": [1.0], "note": ["y" * 1_100_000]})
    write_deltalake(path, huge, mode="append")

    pipeline = export_pipeline(loaded, stream)
    report = export(pipeline, lake)

    assert "1 over 1,000 KiB kept in _meta/export_rejects" in report.tables[0].detail
    assert ids_once(delivered(aws_endpoint(settings), stream)) == {"o-0", "o-1", "o-2"}
    rejects = read_rows(lake.lake.meta_path("export_rejects"), lake)
    assert rejects is not None
    (reject,) = rejects.to_pylist()
    assert reject["export"] == "big_orders" and "over Firehose's 1024000" in reject["reason"]
    assert json.loads(reject["record"])["order_id"] == "o-huge"
    # A rerun of the window after a crash between keeping it and recording its position
    # accounts for the record again without keeping it twice.
    (target,) = selected_targets(BatchRun("export", pipeline, lake, no_spark))
    again = json.dumps({"_export_id": reject["export_id"], "note": "y" * 1_100_000}).encode()
    assert reject_oversized(target, lake, [(7, again)]) == [7]
    kept = read_rows(lake.lake.meta_path("export_rejects"), lake)
    assert kept is not None and kept.num_rows == 1


def test_an_export_of_a_column_the_table_lacks_is_a_one_line_error(
    loaded: Any, lake: Settings, stream: str, tmp_path: Path, stack_env: dict[str, str]
) -> None:
    write_orders(lake, range(0, 3))
    with pytest.raises(ConfigError, match=r"exports\.big_orders\.columns: customer not in"):
        export(export_pipeline(loaded, stream, columns=["order_id", "customer"]), lake)

    pipeline = export_pipeline(loaded, stream, where="amout > 1")
    config = write_config_dir(tmp_path / "configs", pipeline, CONFIGS / "local.yaml")
    result = run_cli(config, cli_env(stack_env, tmp_path), "batch", "run", "export")
    assert result.returncode == EXIT_BAD_USAGE, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "exports.big_orders" in lines[0] and "amout" in lines[0]


def test_an_export_refuses_to_run_while_another_process_exports_the_same(
    loaded: Any, lake: Settings, stream: str, settings: Settings
) -> None:
    """Two export runs at once would send the same window twice: the second is refused
    while the first's process lives, and runs once it has ended."""
    write_orders(lake, range(0, 10))
    pipeline = export_pipeline(loaded, stream)
    export(pipeline, lake)  # its lease file is left behind, released
    leases = TableLeases(location_files(lake.lake.meta_path(LEASES), lake))
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        leases.take("export.big_orders", "export")
        lease_file = Path(lake.lake.meta_path(LEASES)) / "export.big_orders.json"
        held = json.loads(lease_file.read_text())
        other = {"pid": running.pid, "pid_started_at": started_at(running.pid)}
        lease_file.write_text(json.dumps({**held, **other}))
        write_orders(lake, range(10, 20))
        with pytest.raises(LeaseHeldError, match=rf"export is already running \(pid {running.pid}"):
            export(pipeline, lake)
    finally:
        running.kill()
        running.wait()
    report = export(pipeline, lake)
    assert report.failed is None
    assert ids_once(delivered(aws_endpoint(settings), stream)) == {f"o-{i}" for i in range(20)}
