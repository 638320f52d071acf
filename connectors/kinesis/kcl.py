"""Kinesis Client Library consumers: a handler of the user's, called for every record of a
Kinesis stream outside Spark, through the KCL MultiLangDaemon (amazon-kclpy).

The daemon (Java, its jars resolved by Maven into ``.jars/kcl``) keeps one lease per shard
in a DynamoDB table named after the application, reads by polling, and starts one Python
record processor per shard (``connectors.kinesis.kcl_processor``). The processor calls the
handler for each record of a batch and checkpoints the batch's last record once every
handler call returned.

At-least-once: a record is handled once per delivery; records after the shard's last
checkpoint are delivered again after a crash or a lost lease. A handler that raises stops
the consumer without checkpointing the batch it failed in.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import importlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from connectors.aws import AwsEndpoint
from connectors.kinesis.http2_front import Http2Front
from streamlake.errors import EXIT_BAD_USAGE, ConsumerError, SetupError, first_line

log = logging.getLogger(__name__)

DAEMON_CLASS = "software.amazon.kinesis.multilang.MultiLangDaemon"
InitialPosition = Literal["TRIM_HORIZON", "LATEST"]
# KCL's timers are set for fleets on AWS (a shard sync every minute, lease assignment every
# 20 s). Against the local server the consumer starts in seconds with these instead.
LOCAL_TIMINGS: Mapping[str, str] = {
    "shardSyncIntervalMillis": "2000",
    "leaseAssignmentIntervalMillis": "2000",
    "workerMetricsReporterFreqInMillis": "2000",
    "failoverTimeMillis": "6000",
    "idleTimeBetweenReadsInMillis": "500",
}


@dataclass(frozen=True)
class KinesisRecord:
    """One record as the handler gets it (de-aggregated by the KCL when the producer used
    KPL aggregation; ``sub_sequence_number`` then tells the user records apart)."""

    stream: str
    shard_id: str
    sequence_number: str
    sub_sequence_number: int
    partition_key: str
    arrival: datetime | None
    data: bytes

    def json(self) -> Any:
        """The record's data parsed as JSON (ValueError when it is not)."""
        return json.loads(self.data)


@dataclass(frozen=True)
class ConsumerContext:
    """What a handler may need besides the record, Lambda style."""

    application: str
    stream: str
    shard_id: str
    aws: AwsEndpoint
    # The pipeline's notifications topic, when it declares one.
    topic: str | None = None


class Handler(Protocol):
    """A consumer's handler: called once per record delivered (at least once per record),
    in the shard's order; returning means done, raising stops the consumer."""

    def __call__(self, record: KinesisRecord, context: ConsumerContext) -> object: ...


def resolve_handler(spec: str, search_path: Path | None = None) -> Handler:
    """The function ``module:function`` names, imported as ``python -m`` would from
    ``search_path`` (the current folder by default)."""
    module_name, _, function_name = spec.partition(":")
    if not module_name or not function_name:
        raise ConsumerError(
            f"handler {spec!r} is not module:function",
            "for example --handler shop.alerts:on_purchase",
            handler=spec,
            exit_code=EXIT_BAD_USAGE,
        )
    folder = str(search_path or Path.cwd())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ConsumerError(
            f"handler {spec} cannot be imported: {type(exc).__name__}: {first_line(exc)}",
            "check the module is on PYTHONPATH or in the current folder",
            handler=spec,
            exit_code=EXIT_BAD_USAGE,
        ) from exc
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ConsumerError(
            f"handler {spec}: module {module_name} has no function {function_name}",
            "name a function taking (record, context)",
            handler=spec,
            exit_code=EXIT_BAD_USAGE,
        )
    handler: Handler = function
    return handler


@dataclass(frozen=True)
class ConsumerSpec:
    """One consumer: which stream, which handler, under which KCL application name (also
    the name of its lease table)."""

    application: str
    stream: str
    handler: str
    aws: AwsEndpoint
    run_dir: Path
    jars_dir: Path
    topic: str | None = None
    initial_position: InitialPosition = "TRIM_HORIZON"
    # KCL properties set last, over everything else (``--kcl-property key=value``).
    properties: Mapping[str, str] = field(default_factory=dict)
    search_path: Path = field(default_factory=Path.cwd)

    @property
    def local(self) -> bool:
        return bool(self.aws.endpoint_url and self.aws.endpoint_url.startswith("http://"))

    @property
    def worker_id(self) -> str:
        return f"{socket.gethostname()}-{self.application}"

    @property
    def events_file(self) -> Path:
        return self.run_dir / "events.jsonl"

    @property
    def daemon_log(self) -> Path:
        return self.run_dir / "kcl-daemon.log"

    @property
    def processor_config(self) -> Path:
        return self.run_dir / "processor.json"


