"""Lake state left stale by a local source that was created anew.

The local AWS server keeps streams and tables in memory and saves them when it stops; when
that state is gone (the server was killed, or its state folder removed), after `local up`
the Kinesis stream and the DynamoDB table are new and empty, while the raw, processed and
quarantine tables and the jobs' checkpoints in the local lake still describe the old ones
(their positions point into records that no longer exist). The same holds for a Kafka topic
whose broker data was removed. The demo resets that state rather than misread it.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from connectors.registry import source_kind
from streamlake.config.pipeline import Pipeline
from streamlake.config.settings import Settings
from streamlake.lake.delta_rs import delta_table_exists, open_delta_table
from streamlake.lake.tables import STREAMING_LAYERS
from streamlake.local.resources import ResourceStatus

log = logging.getLogger(__name__)


def sources_created_anew(pipeline: Pipeline, resources: list[ResourceStatus]) -> list[str]:
    created = {(r.kind, r.name) for r in resources if r.state == "created"}
    return [
        name
        for name, source in pipeline.sources.items()
        if source_kind(source).resource_identity(source) in created
    ]


def reset_lake_state(pipeline: Pipeline, settings: Settings, source: str) -> list[str]:
    """Remove the lake tables, checkpoints and batch metrics of the jobs reading ``source``;
    return what was removed. Only for a lake on the local file system."""
    tables = [name for name, table in pipeline.tables.items() if table.source == source]
    jobs = [name for name, job in pipeline.jobs.items() if job.table in tables]
    paths = [Path(settings.lake.table_path(layer, t)) for t in tables for layer in STREAMING_LAYERS]
    paths += [Path(settings.lake.checkpoint_path(job)) for job in jobs]
    removed = [str(p) for p in paths if p.exists()]
    for path in removed:
        shutil.rmtree(path)
    metrics = settings.lake.meta_path("batch_metrics")
    if jobs and delta_table_exists(metrics, settings):
        # The restarted jobs count batches from 0 again; their old metrics rows would be
        # taken for the new ones.
        listed = ", ".join(f"'{job}'" for job in jobs)
        open_delta_table(metrics, settings).delete(f"job IN ({listed})")
        removed.append(f"{metrics} (rows of {', '.join(jobs)})")
    return removed
