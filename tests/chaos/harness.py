"""The chaos run: the demo pipeline under steady load, its streaming driver (`stream run
all`, one process with the six jobs) SIGKILLed and restarted at random, the local Kafka
broker and AWS API server restarted, an overload phase, then a check of every record.

The AWS producers pause while the AWS API server restarts: the local server saves its
streams when it stops, and a record accepted while it saves would not be in the saved
state (Amazon's services do not restart; this is the local server's limit). The Kafka
producer keeps sending through the broker restarts (idempotent, acks=all).
"""

from __future__ import annotations

import contextlib
import logging
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pyarrow as pa
import pyarrow.compute as pc

from connectors.aws import aws_endpoint
from streamlake.config.pipeline import Pipeline
from streamlake.config.settings import Settings
from streamlake.lake.delta_rs import delta_table_exists, open_delta_table, read_rows
from streamlake.local.resources import declared_resources, ensure_all
from streamlake.local.stack import AWS, KAFKA, LocalStack
from streamlake.paths import checkout_root
from tests.chaos.load import PacedProducer, SourceLoad, loads, start_producers
from tests.support import committed_batches, kill_hard, start_job, write_config_dir

log = logging.getLogger(__name__)

LOOP_S = 0.25
# A driver that exits this many times in a row on its own is not going to recover.
EXITS_IN_A_ROW = 4
SAMPLE_EVERY_S = 5.0
STOP_GRACE_S = 120


@dataclass(frozen=True)
class ChaosPlan:
    seed: int
    # Production lasts this long, and on until ``kills`` kills were done.
    produce_s: float
    kills: int
    kafka_restarts: int
    aws_restarts: int
    rates: dict[str, float]
    overload_factor: float
    overload_s: float
    # The driver is killed a random time within this range after a run's first commit (the
    # first run: 2 to 8 s after it starts, before any commit); a run without any commit for
    # ``max_run_s`` is killed then.
    kill_after_commit_s: tuple[float, float]
    memory_ceiling_mb: float
    drain_timeout_s: float = 900
    max_run_s: float = 180


@dataclass
class DriverRun:
    """One run of the driver: when it started, the commits there were, when to kill it
    (None until the run's first commit)."""

    started: float
    commits_before: int
    kill_at: float | None = None


@dataclass
class TableCheck:
    table: str
    produced: int = 0
    duplicated: int = 0
    raw_rows: int = 0
    processed: int = 0
    quarantined: int = 0
    problems: list[str] = field(default_factory=list)


@dataclass
class ChaosFigures:
    plan: ChaosPlan
    kills: int = 0
    kafka_restarts: int = 0
    aws_restarts: int = 0
    driver_exits: list[int] = field(default_factory=list)
    resent: int = 0
    peak_rss_mb: float = 0.0
    peak_rss_overload_mb: float = 0.0
    # Production runs on past ``produce_s`` until every kill is done.
    produced_s: float = 0.0
    max_backlog: int = 0
    catch_up_s: float | None = None
    drain_s: float = 0.0
    duration_s: float = 0.0
    checks: list[TableCheck] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def records_checked(self) -> int:
        return sum(c.produced for c in self.checks)

    @property
    def ok(self) -> bool:
        return not self.problems and not any(c.problems for c in self.checks)


def chaos_pipeline(pipeline: Pipeline, seed: int) -> Pipeline:
    """The demo pipeline's sources under names of their own, so that a run shares no topic,
    stream or table with anything else on the stack."""
    data = pipeline.model_dump(mode="json", exclude_none=True)
    # The streams it loads (landing files are not part of the run: a restarted local AWS
    # server keeps no S3 objects).
    loaded = ("orders", "clickstream", "customers")
    data["sources"] = {n: s for n, s in data["sources"].items() if n in loaded}
    data["tables"] = {n: t for n, t in data["tables"].items() if t["source"] in loaded}
    sources = data["sources"]
    sources["orders"]["topic"] = f"chaos-orders-{seed}"
    sources["clickstream"]["stream"] = f"chaos-clickstream-{seed}"
    sources["customers"]["table"] = f"chaos-customers-{seed}"
    data["jobs"] = {
        n: j
        for n, j in data["jobs"].items()
        if j["kind"] in ("ingest", "process") and j.get("table") in data["tables"]
    }
    data["workflows"] = {}
    return Pipeline.model_validate(data)


def table_rows(settings: Settings, layer: str, table: str) -> int:
    path = settings.lake.table_path(layer, table)
    if not delta_table_exists(path, settings):
        return 0
    actions = pa.table(open_delta_table(path, settings).get_add_actions(flatten=True))
    return int(pc.sum(actions.column("num_records")).as_py() or 0)


