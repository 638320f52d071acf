"""Helpers shared by the integration tests: one-source pipelines, config directories for
the CLI, raw-table reads, and job subprocesses that can be killed like a crashed machine."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import yaml

from streamlake.config.pipeline import Pipeline
from streamlake.config.settings import LakeSettings, Settings
from streamlake.lake.delta_rs import read_rows
from streamlake.lake.tables import RAW
from streamlake.paths import checkout_root

T = TypeVar("T")


# Glue API calls that write, by their boto3 method names.
GLUE_WRITE_PREFIXES = (
    "create_",
    "update_",
    "delete_",
    "batch_create",
    "batch_update",
    "batch_delete",
)


class CountingGlue:
    """A real Glue client, counting the write calls made through it."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.writes: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.client, name)
        if not name.startswith(GLUE_WRITE_PREFIXES):
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.writes.append(name)
            return attribute(*args, **kwargs)

        return counted


def one_source_pipeline(source: dict[str, Any], trigger: str = "1 second") -> Pipeline:
    """A pipeline with a single source ``events``, its table and ``ingest-events``."""
    return Pipeline.model_validate(
        {
            "name": "test",
            "sources": {"events": source},
            "tables": {"events": {"source": "events", "schema_ddl": "id STRING"}},
            "jobs": {"ingest-events": {"kind": "ingest", "table": "events", "trigger": trigger}},
        }
    )


def orders_only_pipeline(pipeline: Pipeline, prefix: str, **update: Any) -> Pipeline:
    """``pipeline`` cut to its `orders` table (no curated tables, exports or quality rules
    of the tables dropped), under a name of its own so its Glue databases are the test's;
    ``update`` sets further fields."""
    jobs = {n: j for n, j in pipeline.jobs.items() if j.table in (None, "orders")}
    return pipeline.model_copy(
        update={
            "name": f"{prefix}_{uuid.uuid4().hex[:10]}",
            "tables": {"orders": pipeline.tables["orders"]},
            "curated": {},
            "exports": {},
            "quality": {},
            "jobs": jobs,
            "workflows": {
                n: w for n, w in pipeline.workflows.items() if set(w.graph()) <= set(jobs)
            },
            **update,
        }
    )


def with_lake(settings: Settings, root: Path) -> Settings:
    lake = LakeSettings(root=str(root / "lake"), checkpoint_root=str(root / "checkpoints"))
    return settings.model_copy(update={"lake": lake})


