"""`local.kafka_runtime: testcontainers`: the local broker in a container. These machines
have no Docker engine, so the run in a container reports itself skipped with the reason;
the refusal without an engine runs everywhere (DOCKER_HOST points at no engine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from streamlake.errors import ServiceError
from streamlake.local.kafka_container import KafkaContainer
from tests.conftest import CONFIGS, local_overrides

pytestmark = pytest.mark.integration


def streamlake(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLAKE")}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "streamlake", "--config", str(CONFIGS), *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=300,
    )


def container_env(tmp_path: Path) -> dict[str, str]:
    env = local_overrides(tmp_path / "state")
    env["STREAMLAKE__LOCAL__KAFKA_RUNTIME"] = "testcontainers"
    return env


def test_the_container_runtime_without_a_docker_engine_is_one_clear_line(tmp_path: Path) -> None:
    env = container_env(tmp_path)
    env["DOCKER_HOST"] = f"unix://{tmp_path / 'no-engine.sock'}"
    try:
        result = streamlake(tmp_path, env, "local", "up")
    finally:
        down = streamlake(tmp_path, env, "local", "down")
    # The AWS server started before the broker failed, and down stops it all the same.
    assert down.returncode == 0 and "stopped: aws" in down.stdout, down.stdout + down.stderr
    assert result.returncode == 1, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1, result.stderr
    assert "kafka at 127.0.0.1:" in errors[0]
    assert "local.kafka_runtime is testcontainers, and no Docker engine is reachable" in errors[0]
    assert "set local.kafka_runtime: jar" in errors[0]


def test_local_up_runs_the_broker_in_a_container_and_down_removes_it(tmp_path: Path) -> None:
    env = container_env(tmp_path)
    port = int(env["STREAMLAKE__LOCAL__KAFKA_PORT"])
    container = KafkaContainer("127.0.0.1", port, tmp_path / "state")
    try:
        container.engine()
    except ServiceError as exc:
        pytest.skip(f"no Docker engine is reachable on this machine: {exc.message}")
    try:
        up = streamlake(tmp_path, env, "local", "up", "--json")
        assert up.returncode == 0, up.stderr
        services = {s["name"]: s for s in json.loads(up.stdout)["services"]}
        assert services["kafka"]["health"] == "healthy"
        assert container.running()
    finally:
        down = streamlake(tmp_path, env, "local", "down")
    assert "kafka" in down.stdout
    assert not container.running()
