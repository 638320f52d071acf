"""The command line: every verb answers --help; the root imports no heavy library."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
import typer.main
import yaml

from streamlake.cli.app import app
from tests.conftest import CONFIGS


def command_paths(command: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    for name, sub in getattr(command, "commands", {}).items():
        paths.extend(command_paths(sub, (*prefix, name)))
    return paths


ROOT = typer.main.get_command(app)
PATHS = command_paths(ROOT)


def test_the_contract_verbs_that_exist_are_registered() -> None:
    assert {("local", "up"), ("local", "status"), ("local", "down"), ("config", "show")} <= set(
        PATHS
    )
    assert ("demo",) in PATHS


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "streamlake")
def test_help_works_and_describes_the_command(path: tuple[str, ...]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "streamlake", *path, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout
    command = ROOT
    for name in path:
        command = command.commands[name]
    summary = (command.help or "").strip().splitlines()[0]
    assert summary, f"{' '.join(path)} has no help text"
    # Rich wraps the text to the terminal: compare with whitespace runs made single spaces.
    assert " ".join(summary.split()) in " ".join(result.stdout.split())


def test_cli_import_stays_light() -> None:
    """`streamlake --help` must answer fast: Spark, boto3 and Kafka load only when used."""
    probe = (
        "import sys, streamlake.cli.app; "
        "heavy = [m for m in ('pyspark', 'boto3', 'kafka', 'deltalake', 'pyarrow', 'moto') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_unknown_command_is_bad_usage() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "streamlake", "fly"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "No such command 'fly'" in result.stderr


def test_config_show_masks_every_secret_looking_setting(tmp_path: Any) -> None:
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "pipeline.yaml").write_text((CONFIGS / "pipeline.yaml").read_text())
    local = yaml.safe_load((CONFIGS / "local.yaml").read_text())
    local.setdefault("kafka", {})["options"] = {
        "sasl.jaas.config": 'ScramLoginModule required username="u" password="hunter2-jaas";',
        "ssl.truststore.password": "hunter2-truststore",
        "client.id": "streamlake-visible",
        "ssl.keystore.key": "hunter2-pem",
        "basic.auth.user.info": "${env:REGISTRY_LOGIN}",
    }
    local.setdefault("spark", {})["conf"] = {"spark.hadoop.fs.s3a.secret.key": "hunter2-s3a"}
    (configs / "local.yaml").write_text(yaml.safe_dump(local))
    result = subprocess.run(
        [sys.executable, "-m", "streamlake", "--config", str(configs), "config", "show", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("STREAMLAKE")},
            "REGISTRY_LOGIN": "user:hunter2-login",
        },
    )
    assert result.returncode == 0, result.stderr
    assert "hunter2" not in result.stdout
    shown = json.loads(result.stdout)["settings"]
    assert shown["kafka"]["options"]["client.id"] == "streamlake-visible"
    assert shown["kafka"]["options"]["sasl.jaas.config"] == "**********"
    assert shown["spark"]["conf"]["spark.hadoop.fs.s3a.secret.key"] == "**********"