def write_config_dir(directory: Path, pipeline: Pipeline, local_yaml: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    dumped = pipeline.model_dump(mode="json", exclude_none=True)
    (directory / "pipeline.yaml").write_text(yaml.safe_dump(dumped))
    (directory / "local.yaml").write_text(local_yaml.read_text())
    return directory


def raw_rows(settings: Settings, table: str = "events") -> list[dict[str, Any]]:
    return lake_rows(settings, "raw", table)


def coordinates(rows: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    return [(r["source"], r["stream"], r["partition"], r["position"]) for r in rows]


def poll(check: Callable[[], T | None], timeout_s: float, what: str, every_s: float = 0.25) -> T:
    """Return the first truthy result of ``check``, or fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(every_s)


def cli_env(overrides: dict[str, str], lake_root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLAKE")}
    env.update(overrides)
    env["STREAMLAKE__LAKE__ROOT"] = str(lake_root / "lake")
    env["STREAMLAKE__LAKE__CHECKPOINT_ROOT"] = str(lake_root / "checkpoints")
    return env


def start_job(
    config_dir: Path, env: dict[str, str], *args: str, log: Path
) -> subprocess.Popen[bytes]:
    """`streamlake stream run ...` in its own process group, output to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlake",
                "--config",
                str(config_dir),
                "stream",
                "run",
                *args,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )


def kill_hard(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the job's whole process group (driver, JVM, Python workers): a crash."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)


def committed_batches(checkpoint: Path) -> int:
    commits = checkpoint / "commits"
    return len([p for p in commits.iterdir() if p.name.isdigit()]) if commits.is_dir() else 0


def wait_for_next_commit(checkpoint: Path, timeout_s: float = 120) -> None:
    """Wait until the job commits one more batch than it had now."""
    before = committed_batches(checkpoint)
    poll(lambda: committed_batches(checkpoint) > before, timeout_s, "a batch to commit")


def write_raw(
    spark: Any,
    settings: Settings,
    table: str,
    payloads: list[bytes],
    *,
    stream: str = "orders",
    partition: str = "0",
    first_position: int = 0,
    commits: int = 1,
) -> None:
    """Append payloads to raw.<table> as an ingest job would, in ``commits`` Delta commits."""
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    rows = [
        (p, "kafka", stream, partition, str(first_position + i), f"k{i}", now, now, now.date())
        for i, p in enumerate(payloads)
    ]
    schema = RAW.ddl
    size = max(1, -(-len(rows) // commits))
    for start in range(0, len(rows), size):
        frame = spark.createDataFrame(rows[start : start + size], schema)
        frame.write.format("delta").mode("append").partitionBy("ingest_date").save(
            settings.lake.table_path("raw", table)
        )


def lake_rows(settings: Settings, layer: str, table: str) -> list[dict[str, Any]]:
    rows = read_rows(settings.lake.table_path(layer, table), settings)
    return [] if rows is None else rows.to_pylist()


@dataclass(frozen=True)
class CliJob:
    """One streaming job run through the CLI: its config directory, environment,
    checkpoint and log, shared by its successive runs."""

    name: str
    config_dir: Path
    env: dict[str, str]
    checkpoint: Path
    log: Path

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        return start_job(self.config_dir, self.env, self.name, *args, log=self.log)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "streamlake", "--config", str(self.config_dir)]
        return subprocess.run(
            [*command, "stream", "run", self.name, *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=300,
        )


def cli_job(
    tmp_path: Path, stack_env: dict[str, str], pipeline: Pipeline, name: str = "ingest-events"
) -> CliJob:
    local_yaml = checkout_root() / "configs" / "local.yaml"
    return CliJob(
        name,
        write_config_dir(tmp_path / "configs", pipeline, local_yaml),
        cli_env(stack_env, tmp_path),
        tmp_path / "checkpoints" / name,
        tmp_path / "job.log",
    )


def kill_at_random_points(
    job: CliJob, rounds: int = 3, commit_timeout_s: float = 120, seed: int | None = None
) -> None:
    """Start the job and SIGKILL it at a random moment: first while it may still be starting
    (before its first commit), then ``rounds`` times a random moment after a commit, mid-batch
    or between batches. The kill points come from ``seed``, printed and named on failure so
    that a failing run can be repeated."""
    seed = random.randrange(2**32) if seed is None else seed
    print(f"kill points of {job.name} drawn from seed {seed}")
    rng = random.Random(seed)
    try:
        process = job.start()
        try:
            time.sleep(rng.uniform(0.5, 6.0))  # a random kill point, not synchronisation
        finally:
            kill_hard(process)
        for _round in range(rounds):
            process = job.start()
            try:
                wait_for_next_commit(job.checkpoint, commit_timeout_s)
                time.sleep(rng.uniform(0.0, 2.0))  # a random kill point, mid-batch or between
            finally:
                kill_hard(process)
    except BaseException as failure:
        failure.add_note(f"kill points of {job.name} were drawn from seed {seed}")
        raise


def run_process(
    spark: Any,
    settings: Settings,
    pipeline: Pipeline,
    job: str = "process-orders",
    recover: Any = None,
) -> None:
    """Run a process job with --available-now on the shared SparkSession."""
    from streaming import runtime
    from streaming.process import process_job

    stream_job = process_job(spark, job, pipeline, settings, recover)
    runtime.run([stream_job], runtime.RunMode(available_now=True), runtime.StopSignal())


def run_in_process(spark: Any, settings: Settings, pipeline: Pipeline) -> None:
    """Run the pipeline's ``ingest-events`` with --available-now on the shared SparkSession."""
    from connectors.aws import aws_endpoint
    from streaming import runtime
    from streaming.ingest import ingest_job

    job = ingest_job(spark, "ingest-events", pipeline, settings, aws_endpoint(settings), True)
    runtime.run([job], runtime.RunMode(available_now=True), runtime.StopSignal())


def with_table(pipeline: Pipeline, name: str, **changes: Any) -> Pipeline:
    """``pipeline`` with fields of table ``name`` changed."""
    tables = dict(pipeline.tables)
    tables[name] = tables[name].model_copy(update=changes)
    return pipeline.model_copy(update={"tables": tables})


PROCESSED_LINEAGE_DDL = (
    "_source STRING, _stream STRING, _partition STRING, _position STRING, "
    "_ingest_ts TIMESTAMP, _late BOOLEAN"
)


def append_processed(
    spark: Any,
    settings: Settings,
    pipeline: Pipeline,
    table: str,
    rows: list[dict[str, Any]],
    ingested: datetime | None = None,
) -> None:
    """Append ``rows`` (declared columns, and _op/_sequence_number for CDC tables) to
    processed.<table> with lineage and the event_date the process job gives them (the
    event time's date, else the ingest time's), ingested at ``ingested`` (default now)."""
    import uuid

    spec = pipeline.tables[table]
    cdc = ", _op STRING, _sequence_number STRING" if spec.cdc else ""
    ddl = f"{spec.schema_ddl}, {PROCESSED_LINEAGE_DDL}{cdc}, event_date DATE"
    schema = spark.createDataFrame([], ddl).schema
    at = ingested or datetime.now(UTC).replace(tzinfo=None)
    filled = []
    for index, row in enumerate(rows):
        event_time = row.get(spec.event_time or "") or at
        lineage = {
            "_source": "test",
            "_stream": table,
            "_partition": "0",
            "_position": f"{uuid.uuid4().hex}-{index}",
            "_ingest_ts": at,
            "_late": False,
            "event_date": event_time.date(),
        }
        filled.append(tuple({**lineage, **row}.get(f.name) for f in schema.fields))
    path = settings.lake.table_path("processed", table)
    spark.createDataFrame(filled, schema).write.format("delta").mode("append").partitionBy(
        "event_date"
    ).save(path)


def kafka_progress(lag_end: int, lag_latest: int, job: str = "ingest-orders") -> Any:
    """A listener event as Spark gives it for one batch of ``job`` (500 rows, 2 s), whose
    Kafka source ended at ``lag_end`` with the topic at ``lag_latest``."""
    from types import SimpleNamespace

    source = SimpleNamespace(
        metrics={},
        endOffset=f'{{"orders": {{"0": {lag_end}}}}}',
        latestOffset=f'{{"orders": {{"0": {lag_latest}}}}}',
    )
    return SimpleNamespace(
        progress=SimpleNamespace(
            name=job,
            batchId=3,
            numInputRows=500,
            processedRowsPerSecond=250.0,
            durationMs={"triggerExecution": 2000},
            sources=[source],
        )
    )


RETURNS_DDL = (
    "return_id STRING, order_id STRING, sku STRING, qty INT, reason STRING, "
    "amount DECIMAL(12,2), currency STRING, returned_at TIMESTAMP"
)


def files_pipeline(place: str, fmt: str = "csv", **update: Any) -> Pipeline:
    """A pipeline whose table ``events`` is fed by a files source (returns) under ``place``:
    ``landing``, ``archive`` and ``errors``; ``update`` sets further fields."""
    source = {
        "kind": "files",
        "path": f"{place}/landing",
        "archive": f"{place}/archive",
        "errors": f"{place}/errors",
        "format": fmt,
    }
    return Pipeline.model_validate(
        {
            "name": "test",
            "sources": {"returns": source},
            "tables": {
                "events": {
                    "source": "returns",
                    "format": "csv" if fmt == "csv" else "json",
                    "schema_ddl": RETURNS_DDL,
                    "event_id": "return_id",
                    "event_time": "returned_at",
                    "event_time_skew": None,
                    "rules": [{"name": "qty_positive", "kind": "range", "column": "qty", "min": 1}],
                }
            },
            "jobs": {
                "ingest-events": {"kind": "ingest", "table": "events", "trigger": "1 second"},
                "process-events": {"kind": "process", "table": "events"},
            },
        }
        | update
    )


PRODUCTS_DDL = (
    "product_id STRING, name STRING, category STRING, price DECIMAL(10,2), stock INT, "
    "updated_at TIMESTAMP"
)


def jdbc_pipeline(table: str, overlap: str | int | None = None) -> Pipeline:
    """A pipeline whose table ``products`` is pulled from the database table ``table`` of
    the local environment's connection ``shop_db`` by ``pull-products``."""
    return Pipeline.model_validate(
        {
            "name": "test",
            "sources": {
                "products": {
                    "kind": "jdbc",
                    "connection": "shop_db",
                    "table": table,
                    "key": ["product_id"],
                    "bookmark": "updated_at",
                    "overlap": overlap,
                }
            },
            "tables": {
                "products": {
                    "source": "products",
                    "schema_ddl": PRODUCTS_DDL,
                    "event_time": "updated_at",
                    "event_time_skew": None,
                    "rules": [
                        {"name": "price_positive", "kind": "range", "column": "price", "min": 0.01}
                    ],
                }
            },
            "jobs": {
                "pull-products": {"kind": "pull", "table": "products"},
                "process-products": {"kind": "process", "table": "products"},
            },
        }
    )
