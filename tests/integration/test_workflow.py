"""`streamlake workflow run` with real jobs on real tables: a graph whose quality job fails
runs in dependency order, retries the failing job, runs its on_failure branch (the catalog
job, which registers the tables in the local Glue), skips its on_success dependants, sends
the failure notification through SNS, and `workflow history` shows it all; two runs of the
same workflow started together: one runs, the other is refused."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.aws import aws_endpoint
from connectors.sns import ensure_topic, received_notifications, subscribe_queue
from streamlake.config import LoadedConfig
from streamlake.config.pipeline import (
    Notifications,
    Pipeline,
    QualityRule,
    SnsTopic,
    Workflow,
    glue_name,
)
from streamlake.config.settings import Settings
from streamlake.lake.job_status import latest_status
from tests.conftest import CONFIGS
from tests.support import (
    append_processed,
    cli_env,
    coordinates,
    files_pipeline,
    orders_only_pipeline,
    poll,
    raw_rows,
    with_lake,
    write_config_dir,
)

pytestmark = [pytest.mark.integration]

GRAPH = {
    "jobs": {
        "compact": {},
        "quality": {"on_success": ["compact"], "retries": 1},
        "curate": {"on_success": ["quality"]},
        "catalog": {"on_failure": ["quality"]},
    },
    "retry_backoff": "1 second",
}


def run_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    from streamlake.cli.app import main

    monkeypatch.setattr(sys, "argv", ["streamlake", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


@pytest.mark.spark
def test_a_failing_job_retries_runs_its_failure_branch_and_stops_its_dependants(
    spark: Any,
    settings: Settings,
    loaded: LoadedConfig,
    stack_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    endpoint = aws_endpoint(settings)
    topic = f"alerts-{uuid.uuid4().hex[:8]}"
    ensure_topic(endpoint.client("sns"), topic)
    inbox = subscribe_queue(
        endpoint, topic, f"wf-{uuid.uuid4().hex[:8]}", {"event": ["workflow_failed"]}
    )
    pipeline = orders_only_pipeline(
        loaded.pipeline,
        "wf",
        quality={"processed.orders": [QualityRule(name="enough_orders", kind="row_count", min=10)]},
        notifications=Notifications(topic=topic),
        sns_topics=[SnsTopic(name=topic)],
        workflows={"nightly": Workflow.model_validate(GRAPH)},
    )
    lake = with_lake(settings, tmp_path)
    orders = [{"order_id": f"o-{n}", "customer_id": "c-1", "status": "paid"} for n in range(3)]
    append_processed(spark, lake, pipeline, "orders", orders)
    config_dir = write_config_dir(tmp_path / "configs", pipeline, CONFIGS / "local.yaml")
    for key, value in cli_env(stack_env, tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("COLUMNS", "200")

    code, out, err = run_main(
        monkeypatch, capsys, "--config", str(config_dir), "workflow", "run", "nightly"
    )
    assert code == 1, out + err
    failure = "quality: processed.orders: quality rule enough_orders failed: 3 rows"
    assert any(line.startswith(failure) for line in out.splitlines()), out

    code, out, err = run_main(
        monkeypatch, capsys, "--config", str(config_dir), "workflow", "history", "nightly", "--json"
    )
    assert code == 0, out + err
    [run] = json.loads(out)
    assert (run["state"], run["trigger"], run["error"]) == ("failed", "manual", "failed: quality")
    jobs = {j["job"]: j for j in run["jobs"]}
    outcomes = {name: (j["state"], j["attempts"]) for name, j in jobs.items()}
    assert outcomes == {
        "compact": ("succeeded", 1),
        "quality": ("failed", 2),  # retried once, as configured
        "catalog": ("succeeded", 1),  # the on_failure branch
        "curate": ("skipped", 0),  # on_success of quality
    }
    assert jobs["curate"]["error"] == "not run: quality failed"
    assert "enough_orders" in jobs["quality"]["error"]
    started = [
        datetime.fromisoformat(jobs[n]["started_at"]) for n in ("compact", "quality", "catalog")
    ]
    assert started == sorted(started)

    # The failure branch did its work: the processed table is in the Glue Data Catalog.
    glue = endpoint.client("glue")
    table = glue.get_table(DatabaseName=f"{glue_name(pipeline.name)}_processed", Name="orders")
    assert table["Table"]["Name"] == "orders"
    # Each job beat in _meta/job_status; the failed one says why.
    status = latest_status(lake.lake.meta_path("job_status"), lake)
    assert status["compact"].state == "stopped" and status["catalog"].state == "stopped"
    assert status["quality"].state == "failed" and "enough_orders" in (
        status["quality"].error or ""
    )

    found: list[dict[str, Any]] = []
    poll(
        lambda: found.extend(received_notifications(endpoint, inbox)) or found,
        30,
        "the notification",
    )
    [notification] = found
    assert notification["attributes"] == {
        "event": "workflow_failed",
        "job": "nightly",
        "severity": "error",
    }
    assert notification["message"]["subject"] == "workflow nightly failed at quality"
    assert notification["message"]["detail"].startswith(failure)


def test_two_runs_started_together_one_runs_one_is_refused(
    loaded: LoadedConfig, stack_env: dict[str, str], tmp_path: Path
) -> None:
    pipeline: Pipeline = orders_only_pipeline(
        loaded.pipeline, "wf2", workflows={"nightly": Workflow(steps=["compact"])}
    )
    config_dir = write_config_dir(tmp_path / "configs", pipeline, CONFIGS / "local.yaml")
    env = cli_env(stack_env, tmp_path) | {"COLUMNS": "200"}
    command = [
        sys.executable,
        "-m",
        "streamlake",
        "--config",
        str(config_dir),
        "workflow",
        "run",
        "nightly",
    ]
    both = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    results = [(p.wait(timeout=300), *p.communicate()) for p in both]
    refused = [r for r in results if "already running" in r[2]]
    ran = [r for r in results if "already running" not in r[2]]
    assert len(refused) == 1 and len(ran) == 1, results
    code, _, err = refused[0]
    assert code == 1
    [message] = [line for line in err.splitlines() if "already running" in line]
    assert message.startswith("error: workflow nightly is already running (pid "), err
    code, out, err = ran[0]
    assert code == 0, out + err
    assert "workflow nightly run" in out and "succeeded" in out

    history = subprocess.run(
        [*command[:-3], "workflow", "history", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    [run] = json.loads(history.stdout)
    assert run["state"] == "succeeded" and [j["job"] for j in run["jobs"]] == ["compact"]


def test_files_dropped_through_boto3_start_the_on_arrival_workflow(
    settings: Settings, stack_env: dict[str, str], tmp_path: Path
) -> None:
    from connectors.files.arrivals import arrival_queue_name
    from connectors.s3 import ensure_bucket
    from streamlake.local.resources import declared_resources, ensure_all

    aws = aws_endpoint(settings)
    s3 = aws.client("s3")
    bucket = f"landing-{uuid.uuid4().hex[:10]}"
    ensure_bucket(s3, bucket, aws.region)
    pipeline = files_pipeline(
        f"s3://{bucket}",
        name=f"arrive-{uuid.uuid4().hex[:8]}",
        workflows={"returns-arrived": {"steps": ["ingest-events"], "on_arrival": "returns"}},
    )
    # What `local up` does: the queue, and the bucket's notification of new landing files.
    created = {(r.kind, r.state) for r in ensure_all(declared_resources(pipeline, settings, aws))}
    assert ("sqs queue", "created") in created and ("s3 notification", "created") in created
    queue = arrival_queue_name(pipeline.name, "returns")
    config_dir = write_config_dir(tmp_path / "configs", pipeline, CONFIGS / "local.yaml")
    env = cli_env(stack_env, tmp_path) | {"COLUMNS": "200"}
    command = [sys.executable, "-m", "streamlake", "--config", str(config_dir), "workflow"]
    serve = subprocess.Popen(
        [*command, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    try:
        assert serve.stdout is not None
        poll(lambda: lines.append(serve.stdout.readline()) or "serving" in lines[-1], 60, "serve")
        assert "returns-arrived (new files of returns)" in lines[-1]
        header = "return_id,order_id,sku,qty,reason,amount,currency,returned_at\n"
        for n in range(2):
            body = header + "".join(
                f"r-{n}-{i},o-{i},SKU-1,1,damaged,9.99,EUR,2026-11-28T10:00:00Z\n" for i in range(5)
            )
            s3.put_object(Bucket=bucket, Key=f"landing/drop-{n}.csv", Body=body.encode())

        def arrival_runs() -> list[dict[str, Any]] | None:
            """The arrival runs, once every file's rows landed and none runs."""
            history = subprocess.run(
                [*command, "history", "--json"],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            runs = [r for r in json.loads(history.stdout or "[]") if r["trigger"] == "arrival"]
            landed = len(raw_rows(with_lake(settings, tmp_path))) == 10
            return runs if landed and runs and all(r["state"] != "running" for r in runs) else None

        runs = poll(arrival_runs, 300, "the arrival runs", every_s=2)
    finally:
        serve.send_signal(signal.SIGTERM)
        try:
            rest, _ = serve.communicate(timeout=120)
        finally:
            serve.kill()
    assert all(r["state"] == "succeeded" for r in runs), runs
    assert serve.returncode == 0, "".join(lines) + rest
    assert "returns-arrived: started (arrival)" in "".join(lines) + rest
    rows = raw_rows(with_lake(settings, tmp_path))
    assert len(rows) == 10 and len(set(coordinates(rows))) == 10  # each file's rows, once
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="archive/").get("Contents", [])
    assert sorted(o["Key"] for o in listed) == ["archive/drop-0.csv", "archive/drop-1.csv"]
    # The archive copies did not start the workflow again: the notification is the landing's.
    sqs = aws.client("sqs")
    url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    assert sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", []) == []


