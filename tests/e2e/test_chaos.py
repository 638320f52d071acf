"""The short chaos run of `make test` (the long one is `make soak`): the demo pipeline's
driver killed at random under load, the Kafka broker and the AWS API server restarted once
each, a short overload; then every record is checked by id in raw, processed and
quarantine with delta-rs."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from streamlake.config import LoadedConfig
from streamlake.local.stack import LocalStack
from tests.chaos.figures import render
from tests.chaos.harness import ChaosPlan, ChaosRun
from tests.conftest import external_overrides
from tests.support import cli_env, with_lake

pytestmark = pytest.mark.integration


@pytest.mark.timeout(900)
def test_killed_driver_and_restarted_services_lose_and_repeat_nothing(
    stack_env: dict[str, str], loaded: LoadedConfig, tmp_path: Path
) -> None:
    seed = random.SystemRandom().randrange(10**6)
    plan = ChaosPlan(
        seed=seed,
        produce_s=60,
        kills=2,
        kafka_restarts=1,
        aws_restarts=1,
        rates={"orders": 10.0, "clickstream": 10.0, "customers": 4.0},
        overload_factor=5.0,
        overload_s=15,
        kill_after_commit_s=(0.0, 10.0),
        memory_ceiling_mb=4096,
        drain_timeout_s=400,
    )
    # Services given from outside are not this test's to restart.
    stack = None if external_overrides() else LocalStack(loaded.settings, loaded.pipeline)
    events: list[str] = []
    run = ChaosRun(
        plan,
        with_lake(loaded.settings, tmp_path),
        loaded.pipeline,
        stack,
        cli_env(stack_env, tmp_path),
        tmp_path,
        on_event=events.append,
    )
    figures = run.run()
    report = f"seed {seed}\n" + "\n".join(events) + "\n" + render(figures)
    assert figures.ok, report
    assert figures.kills >= plan.kills, report
    assert figures.records_checked > 0, report
    if stack is not None:
        assert (figures.kafka_restarts, figures.aws_restarts) == (1, 1), report
