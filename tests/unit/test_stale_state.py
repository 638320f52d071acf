"""After the local AWS server lost a stream or table, the demo resets the lake state that
described the old one: tables, checkpoints and the jobs' batch-metrics rows."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from streamlake.config import load_config
from streamlake.local.resources import ResourceStatus
from streamlake.local.stale_state import reset_lake_state, sources_created_anew
from tests.conftest import CONFIGS
from tests.support import with_lake


def test_only_sources_created_now_are_reset(tmp_path: Path) -> None:
    loaded = load_config("local", CONFIGS, environ={})
    pipeline = loaded.pipeline
    statuses = [
        ResourceStatus("kafka topic", "orders", "exists"),
        ResourceStatus("kinesis stream", "clickstream", "created"),
        ResourceStatus("s3 bucket", "shop-lake", "created"),
    ]
    assert sources_created_anew(pipeline, statuses) == ["clickstream"]

    settings = with_lake(loaded.settings, tmp_path)
    for layer in ("raw", "processed"):
        for table in ("orders", "clickstream"):
            Path(settings.lake.table_path(layer, table)).mkdir(parents=True)
    for job in ("ingest-clickstream", "process-clickstream", "ingest-orders"):
        Path(settings.lake.checkpoint_path(job)).mkdir(parents=True)
    metrics = tmp_path / "lake" / "_meta" / "batch_metrics"
    jobs = ["process-orders", "process-clickstream", "process-clickstream"]
    write_deltalake(str(metrics), pa.table({"job": jobs, "batch_id": [0, 0, 1]}))

    reset_lake_state(pipeline, settings, "clickstream")

    assert not Path(settings.lake.table_path("raw", "clickstream")).exists()
    assert not Path(settings.lake.table_path("processed", "clickstream")).exists()
    assert not Path(settings.lake.checkpoint_path("process-clickstream")).exists()
    assert Path(settings.lake.table_path("raw", "orders")).is_dir()
    assert Path(settings.lake.checkpoint_path("ingest-orders")).is_dir()
    assert DeltaTable(str(metrics)).to_pyarrow_table().column("job").to_pylist() == [
        "process-orders"
    ]