def test_a_run_lease_on_s3_is_created_once(settings: Settings) -> None:
    from connectors.s3 import ensure_bucket
    from streamlake.errors import LeaseHeldError
    from streamlake.lake.files import LocationFiles
    from streamlake.lake.leases import TableLeases

    aws = aws_endpoint(settings)
    s3 = aws.client("s3")
    bucket = f"lake-{uuid.uuid4().hex[:10]}"
    ensure_bucket(s3, bucket, aws.region)
    files = LocationFiles(f"s3a://{bucket}/_meta/leases", s3)
    # The conditional PUT (If-None-Match) the run lease is created with.
    assert files.create("probe.json", "{}") is True
    assert files.create("probe.json", "{}") is False
    # A lease another host holds (fresh) refuses the run; expired, it is taken over.
    other = {
        "table": "workflow-nightly",
        "holder": "workflow nightly",
        "host": "another-host",
        "pid": 7,
        "renewed_at": 1_000.0,
        "ttl_s": 120.0,
    }
    files.write("workflow-nightly.json", json.dumps(other))
    with pytest.raises(LeaseHeldError):
        TableLeases(files, clock=lambda: 1_050.0).take_alone("workflow-nightly", "workflow nightly")
    TableLeases(files, clock=lambda: 1_200.0).take_alone("workflow-nightly", "workflow nightly")
    assert json.loads(files.read("workflow-nightly.json") or "{}")["host"] != "another-host"
