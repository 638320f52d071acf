"""The local Kafka broker as a container, for machines with a Docker engine
(``local.kafka_runtime: testcontainers``): Apache Kafka's own image at the version the
jar broker runs, one KRaft node, its listener published on 127.0.0.1 at ``kafka_port``.

The container outlives the `local up` that starts it (no reaper: `local down` removes it),
and is named after the state folder, so that up, status and down find it again. Its log
lives in the container: `down` (and an `up` that finds it stopped) loses the topics, as a
fresh broker would; the jar broker keeps them on disk."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamlake.errors import ServiceError

log = logging.getLogger(__name__)

# The broker version pom.xml pins for the jar broker (kafka.broker.version).
KAFKA_VERSION = "4.1.1"
KAFKA_IMAGE = f"apache/kafka:{KAFKA_VERSION}"
CONTAINER_PORT = 9092
# The engine's client, made once: the health probe asks for it twice a second.
ENGINE: list[Any] = []


@dataclass(frozen=True)
class KafkaContainer:
    host: str
    port: int
    state_dir: Path

    @property
    def name(self) -> str:
        digest = hashlib.sha256(str(self.state_dir.resolve()).encode()).hexdigest()[:12]
        return f"streamlake-kafka-{digest}"

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def engine(self) -> Any:
        """The Docker engine's client (one per process); a ServiceError in one line when
        none answers."""
        if ENGINE:
            return ENGINE[0]
        try:
            import docker

            # (mypy takes the checkout's docker/ folder for this package.)
            client = docker.from_env(timeout=10)  # type: ignore[attr-defined]
            client.ping()
            ENGINE.append(client)
            return client
        except Exception as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ServiceError(
                f"local.kafka_runtime is testcontainers, and no Docker engine is reachable "
                f"({reason})",
                "start a Docker engine, or set local.kafka_runtime: jar",
                service="kafka",
                address=self.bootstrap_servers,
            ) from None

    def running(self) -> bool:
        container = self._container()
        return container is not None and container.status == "running"

    def _container(self) -> Any:
        import docker.errors

        try:
            return self.engine().containers.get(self.name)
        except docker.errors.NotFound:
            return None

    def environment(self) -> dict[str, str]:
        return {
            "KAFKA_NODE_ID": "1",
            "KAFKA_PROCESS_ROLES": "broker,controller",
            "KAFKA_LISTENERS": f"PLAINTEXT://:{CONTAINER_PORT},CONTROLLER://:9093",
            "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://{self.bootstrap_servers}",
            "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
            "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
            "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
            "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
            "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
            "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
            "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": "1",
            "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
            "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
        }

    def start(self) -> None:
        """Start the container (removing a stopped one of the same name first)."""
        from testcontainers.core.config import testcontainers_config
        from testcontainers.core.container import DockerContainer

        self.engine()  # the one-line error when there is no engine
        stale = self._container()
        if stale is not None:
            stale.remove(force=True)
        # The broker lives until `local down`, not until this process ends.
        testcontainers_config.ryuk_disabled = True
        container = (
            DockerContainer(KAFKA_IMAGE)
            .with_name(self.name)
            .with_envs(**self.environment())
            .with_bind_ports(CONTAINER_PORT, (self.host, self.port))  # type: ignore[arg-type]
            .with_kwargs(labels={"dev.streamlake.state-dir": str(self.state_dir.resolve())})
        )
        container.start()
        log.info("started container %s (%s) at %s", self.name, KAFKA_IMAGE, self.bootstrap_servers)

    def stop(self) -> bool:
        """Remove the container; True if there was one."""
        container = self._container()
        if container is None:
            return False
        container.remove(force=True)
        log.info("removed container %s", self.name)
        return True
