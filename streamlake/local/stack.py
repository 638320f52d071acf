"""`local up / status / down`: start, report and stop the embedded services.

`up` is idempotent: a service already running and healthy is left alone, one that is
recorded but dead is started again, and resources are created only when missing.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from connectors.aws import aws_endpoint
from connectors.base import Resource
from connectors.kafka import admin as kafka_admin
from streamlake.config.pipeline import Pipeline
from streamlake.config.settings import Settings
from streamlake.errors import ServiceError, UsageError
from streamlake.local import processes
from streamlake.local.aws_server import AwsServer
from streamlake.local.database import database_resources, local_jdbc_sources
from streamlake.local.kafka_broker import KafkaBroker, port_is_open
from streamlake.local.kafka_container import KafkaContainer
from streamlake.local.postgres import LOCAL_USER, LocalPostgres
from streamlake.local.resources import ResourceStatus, check_all, declared_resources, ensure_all
from streamlake.paths import default_kafka_jars_dir

log = logging.getLogger(__name__)

HEALTH_TOPIC = "_streamlake_health"
KAFKA = "kafka"
AWS = "aws"
POSTGRES = "postgres"
Health = Literal["healthy", "unhealthy", "stopped"]
# PostgreSQL's SIGTERM waits for every client to leave; SIGINT is its fast shutdown.
STOP_SIGNALS = {POSTGRES: signal.SIGINT}


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    address: str
    pid: int | None
    health: Health
    detail: str = ""


@dataclass(frozen=True)
class StackStatus:
    services: list[ServiceStatus]
    resources: list[ResourceStatus]


class LocalStack:
    """The local Kafka broker and AWS API server of one state directory."""

    def __init__(self, settings: Settings, pipeline: Pipeline) -> None:
        if not settings.local.enabled:
            raise UsageError(
                f"environment {settings.env!r} does not use local services",
                "run with --env local, or set local.enabled in its config",
            )
        local = settings.local
        self.settings = settings
        self.pipeline = pipeline
        self.state_dir = local.state_dir
        self.run_dir = local.state_dir / "run"
        self.kafka = KafkaBroker(
            host=local.host,
            port=local.kafka_port,
            controller_port=local.kafka_controller_port,
            state_dir=local.state_dir,
            jars_dir=local.kafka_jars_dir or default_kafka_jars_dir(),
            heap=local.kafka_heap,
            sasl_port=local.kafka_sasl_port,
        )
        self.aws_server = AwsServer(host=local.host, port=local.aws_port, state_dir=local.state_dir)
        # With kafka_runtime testcontainers, the broker is this container instead.
        self.kafka_container = (
            KafkaContainer(local.host, local.kafka_port, local.state_dir)
            if local.kafka_runtime == "testcontainers"
            else None
        )
        self.postgres = LocalPostgres(local.host, local.postgres_port, local.state_dir)
        # PostgreSQL runs only for pipelines that pull from a local jdbc connection.
        self.needs_postgres = bool(local_jdbc_sources(pipeline, settings))
        self.aws = aws_endpoint(settings)
        self.timeout_s = local.start_timeout_s

    # -- up ---------------------------------------------------------------------------

    def up(self, on_step: Callable[[str], None] = lambda _: None) -> StackStatus:
        """Start what is not running, wait until healthy, create declared resources."""
        on_step("AWS API server")
        self._start_aws()
        on_step("Kafka broker")
        self._start_kafka()
        if self.needs_postgres:
            on_step("PostgreSQL")
            self._start_postgres()
        on_step("resources")
        resources = ensure_all(self._resources())
        return StackStatus(self._service_statuses(), resources)

    def _start_aws(self) -> None:
        if not self._running(AWS):
            self._check_port_free(AWS, self.aws_server.port, "AWS_PORT")
            self.aws_server.state_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            processes.start(
                AWS,
                self.aws_server.command(),
                self.run_dir,
                self.aws_server.log_file,
                self.aws_server.endpoint_url,
            )
        self._wait_healthy(AWS, self._aws_healthy, self.aws_server.endpoint_url)

    def _start_kafka(self) -> None:
        if self.kafka_container is not None:
            self._start_kafka_container(self.kafka_container)
            return
        if not self._running(KAFKA):
            self._check_port_free(KAFKA, self.kafka.port, "KAFKA_PORT")
            self._check_port_free(KAFKA, self.kafka.controller_port, "KAFKA_CONTROLLER_PORT")
            if self.kafka.sasl_port is not None:
                self._check_port_free(KAFKA, self.kafka.sasl_port, "KAFKA_SASL_PORT")
            self.kafka.prepare()
            processes.start(
                KAFKA,
                self.kafka.command(),
                self.run_dir,
                self.kafka.log_file,
                self.kafka.bootstrap_servers,
            )
        self._wait_healthy(KAFKA, self._kafka_healthy, self.kafka.bootstrap_servers)

    def _start_kafka_container(self, container: KafkaContainer) -> None:
        if not container.running():
            self._check_port_free(KAFKA, container.port, "KAFKA_PORT")
            container.start()
        self._wait_healthy(
            KAFKA, self._kafka_healthy, container.bootstrap_servers, alive=container.running
        )

    def _start_postgres(self) -> None:
        if not self._running(POSTGRES):
            self._check_port_free(POSTGRES, self.postgres.port, "POSTGRES_PORT")
            self.postgres.prepare()
            processes.start(
                POSTGRES,
                self.postgres.command(),
                self.run_dir,
                self.postgres.log_file,
                self.postgres.address,
            )
        self._wait_healthy(POSTGRES, self._postgres_healthy, self.postgres.address)

    def _running(self, name: str) -> bool:
        record = processes.read_record(self.run_dir, name)
        return record is not None and processes.is_running(record)

    def _check_port_free(self, name: str, port: int, setting: str) -> None:
        if port_is_open(self.settings.local.host, port):
            raise ServiceError(
                f"port {port} is taken by a process this stack did not start",
                f"stop it, or choose another port (STREAMLAKE__LOCAL__{setting})",
                service=name,
                address=f"{self.settings.local.host}:{port}",
            )

    def _wait_healthy(
        self,
        name: str,
        probe: Callable[[], str | None],
        address: str,
        alive: Callable[[], bool] | None = None,
    ) -> None:
        """Probe until healthy; ``alive`` says whether the service still runs (default: its
        recorded process)."""
        deadline = time.monotonic() + self.timeout_s
        problem = "not checked yet"
        while time.monotonic() < deadline:
            record = processes.read_record(self.run_dir, name)
            running = alive() if alive else record is not None and processes.is_running(record)
            if not running:
                raise ServiceError(
                    "exited during start-up",
                    service=name,
                    address=address,
                    log_file=record.log_file if record else "",
                )
            problem = probe() or ""
            if not problem:
                log.info("%s is healthy at %s", name, address)
                return
            time.sleep(0.5)
        record = processes.read_record(self.run_dir, name)
        raise ServiceError(
            f"not healthy after {self.timeout_s:.0f}s: {problem}",
            service=name,
            address=address,
            log_file=record.log_file if record else "",
            retryable=True,
        )

    def _aws_healthy(self) -> str | None:
        """None when an AWS API call answers, else what went wrong."""
        try:
            self.aws.client("sts", connect_timeout=1, retries=1).get_caller_identity()
            return None
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"

    def _kafka_healthy(self) -> str | None:
        """None when a message produced with acks=all is consumed back."""
        if not port_is_open(self.kafka.host, self.kafka.port):
            return "port not open yet"
        try:
            # The local broker's plaintext listener, whatever the environment's kafka says.
            client = {"bootstrap_servers": self.kafka.bootstrap_servers}
            kafka_admin.ensure_topics(client, [kafka_admin.TopicSpec(HEALTH_TOPIC)])
            kafka_admin.round_trip(client, HEALTH_TOPIC, timeout_s=15)
            return None
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"

    def _postgres_healthy(self) -> str | None:
        """None when the superuser logs in and runs a query."""
        import psycopg

        try:
            with psycopg.connect(
                host=self.postgres.host,
                port=self.postgres.port,
                user=LOCAL_USER,
                password=self.postgres.password(),
                dbname="postgres",
                connect_timeout=2,
            ) as db:
                db.execute("select 1")
            return None
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}".strip()

    def _resources(self) -> list[Resource]:
        declared = declared_resources(self.pipeline, self.settings, self.aws)
        if not self.needs_postgres:
            return declared
        return declared + database_resources(self.pipeline, self.settings, self.aws, self.postgres)

    def restart(self, name: str, on_step: Callable[[str], None] = lambda _: None) -> None:
        """Stop one service gracefully and start it again (Kafka keeps its log on disk;
        the AWS server saves Kinesis and DynamoDB on stop), then recreate missing
        resources."""
        starts = {KAFKA: self._start_kafka, AWS: self._start_aws, POSTGRES: self._start_postgres}
        if name not in starts:
            raise UsageError(f"no local service named {name!r}", f"use {' or '.join(starts)}")
        on_step(f"stopping {name}")
        if name == KAFKA and self.kafka_container is not None:
            self.kafka_container.stop()
        processes.stop(self.run_dir, name, stop_signal=STOP_SIGNALS.get(name))
        on_step(f"starting {name}")
        starts[name]()
        ensure_all(self._resources())

    # -- status -----------------------------------------------------------------------

    def status(self) -> StackStatus:
        services = self._service_statuses()
        all_healthy = all(s.health == "healthy" for s in services)
        resources = check_all(self._resources()) if all_healthy else []
        return StackStatus(services, resources)

    def _service_statuses(self) -> list[ServiceStatus]:
        statuses = [
            self._service_status(AWS, self.aws_server.endpoint_url, self._aws_healthy),
            self._kafka_status(),
        ]
        if self.needs_postgres or processes.read_record(self.run_dir, POSTGRES) is not None:
            statuses.append(
                self._service_status(POSTGRES, self.postgres.address, self._postgres_healthy)
            )
        return statuses

    def _kafka_status(self) -> ServiceStatus:
        container = self.kafka_container
        if container is None:
            return self._service_status(KAFKA, self.kafka.bootstrap_servers, self._kafka_healthy)
        if not container.running():
            return ServiceStatus(KAFKA, container.bootstrap_servers, None, "stopped")
        problem = self._kafka_healthy()
        health: Health = "unhealthy" if problem else "healthy"
        return ServiceStatus(KAFKA, container.bootstrap_servers, None, health, problem or "")

    def _service_status(
        self, name: str, address: str, probe: Callable[[], str | None]
    ) -> ServiceStatus:
        record = processes.read_record(self.run_dir, name)
        if record is None or not processes.is_running(record):
            return ServiceStatus(name, address, None, "stopped")
        problem = probe()
        return ServiceStatus(
            name, address, record.pid, "unhealthy" if problem else "healthy", problem or ""
        )

    # -- down -------------------------------------------------------------------------

    def down(self) -> list[str]:
        """Stop the services this state directory recorded; return the names stopped."""
        stopped = []
        for name in (POSTGRES, KAFKA, AWS):
            if name == KAFKA and self.kafka_container is not None:
                if self._stop_container(self.kafka_container):
                    stopped.append(name)
            elif processes.stop(self.run_dir, name, stop_signal=STOP_SIGNALS.get(name)):
                stopped.append(name)
        return stopped

    def _stop_container(self, container: KafkaContainer) -> bool:
        """Remove the broker's container; with no engine there is none to remove, and the
        other services are stopped all the same."""
        try:
            return container.stop()
        except ServiceError as exc:
            log.warning("kafka: %s", exc.message)
            return False
