"""`batch run curate`: build the curated tables the pipeline declares from processed,
incrementally.

Each curated table is a consumer of its inputs: ``_meta/input_versions`` holds the version
of each input its last run took in, and a run reads only the changes after it (Delta's
change data feed) up to the version current when the run started. The versions are
recorded after the table's commit; the MERGE that writes it changes nothing on a rerun, so a
crash in between costs only a recomputation."""

from __future__ import annotations

import hashlib
import logging
import time

from batch.curated_sql import refresh_sql_table
from batch.curated_state import refresh_current_state
from batch.inputs import InputWindow, Refresh
from batch.jobs import BatchRun
from batch.report import BatchReport, TableOutcome
from streamlake.config.pipeline import CuratedTable
from streamlake.errors import UsageError
from streamlake.lake.delta_rs import table_size, version_and_id
from streamlake.lake.progress import InputVersion, read_input_versions, record_input_versions
from streamlake.lake.spark_delta import MergeCounts, table_exists
from streamlake.lake.tables import CURATED

log = logging.getLogger(__name__)


def consumer_name(table: str, curated: CuratedTable) -> str:
    """The name a curated table's input versions are recorded under. It carries a digest of
    the table's definition: an edited SQL, key or kind finds no versions and recomputes
    everything, instead of applying the new definition to changed dates only."""
    digest = hashlib.sha256(curated.model_dump_json(exclude={"compaction"}).encode()).hexdigest()[
        :12
    ]
    return f"curate:{table}:{digest}"


def run(run: BatchRun) -> BatchReport:
    report = BatchReport(run.job, "curate")
    names = [n for n in run.pipeline.curated if run.selects(CURATED, n)]
    if not names:
        declared = ", ".join(sorted(run.pipeline.curated)) or "none"
        raise UsageError(f"no curated table named {run.only!r}", f"curated tables: {declared}")
    for name in names:
        run.progress(f"curating {CURATED}.{name}")
        report.tables.extend(curate_table(run, name, run.pipeline.curated[name]))
    return report


def input_windows(run: BatchRun, name: str, curated: CuratedTable) -> list[InputWindow] | str:
    """What this run reads of each input, or why it cannot run yet."""
    lake = run.settings.lake
    previous = read_input_versions(
        lake.meta_path("input_versions"), consumer_name(name, curated), run.settings
    )
    windows = []
    for source in curated.inputs:
        path = lake.table_path("processed", source)
        current = version_and_id(path, run.settings)
        if current is None:
            return f"processed.{source} has no data yet"
        version, table_id = current
        last = previous.get(source)
        # A table created anew (deleted and rebuilt) numbers its versions from 0 again.
        since = last.version if last is not None and last.table_id == table_id else None
        windows.append(InputWindow(source, path, version, table_id, since))
    return windows


def curate_table(run: BatchRun, name: str, curated: CuratedTable) -> list[TableOutcome]:
    spark, lake = run.spark, run.settings.lake
    started = time.monotonic()
    windows = input_windows(run, name, curated)
    if isinstance(windows, str):
        return [TableOutcome(f"{CURATED}.{name}", "skipped", detail=windows)]
    targets = [name, f"{name}_history"] if curated.history else [name]
    paths = {t: lake.table_path(CURATED, t) for t in targets}
    if not all(table_exists(spark, p) for p in paths.values()):
        windows = [w.from_start() for w in windows]
    before = {t: table_size(p, run.settings) for t, p in paths.items()}
    refresh = write_curated(run, name, curated, windows)
    if refresh is not None and refresh.whole:
        windows = [w.from_start() for w in windows]  # what was read, for the report
    record_input_versions(
        spark,
        lake.meta_path("input_versions"),
        consumer_name(name, curated),
        {w.name: InputVersion(w.version, w.table_id) for w in windows},
    )
    seconds = time.monotonic() - started
    outcomes = []
    for target, path in paths.items():
        merged = refresh.counts.get(target) if refresh is not None else None
        after = table_size(path, run.settings) if merged is not None else before[target]
        outcomes.append(
            TableOutcome(
                f"{CURATED}.{target}",
                "merged" if merged is not None and merged.changed else "unchanged",
                before[target].files,
                after.files,
                before[target].bytes,
                after.bytes,
                rows_changed=merged.changed if merged is not None else 0,
                seconds=seconds,
                detail=describe(merged, windows),
            )
        )
    return outcomes


def write_curated(
    run: BatchRun, name: str, curated: CuratedTable, windows: list[InputWindow]
) -> Refresh | None:
    """Merge the inputs' changes into the curated table(s); None when nothing changed."""
    spark, lake = run.spark, run.settings.lake
    if curated.kind == "current_state":
        table = run.pipeline.tables[curated.inputs[0]]
        return refresh_current_state(spark, name, curated, windows[0], table, lake)
    return refresh_sql_table(spark, run.settings, name, curated, windows, run.pipeline_file)


def describe(merged: MergeCounts | None, windows: list[InputWindow]) -> str:
    read = ", ".join(
        f"{w.name} v{w.version}" + (" (whole)" if w.since is None else f" (after v{w.since})")
        for w in windows
    )
    if merged is None:
        return f"{read}: no change"
    return f"{read}: +{merged.inserted} ~{merged.updated} -{merged.deleted}"