def daemon_properties(
    spec: ConsumerSpec, executable: str, kinesis_endpoint: str | None
) -> dict[str, str]:
    """The MultiLangDaemon's properties file, as key and value."""
    properties = {
        "executableName": executable,
        "streamName": spec.stream,
        "applicationName": spec.application,
        "processingLanguage": f"python/{sys.version_info.major}.{sys.version_info.minor}",
        "initialPositionInStream": spec.initial_position,
        "regionName": spec.aws.region,
        "AwsCredentialsProvider": "DefaultCredentialsProvider",
        "retrievalMode": "POLLING",
        "metricsLevel": "SUMMARY",
        # The same worker id across restarts on this host: a restarted consumer takes its
        # leases (and the leader lock) back at once instead of waiting for them to expire
        # (2 minutes for the lock). One consumer per application and host (`_lock`).
        "workerId": spec.worker_id,
        # How long SIGTERM's graceful shutdown may take (KCL's default does not wait).
        "shutdownGraceMillis": "30000",
    }
    if kinesis_endpoint:
        properties["kinesisEndpoint"] = kinesis_endpoint
    if spec.aws.endpoint_url:
        properties["dynamoDBEndpoint"] = spec.aws.endpoint_url
    if spec.local:
        properties |= LOCAL_TIMINGS
    return properties | dict(spec.properties)


def classpath(jars_dir: Path) -> str:
    """Every jar under ``jars_dir`` (Maven's repository layout), as a Java classpath."""
    jars = sorted(str(jar) for jar in jars_dir.rglob("*.jar"))
    if not jars:
        raise SetupError(
            f"no Kinesis Client Library jars under {jars_dir}", "run make setup", path=str(jars_dir)
        )
    return os.pathsep.join(jars)


# --- what processors report to the consumer ----------------------------------------------


@dataclass
class ShardProgress:
    records: int = 0
    batches: int = 0
    checkpoint: str | None = None


@dataclass
class ConsumeSummary:
    """What the consumer's processors reported so far."""

    shards: dict[str, ShardProgress] = field(default_factory=dict)
    failure: dict[str, Any] | None = None

    @property
    def records(self) -> int:
        return sum(shard.records for shard in self.shards.values())

    def apply(self, event: Mapping[str, Any]) -> None:
        shard = self.shards.setdefault(str(event.get("shard", "")), ShardProgress())
        kind = event.get("event")
        if kind == "batch":
            shard.records += int(event["records"])
            shard.batches += 1
        elif kind == "checkpointed":
            shard.checkpoint = str(event["sequence"])
        elif kind == "failed" and self.failure is None:
            self.failure = dict(event)


class EventLog:
    """JSON lines appended by the processors (one short write each, so lines from processes
    writing at once do not interleave) and read back by the consumer."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0

    def write(self, **event: Any) -> None:
        line = (json.dumps({"at": time.time(), **event}) + "\n").encode()
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(descriptor, line)
        finally:
            os.close(descriptor)

    def read_new(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        with self.path.open("rb") as events:
            events.seek(self._offset)
            for line in events:
                if not line.endswith(b"\n"):
                    break
                self._offset += len(line)
                yield json.loads(line)


# --- running the daemon ------------------------------------------------------------------

PR_SET_PDEATHSIG = 1
# Loaded here, not in the forked child, where importing and loading are not safe.
try:
    LIBC: ctypes.CDLL | None = ctypes.CDLL("libc.so.6", use_errno=True)
except OSError:
    LIBC = None


def die_with_parent() -> None:
    """Run in the daemon's process before it starts (``preexec_fn``): the daemon is killed
    when the thread that started it ends (the consumer killed outright, even by SIGKILL)
    instead of living on, holding the leases."""
    if LIBC is not None:
        LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


LOGBACK = """<configuration>
  <appender name="FILE" class="ch.qos.logback.core.FileAppender">
    <file>{log}</file>
    <encoder><pattern>%d{{ISO8601}} [%thread] %-5level %logger{{36}} - %msg%n</pattern></encoder>
  </appender>
  <logger name="software.amazon.awssdk" level="WARN"/>
  <logger name="io.netty" level="WARN"/>
  <root level="INFO"><appender-ref ref="FILE"/></root>
