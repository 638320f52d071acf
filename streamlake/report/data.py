"""What the HTML report shows, gathered from the lake without Spark: the pipeline's graph
from its config, the jobs' heartbeats, quarantine counts, and table sizes from delta-rs."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from streamlake.config.pipeline import STREAMING_JOB_KINDS, Pipeline
from streamlake.config.settings import Settings
from streamlake.lake.delta_rs import TableSize, read_rows, table_size
from streamlake.lake.job_status import JobBeat, status_history
from streamlake.lake.tables import CURATED, STREAMING_LAYERS
from streamlake.lake.workflow_runs import WorkflowRunView, run_history

# How many of the latest workflow runs the report lists.
WORKFLOW_RUNS_SHOWN = 20


@dataclass(frozen=True)
class Flow:
    """One edge of the pipeline graph: data going from ``source`` to ``target`` (nodes are
    named ``kind: name``), ``rows`` wide where the target table's rows are known."""

    source: str
    target: str
    rows: int = 0


@dataclass(frozen=True)
class JobRun:
    """A batch job's run (or a streaming job's), from its first to its last heartbeat."""

    job: str
    kind: str
    state: str
    started_at: datetime
    ended_at: datetime
    error: str | None = None


@dataclass
class ReportData:
    pipeline: str
    lake_root: str
    generated_at: datetime
    flows: list[Flow] = field(default_factory=list)
    # Heartbeats of the streaming jobs, oldest first.
    beats: list[JobBeat] = field(default_factory=list)
    # (table, reason) -> quarantined records.
    quarantine: dict[tuple[str, str], int] = field(default_factory=dict)
    # (layer, table) -> its size.
    sizes: dict[tuple[str, str], TableSize] = field(default_factory=dict)
    runs: list[JobRun] = field(default_factory=list)
    # The latest workflow runs, newest first.
    workflow_runs: list[WorkflowRunView] = field(default_factory=list)


def gather(pipeline: Pipeline, settings: Settings) -> ReportData:
    lake = settings.lake
    sizes = table_sizes(pipeline, settings)
    history = status_history(lake.meta_path("job_status"), settings)
    return ReportData(
        pipeline.name,
        lake.root,
        datetime.now(UTC),
        pipeline_flows(pipeline, sizes),
        [b for b in history if b.kind in STREAMING_JOB_KINDS],
        quarantine_counts(pipeline, settings),
        sizes,
        job_runs(history),
        run_history(lake.meta_path("workflow_runs"), settings, limit=WORKFLOW_RUNS_SHOWN),
    )


def table_sizes(pipeline: Pipeline, settings: Settings) -> dict[tuple[str, str], TableSize]:
    places = [(layer, t) for t in pipeline.tables for layer in STREAMING_LAYERS]
    places += [(CURATED, name) for name in pipeline.curated]
    return {
        (layer, name): table_size(settings.lake.table_path(layer, name), settings)
        for layer, name in places
    }


def pipeline_flows(pipeline: Pipeline, sizes: dict[tuple[str, str], TableSize]) -> list[Flow]:
    """Sources -> ingest jobs -> raw -> process jobs -> processed and quarantine -> curate
    -> curated; exports -> Firehose; the catalog -> Glue."""

    def rows(layer: str, table: str) -> int:
        size = sizes.get((layer, table))
        return size.rows if size else 0

    flows: list[Flow] = []
    for name, job in pipeline.jobs.items():
        table = job.table
        if table is None:
            continue
        if job.kind in ("ingest", "pull"):
            source = pipeline.tables[table].source
            kind = pipeline.sources[source].kind
            flows.append(Flow(f"{kind}: {source}", f"job: {name}", rows("raw", table)))
            flows.append(Flow(f"job: {name}", f"raw: {table}", rows("raw", table)))
        elif job.kind == "process":
            feeder = f"raw: {table}"
            if job.mode == "inline":
                feeder = f"job: {pipeline.ingest_job_of(table)}"
            flows.append(Flow(feeder, f"job: {name}", rows("raw", table)))
            for layer in ("processed", "quarantine"):
                flows.append(Flow(f"job: {name}", f"{layer}: {table}", rows(layer, table)))
    curate = next((n for n, j in pipeline.jobs.items() if j.kind == "curate"), None)
    if curate is not None:
        for name, curated in pipeline.curated.items():
            for input_table in curated.inputs:
                flows.append(Flow(f"processed: {input_table}", f"job: {curate}", 0))
            flows.append(Flow(f"job: {curate}", f"curated: {name}", rows(CURATED, name)))
    for name, export in pipeline.exports.items():
        layer, table = export.table.split(".", 1)
        flows.append(Flow(f"{layer}: {table}", f"export: {name}", rows(layer, table)))
        flows.append(Flow(f"export: {name}", f"firehose: {export.stream}", rows(layer, table)))
    if any(job.kind == "catalog" for job in pipeline.jobs.values()):
        # The catalog job registers every layer's tables; the processed and curated ones
        # are those Athena and Spectrum users query.
        for layer, table in sizes:
            if layer in ("processed", CURATED):
                flows.append(Flow(f"{layer}: {table}", "glue: Data Catalog", 0))
    # Edges nothing measured still show, one row wide.
    return [Flow(f.source, f.target, max(f.rows, 1)) for f in dict.fromkeys(flows)]


def quarantine_counts(pipeline: Pipeline, settings: Settings) -> dict[tuple[str, str], int]:
    counts: Counter[tuple[str, str]] = Counter()
    for table in pipeline.tables:
        rows = read_rows(
            settings.lake.table_path("quarantine", table), settings, ["error_kind", "rule"]
        )
        for row in [] if rows is None else rows.to_pylist():
            reason = row["error_kind"] + (f": {row['rule']}" if row["rule"] else "")
            counts[(table, reason)] += 1
    return dict(counts)


def job_runs(history: list[JobBeat]) -> list[JobRun]:
    """Every run's span and how it ended (its newest row's state), newest first."""
    spans: dict[tuple[str, str], JobRun] = {}
    for beat in history:
        spans[(beat.job, beat.run_id)] = JobRun(
            beat.job, beat.kind, beat.state, beat.started_at, beat.beat_at, beat.error
        )
    return sorted(spans.values(), key=lambda r: r.started_at, reverse=True)
