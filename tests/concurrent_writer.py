"""One of several Spark drivers writing the same Delta tables at once (run by
tests/integration/test_concurrent_writers.py, one process per writer).

    python -m tests.concurrent_writer <job> <batches> <signal-file>

Settings come from the STREAMLAKE__ environment, as for the CLI. The driver touches
``<signal-file>.<job>`` once Spark is up and waits until ``signal-file`` exists, so that the
writers act together. Then:

1. it commits version 0 of the ``_meta/race`` table's log through the log store Delta uses
   for s3a:// (the two drivers' commits of one version overlap: the file is large, so its
   upload is slow) and writes ``won`` or ``refused`` to ``<signal-file>.<job>.race``;
2. it records ``batches`` metrics rows for ``job`` in the lake's shared metrics table, as a
   process job does after each batch, and appends one row per batch to
   ``_meta/concurrent_rows``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streaming.batch_metrics import BatchCounts, MetricsRecorder, ensure_metrics_table
from streamlake.config import load_config
from streamlake.lake.spark_delta import IdempotentDeltaAppend, ensure_table
from streamlake.lake.tables import Contract
from streamlake.paths import checkout_root
from streamlake.spark_session import CONDITIONAL_PUT_LOG_STORE, build_spark_session

START_DEADLINE_S = 300
ROWS = Contract((("writer", "STRING"), ("seq", "INT")))
# Size of the racing commit: slow enough to upload that both drivers are writing it at once.
RACE_BYTES = 8_000_000


def main(job: str, batches: int, signal: Path) -> None:
    settings = load_config("local", checkout_root() / "configs", environ=os.environ).settings
    spark = build_spark_session(settings, app_name=f"writer-{job}")
    race = f"{settings.lake.meta_path('race')}/_delta_log/00000000000000000000.json"
    commit = prepare_commit(spark, race, job)
    Path(f"{signal}.{job}").touch()
    deadline = time.monotonic() + START_DEADLINE_S
    while not signal.exists():
        if time.monotonic() > deadline:
            sys.exit(f"writer {job}: no start signal within {START_DEADLINE_S} s")
        time.sleep(0.005)
    Path(f"{signal}.{job}.race").write_text(commit())

    metrics_path = settings.lake.meta_path("batch_metrics")
    rows_path = settings.lake.meta_path("concurrent_rows")
    ensure_metrics_table(spark, metrics_path)
    ensure_table(spark, rows_path, ROWS)
    recorder = MetricsRecorder(job, IdempotentDeltaAppend(metrics_path, job), background=False)
    for batch_id in range(batches):
        counts = BatchCounts(batch_id, batch_id, quarantined={}, duplicates=0, late=0)
        recorder.record(spark, batch_id, counts)
        row = spark.createDataFrame([(job, batch_id)], ROWS.ddl)
        row.write.format("delta").mode("append").save(rows_path)
    spark.stop()


def prepare_commit(spark: Any, path: str, job: str) -> Callable[[], str]:
    """A call that writes ``path`` if absent through the s3a log store Delta is configured
    with, as Delta commits a version, and says whether it ``won`` or was ``refused``."""
    jvm = spark._jvm
    conf = spark._jsc.hadoopConfiguration()
    if spark.conf.get("spark.delta.logStore.s3a.impl", "") == CONDITIONAL_PUT_LOG_STORE:
        store = jvm.dev.streamlake.delta.S3ConditionalPutLogStore(conf)
    else:
        store = jvm.io.delta.storage.S3SingleDriverLogStore(conf)
    line = json.dumps({"commitInfo": {"writer": job, "padding": "x" * RACE_BYTES}})
    lines = jvm.java.util.ArrayList()
    lines.add(line)
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)

    def commit() -> str:
        try:
            store.write(hadoop_path, lines.iterator(), False, conf)
        except Exception as exc:
            if "FileAlreadyExistsException" in str(exc):
                return "refused"
            raise
        return "won"

    return commit


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))
