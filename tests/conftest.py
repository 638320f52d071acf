"""Shared fixtures: the local services and one SparkSession per test session.

The services are started by the tests themselves, through the same code as
`streamlake local up`, on free loopback ports in a temporary state directory. Setting
both STREAMLAKE_KAFKA_BOOTSTRAP and STREAMLAKE_AWS_ENDPOINT uses running services instead;
STREAMLAKE_TEST_KAFKA_RUNTIME=testcontainers runs the broker in a container (a Docker engine
is needed; the tests of the jar broker's SASL listener cannot pass then).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from streamlake.config import LoadedConfig, load_config
from streamlake.local.stack import LocalStack
from streamlake.paths import checkout_root
from tests.confluent_double import confluent_double  # noqa: F401 (a fixture for every test)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

CONFIGS = checkout_root() / "configs"


def free_ports(count: int) -> list[int]:
    """Ports the kernel hands out now; held open together so they are distinct."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def local_overrides(state_dir: Path) -> dict[str, str]:
    """STREAMLAKE__ variables that put a local stack on free ports under ``state_dir``."""
    kafka, controller, aws, sasl, postgres = free_ports(5)
    return {
        "STREAMLAKE__LOCAL__STATE_DIR": str(state_dir),
        "STREAMLAKE__LOCAL__KAFKA_PORT": str(kafka),
        "STREAMLAKE__LOCAL__KAFKA_CONTROLLER_PORT": str(controller),
        "STREAMLAKE__LOCAL__KAFKA_SASL_PORT": str(sasl),
        "STREAMLAKE__LOCAL__AWS_PORT": str(aws),
        "STREAMLAKE__LOCAL__POSTGRES_PORT": str(postgres),
        "STREAMLAKE__LAKE__ROOT": str(state_dir / "lake"),
        "STREAMLAKE__LAKE__CHECKPOINT_ROOT": str(state_dir / "checkpoints"),
        "STREAMLAKE__SPARK__UI_ENABLED": "false",
        "STREAMLAKE__SPARK__SHUFFLE_PARTITIONS": "2",
        # Commands the tests run at once must not compete for one port.
        "STREAMLAKE__METRICS__PROMETHEUS_PORT": "0",
        "STREAMLAKE__LOCAL__KAFKA_RUNTIME": os.environ.get("STREAMLAKE_TEST_KAFKA_RUNTIME", "jar"),
    }


def external_overrides() -> dict[str, str] | None:
    kafka = os.environ.get("STREAMLAKE_KAFKA_BOOTSTRAP")
    aws = os.environ.get("STREAMLAKE_AWS_ENDPOINT")
    if not kafka and not aws:
        return None
    if not (kafka and aws):
        pytest.exit("set both STREAMLAKE_KAFKA_BOOTSTRAP and STREAMLAKE_AWS_ENDPOINT, or neither")
    return {"STREAMLAKE__KAFKA__BOOTSTRAP_SERVERS": kafka, "STREAMLAKE__AWS__ENDPOINT_URL": aws}


@pytest.fixture(scope="session")
def stack_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Environment overrides naming the running services; starts them unless external."""
    state_dir = tmp_path_factory.mktemp("stack")
    overrides = local_overrides(state_dir)
    external = external_overrides()
    if external:
        overrides.update(external)
    config = load_config("local", CONFIGS, environ=overrides)
    stack = LocalStack(config.settings, config.pipeline)
    if external:
        from streamlake.local.resources import declared_resources, ensure_all

        ensure_all(declared_resources(config.pipeline, config.settings, stack.aws))
        yield overrides
        return
    stack.up()
    try:
        yield overrides
    finally:
        stack.down()
        discard_postgres(stack)


def discard_postgres(stack: LocalStack) -> None:
    """Remove the local PostgreSQL's files, which live outside the state folder when the
    tests run as root (see ``streamlake.local.postgres``)."""
    import shutil

    shutil.rmtree(stack.postgres.home, ignore_errors=True)


@pytest.fixture(scope="session")
def loaded(stack_env: dict[str, str]) -> LoadedConfig:
    return load_config("local", CONFIGS, environ=stack_env)


@pytest.fixture(scope="session")
def settings(loaded: LoadedConfig) -> Any:
    return loaded.settings


@pytest.fixture(scope="session")
def spark(settings: Any) -> Iterator[SparkSession]:
    from streamlake.spark_session import build_spark_session

    session = build_spark_session(settings, app_name="streamlake-tests")
    yield session
    session.stop()


@pytest.fixture
def lake(settings: Any, tmp_path: Path) -> Any:
    """The stack's settings with a lake and checkpoints of this test's own."""
    from tests.support import with_lake

    return with_lake(settings, tmp_path)
