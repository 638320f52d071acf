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


def test_demo_lands_every_produced_record_in_raw(stack_env: dict[str, str], tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLAKE")}
    env.update(stack_env)
    env["STREAMLAKE__LAKE__ROOT"] = str(tmp_path / "lake")
    env["STREAMLAKE__LAKE__CHECKPOINT_ROOT"] = str(tmp_path / "checkpoints")
    command = [sys.executable, "-m", "streamlake", "--config", str(CONFIGS), "demo"]
    result = subprocess.run(
        [*command, "--count", "400", "--seed", "3"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = dict(
        (m.group(1), [int(m.group(i)) for i in (3, 4, 5)])
        for m in re.finditer(r"│ (\w+)\s+│ (\w+)\s+│\s+(\d+) │\s+(\d+) │\s+(\d+) │", result.stdout)
    )
    assert lines["orders"][0] == 400 and lines["clickstream"][0] == 400
    assert lines["customers"][0] == 100
    for source, (produced, added, total) in lines.items():
        assert added == produced == total, source
    for table in ("orders", "clickstream", "customers"):
        assert (tmp_path / "lake" / "raw" / table / "_delta_log").is_dir()