def tree_rss_mb(process: subprocess.Popen[bytes]) -> float:
    """Resident memory of the driver: its Python process, the JVM and Python workers."""
    try:
        root = psutil.Process(process.pid)
        members = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for member in members:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += member.memory_info().rss
    return total / 2**20


class ChaosRun:
    def __init__(
        self,
        plan: ChaosPlan,
        settings: Settings,
        pipeline: Pipeline,
        stack: LocalStack | None,
        env: dict[str, str],
        work_dir: Path,
        on_event: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.plan = plan
        self.settings = settings
        self.pipeline = chaos_pipeline(pipeline, plan.seed)
        self.stack = stack
        self.env = env
        self.work_dir = work_dir
        self.on_event = on_event
        self.rng = random.Random(plan.seed)
        self.loads = loads(plan.seed)
        self.figures = ChaosFigures(plan)
        self.aws_gate = threading.Event()
        self.aws_gate.set()
        self.producers: dict[str, PacedProducer] = {}
        self.exits_in_a_row = 0
        self.overload_mark: int | None = None
        self.overload_end = 0.0
        self.config_dir = write_config_dir(
            work_dir / "configs", self.pipeline, checkout_root() / "configs" / "local.yaml"
        )
        self.log_file = work_dir / "driver.log"
        self.started = time.monotonic()

    # -- the run ----------------------------------------------------------------------

    def run(self) -> ChaosFigures:
        aws = aws_endpoint(self.settings)
        ensure_all(declared_resources(self.pipeline, self.settings, aws))
        self.say(f"seed {self.plan.seed}; driver log {self.log_file}")
        producers = start_producers(
            self.pipeline, self.settings, aws, self.plan.rates, self.plan.seed, self.aws_gate
        )
        self.producers = producers
        driver = self.start_driver()
        try:
            driver = self.chaos(driver, producers)
            for producer in producers.values():
                producer.stopping.set()
            for producer in producers.values():
                producer.join(timeout=120)
                if producer.error is not None:
                    self.figures.problems.append(
                        f"producer {producer.load.source} failed: {producer.error}"
                    )
            self.figures.resent = sum(len(p.produced.resent) for p in producers.values())
            for producer in producers.values():
                for note in producer.produced.failure_notes:
                    self.say(f"a send to {producer.load.source} failed at {note}")
            if self.exits_in_a_row < EXITS_IN_A_ROW:
                driver = self.drain(driver, producers)
                self.stop_driver(driver)
        finally:
            kill_hard(driver)
        self.check(producers)
        self.figures.duration_s = time.monotonic() - self.started
        return self.figures

    def chaos(
        self, driver: subprocess.Popen[bytes], producers: dict[str, PacedProducer]
    ) -> subprocess.Popen[bytes]:
        plan = self.plan
        span = plan.produce_s
        restarts = sorted(
            [(self.rng.uniform(0.15, 0.85) * span, KAFKA) for _ in range(plan.kafka_restarts)]
            + [(self.rng.uniform(0.15, 0.85) * span, AWS) for _ in range(plan.aws_restarts)]
        )
        overload_at = self.rng.uniform(0.3, 0.6) * span
        self.overload_end = overload_end = overload_at + plan.overload_s
        overloading = False
        run = DriverRun(self.elapsed(), self.committed(), self.rng.uniform(2.0, 8.0))
        next_sample = 0.0
        while self.elapsed() < span or self.figures.kills < plan.kills:
            now = self.elapsed()
            while restarts and restarts[0][0] <= now:
                _, service = restarts.pop(0)
                self.restart_service(service)
            if not overloading and self.overload_mark is None and now >= overload_at:
                overloading = True
                self.set_factor(producers, plan.overload_factor)
                self.say(f"overload x{plan.overload_factor:g} for {plan.overload_s:.0f} s")
            if overloading and now >= overload_end:
                overloading = False
                self.set_factor(producers, 1.0)
                self.overload_mark = sum(p.count() for p in producers.values())
                self.say(f"overload over: {self.overload_mark} records produced so far")
            if run.kill_at is None:
                if self.committed() > run.commits_before:
                    run.kill_at = now + self.rng.uniform(*plan.kill_after_commit_s)
                elif now - run.started > plan.max_run_s:
                    run.kill_at = now
            if driver.poll() is not None:
                if self.exited(driver):
                    break
                driver, run = self.start_driver(), DriverRun(self.elapsed(), self.committed())
            elif run.kill_at is not None and now >= run.kill_at:
                kill_hard(driver)
                self.exits_in_a_row = 0
                self.figures.kills += 1
                commits = self.committed() - run.commits_before
                self.say(
                    f"kill {self.figures.kills} after {now - run.started:.0f} s of running "
                    f"({commits} batches committed in the run)"
                )
                driver, run = self.start_driver(), DriverRun(self.elapsed(), self.committed())
            rss = tree_rss_mb(driver)
            self.figures.peak_rss_mb = max(self.figures.peak_rss_mb, rss)
            if overloading:
                self.figures.peak_rss_overload_mb = max(self.figures.peak_rss_overload_mb, rss)
            if now >= next_sample:
                next_sample = now + SAMPLE_EVERY_S
                self.sample_backlog(producers)
            time.sleep(LOOP_S)  # the chaos schedule's clock, not synchronisation
        if self.figures.peak_rss_overload_mb > plan.memory_ceiling_mb:
            self.figures.problems.append(
                f"driver memory peaked at {self.figures.peak_rss_overload_mb:.0f} MB during the "
                f"overload, above the ceiling of {plan.memory_ceiling_mb:.0f} MB"
            )
        return driver

    def drain(
        self, driver: subprocess.Popen[bytes], producers: dict[str, PacedProducer]
    ) -> subprocess.Popen[bytes]:
        """Let the driver run until processed and quarantine hold every record produced."""
        self.figures.produced_s = self.elapsed()
        self.say("production stopped; waiting for the pipeline to catch up")
        started = time.monotonic()
        deadline = started + self.plan.drain_timeout_s
        while self.backlog(producers) > 0:
            if time.monotonic() > deadline:
                self.figures.problems.append(
                    f"still {self.backlog(producers)} records behind after "
                    f"{self.plan.drain_timeout_s:.0f} s of catching up"
                )
                break
            if driver.poll() is not None:
                if self.exited(driver):
                    break
                driver = self.start_driver()
            self.sample_backlog(producers)
            time.sleep(SAMPLE_EVERY_S)  # polling the tables' row counts
        self.sample_backlog(producers)
        self.figures.drain_s = time.monotonic() - started
        return driver

    def exited(self, driver: subprocess.Popen[bytes]) -> bool:
        """Record a driver that exited on its own; True when the run should give up."""
        self.figures.driver_exits.append(int(driver.returncode))
        self.exits_in_a_row += 1
        self.say(f"driver exited with {driver.returncode} on its own")
        if self.exits_in_a_row < EXITS_IN_A_ROW:
            return False
        tail = self.log_file.read_text(errors="replace")[-2000:]
        self.figures.problems.append(
            f"the driver exited on its own {self.exits_in_a_row} times in a row; its log ends:"
            f"\n{tail}"
        )
        return True

    # -- actions ----------------------------------------------------------------------

    def start_driver(self) -> subprocess.Popen[bytes]:
        return start_job(self.config_dir, self.env, "all", log=self.log_file)

    def stop_driver(self, driver: subprocess.Popen[bytes]) -> None:
        if driver.poll() is not None:
            return
        # To the driver alone, as an orchestrator stops its main process: the JVM would
        # stop at once on a SIGTERM of its own.
        driver.send_signal(signal.SIGTERM)
        try:
            code = driver.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            self.figures.problems.append(f"the driver ignored SIGTERM for {STOP_GRACE_S} s")
            return
        if code != 0:
            self.figures.problems.append(f"the driver exited with {code} on SIGTERM")

    def restart_service(self, service: str) -> None:
        if self.stack is None:
            self.say(f"skipping the {service} restart: the services are not this run's")
            return
        self.say(f"restarting {service}")
        held = []
        if service == AWS:
            # No record may be on its way while the server saves its state.
            self.aws_gate.clear()
            held = [p.in_flight for p in self.producers.values() if p.load.on_aws]
            for lock in held:
                lock.acquire()
        try:
            self.stack.restart(service)
        finally:
            for lock in held:
                lock.release()
            self.aws_gate.set()
        if service == AWS:
            self.figures.aws_restarts += 1
        else:
            self.figures.kafka_restarts += 1
        self.say(f"{service} is back")

    def set_factor(self, producers: dict[str, PacedProducer], factor: float) -> None:
        for producer in producers.values():
            producer.factor = factor

    # -- measures ---------------------------------------------------------------------

    def committed(self) -> int:
        """Batches the streaming jobs have committed (their checkpoints' commit logs)."""
        return sum(
            committed_batches(Path(self.settings.lake.checkpoint_path(name)))
            for name in self.pipeline.jobs
        )

    def done(self, load: SourceLoad) -> int:
        return table_rows(self.settings, "processed", load.table) + table_rows(
            self.settings, "quarantine", load.table
        )

    def backlog(self, producers: dict[str, PacedProducer]) -> int:
        return sum(
            max(0, producers[name].count() - self.done(load)) for name, load in self.loads.items()
        )

    def sample_backlog(self, producers: dict[str, PacedProducer]) -> None:
        produced = sum(p.count() for p in producers.values())
        done = sum(self.done(load) for load in self.loads.values())
        self.figures.max_backlog = max(self.figures.max_backlog, produced - done)
        mark = self.overload_mark
        if mark is not None and self.figures.catch_up_s is None and done >= mark:
            since_end = self.elapsed() - self.overload_end
            self.figures.catch_up_s = since_end
            self.say(f"caught up with the overload {since_end:.0f} s after it ended")

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def say(self, message: str) -> None:
        log.info("chaos: %s", message)
        self.on_event(f"[{self.elapsed():7.1f} s] {message}")

    # -- the check --------------------------------------------------------------------

    def check(self, producers: dict[str, PacedProducer]) -> None:
        for name, load in self.loads.items():
            self.figures.checks.append(check_table(self.settings, load, producers[name]))


def ids_in(payloads: list[bytes], load: SourceLoad) -> list[str | None]:
    found = [load.ids.search(p) if p is not None else None for p in payloads]
    return [m.group().decode() if m else None for m in found]


def coordinates(rows: pa.Table, names: tuple[str, ...]) -> list[tuple[Any, ...]]:
    columns = [rows.column(n).to_pylist() for n in names]
    return list(zip(*columns, strict=True))


def check_table(settings: Settings, load: SourceLoad, producer: PacedProducer) -> TableCheck:
    """Every produced record in raw exactly once (by source position) and, by id, exactly
    once in processed (good records) or quarantine (bad ones)."""
    produced = producer.produced
    check = TableCheck(load.table, produced.total, len(produced.duplicated))
    problems = check.problems
    raw = read_rows(settings.lake.table_path("raw", load.table), settings)
    processed = read_rows(settings.lake.table_path("processed", load.table), settings)
    quarantine = read_rows(settings.lake.table_path("quarantine", load.table), settings)
    if raw is None or processed is None or quarantine is None:
        return TableCheck(load.table, produced.total, problems=["a table was never written"])
    check.raw_rows, check.processed, check.quarantined = (
        raw.num_rows,
        processed.num_rows,
        quarantine.num_rows,
    )

    raw_coordinates = coordinates(raw, ("source", "stream", "partition", "position"))
    if len(set(raw_coordinates)) != len(raw_coordinates):
        problems.append(
            f"raw.{load.table}: {len(raw_coordinates) - len(set(raw_coordinates))} source "
            "records written twice"
        )
    raw_ids = ids_in(raw.column("payload").to_pylist(), load)
    counted: dict[str | None, int] = {}
    for record_id in raw_ids:
        counted[record_id] = counted.get(record_id, 0) + 1
    everything = produced.good | produced.bad
    missing = everything - counted.keys()
    if missing:
        problems.append(f"raw.{load.table}: {len(missing)} records missing, e.g. {min(missing)}")
    foreign = set(counted) - everything
    if foreign:
        problems.append(f"raw.{load.table}: {len(foreign)} rows with no produced id")
    twice = {i for i, n in counted.items() if n > 1} - produced.resent - produced.duplicated
    if twice:
        problems.append(
            f"raw.{load.table}: {len(twice)} records sent once are there twice, e.g. {min(twice)}"
        )

    kept = processed.column(load.id_column).to_pylist()
    held = ids_in(quarantine.column("payload").to_pylist(), load)
    # A record sent again is a second change of a CDC table's item, kept as such.
    compare("processed", load.table, kept, produced.good, problems, produced.resent)
    # A bad record sent twice is two raw records that both fail; dedup keeps good ones once.
    compare("quarantine", load.table, held, produced.bad, problems, produced.resent)
    lineage = coordinates(processed, ("_source", "_stream", "_partition", "_position"))
    quarantined_at = coordinates(quarantine, ("source", "stream", "partition", "position"))
    unknown = (set(lineage) | set(quarantined_at)) - set(raw_coordinates)
    if unknown:
        problems.append(f"{load.table}: {len(unknown)} rows name a raw record that is not there")
    return check


def compare(
    layer: str,
    table: str,
    found: list[Any],
    expected: set[str],
    problems: list[str],
    may_repeat: set[str] | frozenset[str] = frozenset(),
) -> None:
    """``found`` must hold each of ``expected`` exactly once (``may_repeat`` ones at least
    once) and nothing else."""
    seen: dict[Any, int] = {}
    for record_id in found:
        seen[record_id] = seen.get(record_id, 0) + 1
    missing = expected - seen.keys()
    extra = set(seen) - expected
    repeated = {i for i, n in seen.items() if n > 1} - may_repeat
    if missing:
        problems.append(f"{layer}.{table}: {len(missing)} records missing, e.g. {min(missing)}")
    if extra:
        problems.append(f"{layer}.{table}: {len(extra)} records that belong elsewhere")
    if repeated:
        problems.append(f"{layer}.{table}: {len(repeated)} records more than once")
