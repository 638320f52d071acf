"""A single-node Apache Kafka 4 broker in KRaft mode, run from the jars in `.jars/kafka`."""

from __future__ import annotations

import base64
import logging
import shutil
import socket
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from streamlake.errors import ServiceError, SetupError

log = logging.getLogger(__name__)

BROKER_MAIN = "kafka.Kafka"
STORAGE_TOOL_MAIN = "kafka.tools.StorageTool"
LOG4J2_CONFIG = """\
Configuration:
  name: streamlake-kafka
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka
        level: INFO
      - name: org.apache.kafka
        level: WARN
      - name: state.change.logger
        level: WARN
"""


# The local broker's one SASL/PLAIN account: loopback only, for trying security settings.
LOCAL_SASL_USER = "streamlake"
LOCAL_SASL_PASSWORD = "streamlake-local"


@dataclass(frozen=True)
class KafkaBroker:
    """Where the broker listens and keeps its files."""

    host: str
    port: int
    controller_port: int
    state_dir: Path
    jars_dir: Path
    heap: str = "512m"
    # A second listener with SASL/PLAIN, for trying a pipeline's security settings locally.
    sasl_port: int | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "kafka" / "data"

    @property
    def config_file(self) -> Path:
        return self.state_dir / "kafka" / "server.properties"

    @property
    def log4j_file(self) -> Path:
        return self.state_dir / "kafka" / "log4j2.yaml"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "logs" / "kafka.log"

    def server_properties(self) -> str:
        voters = f"1@{self.host}:{self.controller_port}"
        listeners = [f"PLAINTEXT://{self.host}:{self.port}"]
        if self.sasl_port is not None:
            listeners.append(f"SASL_PLAINTEXT://{self.host}:{self.sasl_port}")
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": voters,
            "listeners": ",".join([*listeners, f"CONTROLLER://{self.host}:{self.controller_port}"]),
            "advertised.listeners": ",".join(listeners),
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": (
                "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT"
            ),
            "sasl.enabled.mechanisms": "PLAIN",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config": (
                "org.apache.kafka.common.security.plain.PlainLoginModule required "
                f'username="{LOCAL_SASL_USER}" password="{LOCAL_SASL_PASSWORD}" '
                f'user_{LOCAL_SASL_USER}="{LOCAL_SASL_PASSWORD}";'
            ),
            "log.dirs": str(self.data_dir.resolve()),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "5",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            # Small segments so retention tests and local disks stay small.
            "log.segment.bytes": str(64 * 1024 * 1024),
            "log.retention.check.interval.ms": "5000",
        }
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    def classpath(self) -> str:
        if not any(self.jars_dir.glob("kafka_*.jar")):
            raise SetupError(
                f"the Kafka broker jars are missing from {self.jars_dir}",
                "run `make setup` (Maven resolves them from pom.xml)",
                path=str(self.jars_dir),
            )
        return str(self.jars_dir / "*")

    def java(self) -> str:
        java = shutil.which("java")
        if java is None:
            raise SetupError("java is not on PATH", "install Java 17 or newer")
        return java

    def jvm_command(self, main: str, *args: str) -> list[str]:
        return [
            self.java(),
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.log4j_file.resolve()}",
            "-cp",
            self.classpath(),
            main,
            *args,
        ]

    def prepare(self) -> None:
        """Write the configs and format the storage on first start."""
        self.config_file.parent.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self.server_properties())
        self.log4j_file.write_text(LOG4J2_CONFIG)
        if (self.data_dir / "meta.properties").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cluster_id = new_cluster_id()
        command = self.jvm_command(
            STORAGE_TOOL_MAIN, "format", "-t", cluster_id, "-c", str(self.config_file.resolve())
        )
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            output = (result.stderr or result.stdout).strip().splitlines()
            raise ServiceError(
                "formatting the KRaft storage failed: "
                + (output[-1] if output else f"exit code {result.returncode}"),
                service="kafka",
                address=self.bootstrap_servers,
            )
        log.info("formatted Kafka storage in %s (cluster %s)", self.data_dir, cluster_id)

    def command(self) -> list[str]:
        return self.jvm_command(BROKER_MAIN, str(self.config_file.resolve()))


def port_is_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def new_cluster_id() -> str:
    """A random KRaft cluster id. Like Kafka's own Uuid.randomUuid, never one starting with
    '-', which kafka-storage's argument parser would take for an option."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id