</configuration>
"""


class KclConsumer:
    """Runs the MultiLangDaemon for one ``ConsumerSpec`` until asked to stop, the daemon
    exits, or a handler fails."""

    def __init__(self, spec: ConsumerSpec, java: str = "java") -> None:
        self.spec = spec
        self.java = java
        self.summary = ConsumeSummary()
        self._events = EventLog(spec.events_file)
        self._lock_fd: int | None = None

    def run(
        self,
        stop: threading.Event,
        on_progress: Callable[[ConsumeSummary], None] | None = None,
        poll_s: float = 0.5,
    ) -> ConsumeSummary:
        """Called once; returns when ``stop`` is set (after the daemon's graceful shutdown)
        or raises ConsumerError when a handler failed or the daemon stopped by itself."""
        self.spec.run_dir.mkdir(parents=True, exist_ok=True)
        with self._lock():
            self._prepare_run_dir()
            return self._run(stop, on_progress, poll_s)

    def _run(
        self,
        stop: threading.Event,
        on_progress: Callable[[ConsumeSummary], None] | None,
        poll_s: float,
    ) -> ConsumeSummary:
        front = self._start_front() if self.spec.local else None
        try:
            kinesis_endpoint = front.url if front else None
            daemon = self._start_daemon(kinesis_endpoint)
            try:
                self._watch(daemon, stop, on_progress, poll_s, front)
            finally:
                # After a handler failure the other shards have checkpointed what they
                # handled; waiting on a graceful shutdown would only let the KCL hand the
                # failed shard to a new processor meanwhile.
                self._stop_daemon(daemon, 5.0 if self.summary.failure else 60.0)
            self._collect()
        finally:
            if front is not None:
                front.stop()
        if self.summary.failure is not None:
            raise self._failure_error(self.summary.failure)
        return self.summary

    def _start_front(self) -> Http2Front:
        try:
            return Http2Front(self.spec.aws.endpoint_url or "").start()
        except (OSError, RuntimeError, ValueError) as exc:
            raise SetupError(
                f"the local HTTP/2 front for the KCL's Kinesis client did not start: "
                f"{first_line(exc)}"
            ) from exc

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Two consumers of one application on one host would share a worker id, and each
        take the other's leases for its own."""
        with (self.spec.run_dir / "consumer.lock").open("w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._lock_fd = lock.fileno()
            except BlockingIOError:
                raise ConsumerError(
                    f"a consumer of {self.spec.application} already runs on this host",
                    "stop it, or start this one with another --app",
                    application=self.spec.application,
                    stream=self.spec.stream,
                    exit_code=EXIT_BAD_USAGE,
                ) from None
            yield

    def _prepare_run_dir(self) -> None:
        self.spec.events_file.unlink(missing_ok=True)
        config = {
            "handler": self.spec.handler,
            "application": self.spec.application,
            "stream": self.spec.stream,
            "aws": self.spec.aws.options(),
            "topic": self.spec.topic,
            "events_file": str(self.spec.events_file),
            "search_path": str(self.spec.search_path),
            "log_file": str(self.spec.run_dir / "processor.log"),
        }
        # It may hold the local server's placeholder keys: owner-only from its creation.
        self.spec.processor_config.unlink(missing_ok=True)
        descriptor = os.open(self.spec.processor_config, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(json.dumps(config))
        (self.spec.run_dir / "logback.xml").write_text(LOGBACK.format(log=self.spec.daemon_log))

    def _start_daemon(self, kinesis_endpoint: str | None) -> subprocess.Popen[bytes]:
        executable = (
            f"{sys.executable} -m connectors.kinesis.kcl_processor {self.spec.processor_config}"
        )
        if " " in str(sys.executable) or " " in str(self.spec.processor_config):
            raise SetupError(
                "the KCL daemon splits its executable on spaces",
                "run from a folder whose path has no spaces",
            )
        properties = daemon_properties(self.spec, executable, kinesis_endpoint)
        properties_file = self.spec.run_dir / "consumer.properties"
        properties_file.write_text(
            "".join(f"{key} = {value}\n" for key, value in properties.items())
        )
        command = [
            self.java,
            "-Xmx512m",
            f"-Dlogback.configurationFile={self.spec.run_dir / 'logback.xml'}",
            *(["-Daws.cborEnabled=false"] if self.spec.local else []),
            "-cp",
            classpath(self.spec.jars_dir),
            DAEMON_CLASS,
            "--properties-file",
            str(properties_file),
        ]
        log.info("starting the KCL daemon for %s on %s", self.spec.application, self.spec.stream)
        java = shutil.which(self.java)
        if java is None:
            raise SetupError(f"{self.java} is not on PATH", "install Java 17 or newer")
        command[0] = java
        with self.spec.daemon_log.open("ab") as out:
            return subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self._daemon_env(),
                start_new_session=True,
                # The daemon holds the consumer's lock too, for as long as it lives.
                pass_fds=(self._lock_fd,) if self._lock_fd is not None else (),
                preexec_fn=die_with_parent,
            )

    def _daemon_env(self) -> dict[str, str]:
        env = dict(os.environ)
        aws = self.spec.aws
        env["AWS_REGION"] = aws.region
        if aws.access_key_id and aws.secret_access_key:
            env["AWS_ACCESS_KEY_ID"] = aws.access_key_id
            env["AWS_SECRET_ACCESS_KEY"] = aws.secret_access_key
        if aws.endpoint_url:
            # The daemon's CloudWatch client has no endpoint property; the SDK reads this.
            env["AWS_ENDPOINT_URL"] = aws.endpoint_url
        # Processors import the handler from where the consumer was started.
        paths = [str(self.spec.search_path), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        return env

    def _watch(
        self,
        daemon: subprocess.Popen[bytes],
        stop: threading.Event,
        on_progress: Callable[[ConsumeSummary], None] | None,
        poll_s: float,
        front: Http2Front | None = None,
    ) -> None:
        while not stop.is_set():
            if front is not None and front.error is not None:
                raise ConsumerError(
                    f"the local HTTP/2 front stopped: {first_line(front.error)}",
                    f"see {self.spec.daemon_log}",
                    application=self.spec.application,
                    stream=self.spec.stream,
                )
            changed = self._collect()
            if changed and on_progress is not None:
                on_progress(self.summary)
            if self.summary.failure is not None:
                return
            if daemon.poll() is not None:
                self._collect()  # a processor's failure may have come just before the exit
                if self.summary.failure is not None:
                    return
                raise ConsumerError(
                    f"the KCL daemon exited with code {daemon.returncode}: "
                    f"{self._last_daemon_error()}",
                    f"see {self.spec.daemon_log}",
                    application=self.spec.application,
                    stream=self.spec.stream,
                )
            stop.wait(poll_s)

    def _collect(self) -> bool:
        changed = False
        for event in self._events.read_new():
            self.summary.apply(event)
            changed = True
        return changed

    def _stop_daemon(self, daemon: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
        """SIGTERM runs the daemon's graceful shutdown: each processor is asked to stop and
        checkpoints what it handled; past the deadline the group is killed."""
        if daemon.poll() is None:
            # To the daemon alone: its processors share its process group, and a SIGTERM
            # would end them in the middle of a handler call; the daemon stops them itself.
            with contextlib.suppress(ProcessLookupError):
                daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("the KCL daemon ignored SIGTERM for %ss; killing it", timeout_s)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait(10)

    def _last_daemon_error(self) -> str:
        if not self.spec.daemon_log.exists():
            return "no output"
        lines = self.spec.daemon_log.read_text(errors="replace").splitlines()
        errors = [line for line in lines if " ERROR " in line or "Exception" in line]
        return (errors or lines or ["no output"])[-1].strip()[:300]

    def _failure_error(self, failure: Mapping[str, Any]) -> ConsumerError:
        shard = str(failure.get("shard", ""))
        checkpoint = self.summary.shards.get(shard, ShardProgress()).checkpoint
        return ConsumerError(
            f"handler {self.spec.handler} raised on {self.spec.stream} {shard} record "
            f"{failure.get('sequence')}: {failure.get('error')}",
            "the batch was not checkpointed: the next start reads it again from "
            + (f"after {checkpoint}" if checkpoint else "the shard's last checkpoint"),
            application=self.spec.application,
            stream=self.spec.stream,
            shard=shard,
            sequence=str(failure.get("sequence", "")),
            handler=self.spec.handler,
        )
