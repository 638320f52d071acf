"""`streamlake demo` end to end, as a user runs it, on the shared local stack."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CONFIGS

pytestmark = pytest.mark.integration


def test_demo_lands_every_kafka_record_in_delta(stack_env: dict[str, str], tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLAKE")}
    env.update(stack_env)
    env["STREAMLAKE__LAKE__ROOT"] = str(tmp_path / "lake")
    result = subprocess.run(
        [sys.executable, "-m", "streamlake", "--config", str(CONFIGS), "demo", "--count", "500"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    figures = dict(re.findall(r"│ (.+?)\s+│\s+(\d+) │", result.stdout))
    assert figures["orders produced now (Kafka, acks=all)"] == "500"
    in_topic = int(figures["records in topic platform-check"])
    assert in_topic >= 500
    assert figures["rows in raw.platform_check (Spark)"] == str(in_topic)
    assert figures["rows read by delta-rs"] == str(in_topic)
    assert (tmp_path / "lake" / "raw" / "platform_check" / "_delta_log").is_dir()
