"""The same jobs on a real Spark cluster: a standalone master and two workers on 127.0.0.1
(started with pyspark's own `spark-class`), the jobs submitted with `spark-submit` as the
entry scripts `deploy package` writes, the code shipped to the executors as the wheel in
`--py-files`: the executors' Python has the project's dependencies but not the project.
Kafka and Kinesis ingest and the orders processing give the rows local mode gives on the
same input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyspark
import pytest

from connectors.aws import aws_endpoint
from streamlake.config.ddl import columns as ddl_columns
from streamlake.config.pipeline import KafkaSource, KinesisSource, Pipeline
from streamlake.config.settings import Settings
from streamlake.local.resources import declared_resources, ensure_all
from streamlake.paths import checkout_root
from streamlake.produce.events import EventMix
from streamlake.produce.runner import produce
from streamlake.spark_session import spark_jars
from tests.conftest import CONFIGS, free_ports
from tests.support import cli_env, lake_rows, poll, with_lake, write_config_dir

pytestmark = pytest.mark.integration

SPARK_HOME = Path(pyspark.__file__).parent
JOBS = ("ingest-orders", "ingest-clickstream", "process-orders")
RECORDS = 200


@pytest.fixture(scope="module")
def master(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """spark://127.0.0.1:<port> with two workers of one core each registered."""
    work = tmp_path_factory.mktemp("cluster")
    port, ui, *worker_uis = free_ports(4)
    env = {**os.environ, "SPARK_HOME": str(SPARK_HOME), "SPARK_LOCAL_IP": "127.0.0.1"}
    env["SPARK_DAEMON_MEMORY"] = "256m"
    spark_class = str(SPARK_HOME / "bin" / "spark-class")
    url = f"spark://127.0.0.1:{port}"
    started = [
        subprocess.Popen(
            [
                spark_class,
                "org.apache.spark.deploy.master.Master",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--webui-port",
                str(ui),
            ],
            env=env,
            stdout=(work / "master.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
    ]
    for index, worker_ui in enumerate(worker_uis):
        started.append(
            subprocess.Popen(
                [
                    spark_class,
                    "org.apache.spark.deploy.worker.Worker",
                    url,
                    "--host",
                    "127.0.0.1",
                    "--cores",
                    "1",
                    "--memory",
                    "1g",
                    "--webui-port",
                    str(worker_ui),
                    "--work-dir",
                    str(work / f"worker-{index}"),
                ],
                env=env,
                stdout=(work / f"worker-{index}.log").open("wb"),
                stderr=subprocess.STDOUT,
            )
        )
    try:
        poll(lambda: alive_workers(ui) == 2, 120, "two workers registered with the master")
        yield url
    finally:
        for process in reversed(started):
            process.terminate()
        for process in started:
            process.wait(timeout=60)


def alive_workers(ui: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ui}/json/", timeout=2) as answer:
            state = json.load(answer)
    except OSError:
        return 0
    return sum(1 for worker in state.get("workers", []) if worker.get("state") == "ALIVE")


def executor_python(folder: Path) -> Path:
    """A virtualenv that sees the project's dependencies (the test's site-packages as a
    plain path) but not the project itself (its editable install's hook is not run)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    site = next(p for p in sys.path if p.endswith("site-packages"))
    (next((folder / "lib").glob("python3*")) / "site-packages" / "deps.pth").write_text(site + "\n")
    python = folder / "bin" / "python"
    probe = (
        "import boto3, pydantic, pyspark\n"
        "try:\n import streamlake\nexcept ImportError:\n print('absent')"
    )
    result = subprocess.run([python, "-c", probe], capture_output=True, text=True, cwd=folder)
    assert result.stdout.strip() == "absent", result.stderr
    return python


def cluster_pipeline(loaded: Any) -> Pipeline:
    suffix = uuid.uuid4().hex[:8]
    shop: Pipeline = loaded.pipeline
    sources = {
        "orders": KafkaSource(kind="kafka", topic=f"cluster-orders-{suffix}", partitions=2),
        "clickstream": KinesisSource(kind="kinesis", stream=f"cluster-clicks-{suffix}", shards=2),
    }
    return shop.model_copy(
        update={
            "name": f"cluster_{suffix}",
            "sources": sources,
            "tables": {t: shop.tables[t] for t in sources},
            "jobs": {j: shop.jobs[j] for j in JOBS},
            "workflows": {},
            "curated": {},
            "quality": {},
            "exports": {},
            "crawlers": {},
            "firehose": [],
            "buckets": [],
        }
    )


def run_locally(spark: Any, settings: Settings, pipeline: Pipeline) -> None:
    from streaming import runtime
    from streaming.ingest import ingest_job
    from streaming.process import process_job

    aws = aws_endpoint(settings)
    for job in JOBS[:2]:
        stream_job = ingest_job(spark, job, pipeline, settings, aws, available_now=True)
        runtime.run([stream_job], runtime.RunMode(available_now=True), runtime.StopSignal())
    stream_job = process_job(spark, JOBS[2], pipeline, settings)
    runtime.run([stream_job], runtime.RunMode(available_now=True), runtime.StopSignal())


def submit(
    job: str, master: str, package: Path, config: Path, env: dict[str, str], python: Path
) -> None:
    (wheel,) = (package / "dist").glob("streamlake-*.whl")
    command = [str(SPARK_HOME / "bin" / "spark-submit"), "--master", master]
    # The JVM jars go on the driver's class path at its start (--jars), as on any cluster.
    jars = ",".join(str(jar) for jar in spark_jars(checkout_root() / ".jars" / "spark"))
    command += ["--jars", jars, "--py-files", str(wheel)]
    command += ["--conf", f"spark.pyspark.python={python}"]
    command += ["--conf", f"spark.pyspark.driver.python={sys.executable}"]
    command += ["--conf", "spark.executor.memory=512m", "--conf", "spark.cores.max=2"]
    command += [str(package / "glue" / f"{job}.py"), "--JOB_NAME", job, "--env", "local"]
    command += ["--pipeline-config", str(config), "--available-now", "true"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (
        f"{job} on the cluster: {result.stdout[-2000:]} {result.stderr[-3000:]}"
    )


def comparable(settings: Settings, layer: str, table: str, columns: list[str]) -> list[Any]:
    rows = lake_rows(settings, layer, table)
    return sorted(tuple(str(row[c]) for c in columns) for row in rows)


def test_the_jobs_on_a_standalone_cluster_give_the_rows_of_local_mode(
    master: str,
    spark: Any,
    loaded: Any,
    stack_env: dict[str, str],
    tmp_path: Path,
) -> None:
    pipeline = cluster_pipeline(loaded)
    settings: Settings = loaded.settings
    aws = aws_endpoint(settings)
    ensure_all(declared_resources(pipeline, settings, aws))
    for source in ("orders", "clickstream"):
        produce(source, pipeline, settings, aws, EventMix(RECORDS, 0.05, 0.05, seed=11))

    local = with_lake(settings, tmp_path / "local")
    run_locally(spark, local, pipeline)

    package = tmp_path / "glue"
    env = cli_env(stack_env, tmp_path / "cluster")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "streamlake",
            "--config",
            str(CONFIGS),
            "--env",
            "dev",
            "deploy",
            "package",
            "--out",
            str(package),
        ],
        env={k: v for k, v in env.items() if not k.startswith("STREAMLAKE")},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    config = write_config_dir(
        tmp_path / "configs", pipeline, checkout_root() / "configs" / "local.yaml"
    )
    env.update({"SPARK_HOME": str(SPARK_HOME), "SPARK_LOCAL_IP": "127.0.0.1"})
    env["STREAMLAKE__SPARK__MASTER"] = master
    # The code comes from the wheel, far from a checkout: the jars are named.
    env["STREAMLAKE__SPARK__JARS_DIR"] = str(checkout_root() / ".jars" / "spark")
    python = executor_python(tmp_path / "executor-venv")
    for job in JOBS:
        submit(job, master, package, config, env, python)

    cluster = with_lake(settings, tmp_path / "cluster")
    raw = ["source", "stream", "partition", "position", "key", "payload"]
    for table in ("orders", "clickstream"):
        expected = comparable(local, "raw", table, raw)
        assert len(expected) == RECORDS, table
        assert comparable(cluster, "raw", table, raw) == expected, table
    declared = [name for name, _ in ddl_columns(pipeline.tables["orders"].schema_ddl)]
    columns = [*declared, "_source", "_stream", "_partition", "_position"]
    processed = comparable(local, "processed", "orders", columns)
    assert processed and comparable(cluster, "processed", "orders", columns) == processed
    quarantine = ["source", "stream", "partition", "position", "error_kind", "rule"]
    assert comparable(cluster, "quarantine", "orders", quarantine) == comparable(
        local, "quarantine", "orders", quarantine
    )
