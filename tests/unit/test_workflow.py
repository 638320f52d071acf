"""The workflow runner and its triggers, with the jobs handed in as plain functions (how a
job runs is the CLI's; the integration test runs real ones): dependency order, conditions,
retries with backoff, timeouts, the run log and its history, the one-run-at-a-time lease,
and schedules fired with the clock injected (no real waiting)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from batch.workflow import WorkflowRunner, run_alone
from batch.workflow_triggers import ScheduledTimes, TriggerLoop
from streamlake.config.pipeline import Workflow
from streamlake.config.settings import Settings
from streamlake.errors import LeaseHeldError
from streamlake.lake.files import LocationFiles
from streamlake.lake.leases import TableLeases
from streamlake.lake.workflow_runs import RunRecord, append_records, run_history
from streamlake.notifications import Notification, Notifier


def lake_settings(tmp_path: Path) -> Settings:
    lake = {"root": str(tmp_path / "lake")}
    return Settings.model_validate({"kafka": {"bootstrap_servers": "127.0.0.1:9"}, "lake": lake})


class Jobs:
    """Jobs as functions: ``fail`` maps a job to how many of its first attempts fail."""

    def __init__(self, fail: dict[str, int] | None = None) -> None:
        self.fail = dict(fail or {})
        self.ran: list[str] = []

    def __call__(self, job: str, cancel: threading.Event) -> None:
        self.ran.append(job)
        if self.fail.get(job, 0) > 0:
            self.fail[job] -= 1
            raise RuntimeError(f"{job} broke\nwith a second line")


class Inbox(Notifier):
    def __init__(self) -> None:
        super().__init__()
        self.received: list[Notification] = []

    def deliver(self, notification: Notification) -> None:
        self.received.append(notification)


def graph(**jobs: dict[str, Any]) -> Workflow:
    return Workflow.model_validate({"jobs": jobs, "retry_backoff": "10 seconds"})


def runner(workflow: Workflow, jobs: Callable[[str, threading.Event], None], **kw: Any) -> Any:
    return WorkflowRunner("nightly", workflow, jobs, **kw)


def test_a_chain_runs_in_order_and_succeeds() -> None:
    jobs = Jobs()
    outcome = runner(Workflow(steps=["compact", "curate", "catalog"]), jobs).run()
    assert jobs.ran == ["compact", "curate", "catalog"]
    assert outcome.state == "succeeded"
    assert [s.state for s in outcome.steps.values()] == ["succeeded"] * 3


def test_a_graph_runs_each_job_after_what_it_waits_for() -> None:
    # Declared out of order: the runner follows the conditions, then the declaration.
    workflow = graph(
        catalog={"on_success": ["curate", "quality"]},
        quality={"on_success": ["curate"]},
        curate={"on_success": ["compact"]},
        compact={},
        export={},
    )
    jobs = Jobs()
    runner(workflow, jobs).run()
    assert jobs.ran == ["compact", "curate", "quality", "catalog", "export"]


def test_a_failure_runs_its_on_failure_branch_and_skips_its_dependants() -> None:
    workflow = graph(
        compact={},
        quality={"on_success": ["compact"], "retries": 2},
        catalog={"on_success": ["quality"]},
        export={"on_success": ["catalog"]},
        alert={"on_failure": ["quality"]},
        tidy={"on_completion": ["quality"]},
    )
    jobs, inbox, waited, rows = Jobs(fail={"quality": 5}), Inbox(), [], []
    outcome = runner(
        workflow, jobs, notifier=inbox, wait=lambda s: waited.append(s) or False, record=rows.extend
    ).run()
    assert jobs.ran == ["compact", "quality", "quality", "quality", "alert", "tidy"]
    states = {job: (s.state, s.attempts) for job, s in outcome.steps.items()}
    assert states == {
        "compact": ("succeeded", 1),
        "quality": ("failed", 3),
        "catalog": ("skipped", 0),
        "export": ("skipped", 0),
        "alert": ("succeeded", 1),
        "tidy": ("succeeded", 1),
    }
    assert outcome.steps["quality"].error == "quality broke"
    assert outcome.steps["catalog"].error == "not run: quality failed"
    assert outcome.steps["export"].error == "not run: catalog skipped"
    assert waited == [10.0, 20.0]  # the backoff doubles at each retry
    assert outcome.state == "failed"
    [sent] = inbox.received
    assert (sent.event, sent.job, sent.severity) == ("workflow_failed", "nightly", "error")
    assert sent.subject == "workflow nightly failed at quality"
    assert sent.detail == "quality: quality broke"
    # The log: the run's start and end, each attempt's start and end, each skip.
    attempts = [(r.job, r.attempt, r.state) for r in rows if r.job == "quality"]
    assert attempts == [
        ("quality", 1, "running"),
        ("quality", 1, "failed"),
        ("quality", 2, "running"),
        ("quality", 2, "failed"),
        ("quality", 3, "running"),
        ("quality", 3, "failed"),
    ]
    assert [(r.state, r.error) for r in rows if r.job == ""] == [
        ("running", None),
        ("failed", "failed: quality"),
    ]


def test_a_retry_that_succeeds_makes_the_run_succeed() -> None:
    workflow = Workflow(steps=["compact", "curate"], retries=1, retry_backoff="1 second")
    jobs = Jobs(fail={"curate": 1})
    outcome = runner(workflow, jobs, wait=lambda _s: False).run()
    assert outcome.state == "succeeded" and outcome.steps["curate"].attempts == 2


def test_a_job_past_its_timeout_is_cancelled_and_not_retried() -> None:
    cancelled = []

    def slow(job: str, cancel: threading.Event) -> None:
        if job == "curate":
            assert cancel.wait(30), "the job was never cancelled"
            cancelled.append(job)

    workflow = graph(
        curate={"timeout": "200 milliseconds", "retries": 3},
        catalog={"on_success": ["curate"]},
        alert={"on_failure": ["curate"]},
    )
    outcome = runner(workflow, slow).run()
    curate = outcome.steps["curate"]
    assert (curate.state, curate.attempts, cancelled) == ("timeout", 1, ["curate"])
    assert curate.error == "ran past its timeout of 0.2s and was cancelled"
    assert outcome.steps["catalog"].state == "skipped"
    assert outcome.steps["alert"].state == "succeeded"  # a timeout is a failure


def test_a_job_that_ignores_its_cancellation_stops_the_run() -> None:
    release = threading.Event()

    def stuck(job: str, cancel: threading.Event) -> None:
        if job == "curate":
            release.wait(30)

    workflow = graph(curate={"timeout": "100 milliseconds"}, alert={"on_failure": ["curate"]})
    try:
        outcome = runner(workflow, stuck, cancel_grace_s=0.2).run()
    finally:
        release.set()
    assert outcome.stopped == "curate did not stop within 0.2s of being cancelled"
    assert outcome.state == "failed"
    assert outcome.steps["alert"].state == "skipped"  # nothing more runs beside it


def test_a_stop_cancels_the_running_job_and_skips_the_rest() -> None:
    stop = threading.Event()

    def job(name: str, cancel: threading.Event) -> None:
        if name == "curate":
            stop.set()  # SIGTERM while curate runs
            assert cancel.wait(30)

    inbox = Inbox()
    workflow = Workflow(steps=["compact", "curate", "catalog"])
    outcome = runner(workflow, job, stop=stop, notifier=inbox).run()
    states = [(s.state, s.error) for s in outcome.steps.values()]
    assert states == [
        ("succeeded", None),
        ("stopped", "the run was stopped"),
        ("skipped", "the run was stopped"),
    ]
    assert outcome.state == "stopped"
    assert inbox.received == []  # an operator's stop is no failure to alert on


def test_the_history_reads_the_runs_back_from_the_lake(tmp_path: Path) -> None:
    settings = lake_settings(tmp_path)
    path = settings.lake.meta_path("workflow_runs")
    record = partial(append_records, path, settings)
    failing = graph(compact={}, curate={"on_success": ["compact"], "retries": 1})
    runner(failing, Jobs(fail={"curate": 9}), record=record, wait=lambda _s: False).run()
    runner(Workflow(steps=["compact"]), Jobs(), record=record, trigger="schedule").run()

    newest, oldest = run_history(path, settings)
    assert (newest.state, newest.record.trigger) == ("succeeded", "schedule")
    assert (oldest.state, oldest.record.error, oldest.failed_jobs) == (
        "failed",
        "failed: curate",
        ["curate"],
    )
    jobs = {j.record.job: (j.record.state, j.attempts, j.record.error) for j in oldest.jobs}
    assert jobs == {"compact": ("succeeded", 1, None), "curate": ("failed", 2, "curate broke")}
    assert oldest.record.seconds is not None and oldest.record.seconds >= 0
    assert run_history(path, settings, "other") == []
    assert len(run_history(path, settings, limit=1)) == 1


def test_a_run_marked_running_whose_process_is_gone_is_lost(tmp_path: Path) -> None:
    settings = lake_settings(tmp_path)
    path = settings.lake.meta_path("workflow_runs")
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    now = datetime.now(UTC)
    row = RunRecord("r1", "nightly", "manual", "", 0, "running", now, pid=int(gone.stdout))
    append_records(path, settings, [row])
    [run] = run_history(path, settings)
    assert run.state == "lost"


@pytest.mark.parametrize(
    ("workflow", "error"),
    [
        ({"steps": ["a"], "jobs": {"a": {}}}, "give steps (a chain) or jobs (a graph)"),
        ({}, "give steps (a chain) or jobs (a graph)"),
        ({"steps": ["a", "a"]}, "steps: a job appears twice"),
        ({"jobs": {"a": {"on_success": ["b"]}}}, "jobs.a.on_success: 'b' is not a job"),
        (
            {
                "jobs": {
                    "a": {"on_success": ["c"]},
                    "b": {"on_failure": ["a"]},
                    "c": {"on_completion": ["b"]},
                }
            },
            "jobs: a cycle, a -> b -> c -> a",
        ),
        ({"steps": ["a"], "timeout": "soon"}, "timeout"),
        ({"jobs": {"a": {"retries": 11}}}, "retries"),
    ],
)
def test_a_graph_that_cannot_run_is_refused(workflow: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Workflow.model_validate(workflow)
    assert error in str(caught.value)


# A Saturday, just before midnight.
START = datetime(2026, 11, 28, 23, 0, tzinfo=UTC)


class FakeClock:
    """Time that moves only when the loop sleeps or waits."""

    def __init__(self, start: datetime) -> None:
        self.moment = start

    def now(self) -> datetime:
        return self.moment

    def sleep(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)


def fired_until(
    workflows: dict[str, Workflow], until: datetime, busy_s: float = 0
) -> list[tuple[str, str, str]]:
    """Run the trigger loop on a fake clock until ``until``: (workflow, trigger, time) fired.
    Each run takes ``busy_s`` of the fake clock."""
    clock, stop, fired = FakeClock(START), threading.Event(), []

    def start_run(name: str, trigger: str) -> bool:
        fired.append((name, trigger, f"{clock.now():%Y-%m-%d %H:%M}"))
        clock.sleep(busy_s)
        return True

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if clock.now() >= until:
            stop.set()

    TriggerLoop(workflows, start_run, stop, now=clock.now, sleep=sleep).run()
    return fired


def test_schedules_fire_at_their_computed_times_with_aws_only_syntax() -> None:
    workflows = {
        "nightly": Workflow(steps=["compact"], schedule="cron(0 2 * * ? *)"),
        # The month's last day (L), with ?: AWS's syntax, not Unix cron's.
        "month-end": Workflow(steps=["curate"], schedule="cron(30 23 L * ? *)"),
        # Only in 2027 (the year field): nothing fires before.
        "next-year": Workflow(steps=["catalog"], schedule="cron(0 12 1 * ? 2027)"),
        "manual": Workflow(steps=["export"]),
    }
    fired = fired_until(workflows, datetime(2027, 1, 2, 0, 0, tzinfo=UTC))
    assert [f for f in fired if f[0] != "nightly"] == [
        ("month-end", "schedule", "2026-11-30 23:30"),
        ("month-end", "schedule", "2026-12-31 23:30"),
        ("next-year", "schedule", "2027-01-01 12:00"),
    ]
    nightly = [f[2] for f in fired if f[0] == "nightly"]
    assert nightly[:2] == ["2026-11-29 02:00", "2026-11-30 02:00"]
    assert len(nightly) == 34 and nightly[-1] == "2027-01-01 02:00"


def test_times_missed_during_a_long_run_fire_once_afterwards() -> None:
    workflows = {"often": Workflow(steps=["compact"], schedule="rate(10 minutes)")}
    # Each run takes 25 minutes: the two times it covers fire once, when it ends.
    fired = fired_until(workflows, datetime(2026, 11, 29, 0, 0, tzinfo=UTC), busy_s=25 * 60)
    assert [f[2] for f in fired] == ["2026-11-28 23:10", "2026-11-28 23:35"]


def test_scheduled_times_without_any_schedule_wait_for_nothing() -> None:
    times = ScheduledTimes.of({"manual": Workflow(steps=["a"])}, START)
    assert times.due(START + timedelta(days=400)) == []
    assert times.seconds_to_next(START) is None


def test_one_run_at_a_time_even_across_processes(tmp_path: Path) -> None:
    files = LocationFiles(str(tmp_path / "leases"))
    other = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from streamlake.lake.files import LocationFiles\n"
            "from streamlake.lake.leases import TableLeases\n"
            f"TableLeases(LocationFiles({str(tmp_path / 'leases')!r})).take_alone("
            "'workflow-nightly', 'workflow nightly')\n"
            "print('taken', flush=True)\n"
            "sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert other.stdout is not None and other.stdout.readline() == "taken\n"
        with pytest.raises(LeaseHeldError) as caught, run_alone(TableLeases(files), "nightly"):
            pass
        assert f"workflow nightly is already running (pid {other.pid} on" in str(caught.value)
    finally:
        other.kill()
        other.wait()
    # Its holder gone, the lease is taken over at once, then released at the end.
    with run_alone(TableLeases(files), "nightly"):
        assert files.read("workflow-nightly.json") is not None
    assert files.read("workflow-nightly.json") is None


def test_serve_watches_the_schedules_until_sigterm(tmp_path: Path) -> None:
    import os
    import shutil
    import signal

    from tests.support import checkout_root, poll

    configs = tmp_path / "configs"
    shutil.copytree(checkout_root() / "configs", configs)
    pipeline = configs / "pipeline.yaml"
    # Only the schedule: arrivals need the local AWS server (the integration test has it).
    spec = yaml.safe_load(pipeline.read_text())
    spec["workflows"] = {"nightly": spec["workflows"]["nightly"]}
    pipeline.write_text(yaml.safe_dump(spec))
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLAKE")}
    env["STREAMLAKE__LAKE__ROOT"] = str(tmp_path / "lake")
    serve = subprocess.Popen(
        [sys.executable, "-m", "streamlake", "--config", str(configs), "workflow", "serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env | {"COLUMNS": "200"},
    )
    out = []
    try:
        assert serve.stdout is not None
        poll(lambda: out.append(serve.stdout.readline()) or "serving" in out[-1], 60, "serving")
        assert "nightly (cron(0 2 * * ? *))" in out[-1]
        serve.send_signal(signal.SIGTERM)
        rest, err = serve.communicate(timeout=60)
    finally:
        serve.kill()
    assert serve.returncode == 0, err
    assert rest.strip().splitlines()[-1] == "stopped"
    assert "nightly at 20" in err  # the next time it watches for, in the log

    # A pipeline whose workflows have no trigger has nothing to serve.
    del spec["workflows"]["nightly"]["schedule"]
    pipeline.write_text(yaml.safe_dump(spec))
    idle = subprocess.run(
        [sys.executable, "-m", "streamlake", "--config", str(configs), "workflow", "serve"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert idle.returncode == 2
    assert "no workflow has a trigger to serve" in idle.stderr


class FakeArrivals:
    """New files as a queue would report them, on the fake clock: ``batches`` is what each
    wait returns in turn; ``waiting`` what waits when the loop starts."""

    def __init__(self, clock: FakeClock, batches: list[list[str]], waiting: list[str]) -> None:
        self.clock, self.batches, self.waiting = clock, batches, waiting
        self.failures = 1  # the first wait fails, as a queue that does not answer

    def __call__(self, seconds: float) -> list[str]:
        self.clock.sleep(seconds)
        if self.failures:
            self.failures -= 1
            raise ConnectionError("the queue did not answer")
        return self.batches.pop(0) if self.batches else []

    def waiting_now(self) -> list[str]:
        return self.waiting


def test_arrivals_start_their_workflow_and_a_refused_run_is_tried_again() -> None:
    clock, stop = FakeClock(START), threading.Event()
    arrivals = FakeArrivals(clock, [["returns"], [], ["returns", "returns"]], ["returns"])
    attempts: list[tuple[str, str]] = []
    refuse = {1}  # the second start finds another process running the workflow

    def start_run(name: str, trigger: str) -> bool:
        attempts.append((name, trigger))
        if len(attempts) == 4:
            stop.set()
        return len(attempts) - 1 not in refuse

    workflows = {"returns": Workflow(steps=["ingest"], on_arrival="returns")}
    TriggerLoop(workflows, start_run, stop, arrivals, now=clock.now, sleep=clock.sleep).run()
    # Files waiting at the start: a run at once. New files (after a wait that failed and was
    # tried again): a run, refused, then tried again. Two notifications at once: one run.
    assert attempts == [("returns", "arrival")] * 4
    assert arrivals.batches == []


def test_s3_event_notifications_name_the_objects_created() -> None:
    from connectors.files.arrivals import ObjectArrived, objects_in

    created = {
        "Records": [
            {
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "bucket": {"name": "shop-landing"},
                    "object": {"key": "returns/a+b%C3%A9.csv"},
                },
            },
            {
                "eventName": "ObjectRemoved:Delete",
                "s3": {"bucket": {"name": "shop-landing"}, "object": {"key": "returns/old.csv"}},
            },
        ]
    }
    assert objects_in(json.dumps(created)) == [ObjectArrived("shop-landing", "returns/a bé.csv")]
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "shop-landing"}
    assert objects_in(json.dumps(test_event)) == []
    assert objects_in("not json") == []


def test_a_stale_run_lease_of_another_host_is_taken_over_once_expired(tmp_path: Path) -> None:
    files = LocationFiles(str(tmp_path / "leases"))
    stale = {
        "table": "workflow-nightly",
        "holder": "workflow nightly",
        "host": "another-host",
        "pid": 4242,
        "renewed_at": 1_000.0,
        "ttl_s": 120.0,
    }
    files.write("workflow-nightly.json", json.dumps(stale))
    with pytest.raises(LeaseHeldError, match="pid 4242 on another-host"):
        TableLeases(files, clock=lambda: 1_100.0).take_alone("workflow-nightly", "workflow nightly")
    TableLeases(files, clock=lambda: 1_121.0).take_alone("workflow-nightly", "workflow nightly")
    held = json.loads(files.read("workflow-nightly.json") or "{}")
    assert held["pid"] == os.getpid()


def test_a_lost_lease_stops_the_run_at_its_next_renewal(tmp_path: Path) -> None:
    files = LocationFiles(str(tmp_path / "leases"))
    lost = threading.Event()
    with run_alone(TableLeases(files), "nightly", ttl_s=0.4, on_lost=lost.set):
        # Another process took it over (both believed they had taken a stale lease).
        taken = json.loads(files.read("workflow-nightly.json") or "{}")
        files.write("workflow-nightly.json", json.dumps(taken | {"host": "another-host"}))
        assert lost.wait(10), "the run was not told"


def test_a_lease_created_by_many_at_once_has_one_creator_and_is_never_seen_empty(
    tmp_path: Path,
) -> None:
    files = LocationFiles(str(tmp_path / "leases"))
    seen: list[str | None] = []
    created: list[bool] = []
    start = threading.Barrier(8)

    def contend(n: int) -> None:
        start.wait()
        created.append(files.create("workflow-nightly.json", json.dumps({"n": n})))
        seen.append(files.read("workflow-nightly.json"))

    threads = [threading.Thread(target=contend, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert created.count(True) == 1
    assert all(text and json.loads(text)["n"] >= 0 for text in seen)  # whole, every time
    assert sorted(p.name for p in (tmp_path / "leases").iterdir()) == ["workflow-nightly.json"]
