"""${secret:ID#key} references in an environment file, read from AWS Secrets Manager on
the local AWS API server with the environment's own aws settings."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

from connectors.aws import aws_endpoint, read_secret
from streamlake.config import load_config
from streamlake.errors import ConfigError
from tests.conftest import CONFIGS
from tests.unit.test_config import edit, run_cli

pytestmark = [pytest.mark.integration]


def configs_reading(tmp_path: Path, reference: str) -> Path:
    target = tmp_path / "configs"
    shutil.copytree(CONFIGS, target)
    edit(
        target / "local.yaml",
        "  security_protocol: PLAINTEXT\n",
        "  security_protocol: PLAINTEXT\n"
        f'  options: {{sasl.jaas.config: \'username="ingest" password="{reference}";\'}}\n',
    )
    return target


def test_a_secret_reference_is_read_and_shown_masked(
    stack_env: dict[str, str], settings: Any, tmp_path: Path
) -> None:
    name = f"kafka/{uuid.uuid4().hex[:8]}"
    secrets = aws_endpoint(settings).client("secretsmanager")
    secrets.create_secret(Name=name, SecretString=json.dumps({"password": "from-the-vault"}))
    config_dir = configs_reading(tmp_path, f"${{secret:{name}#password}}")

    loaded = load_config("local", config_dir, environ=stack_env, read_secret=read_secret)

    jaas = loaded.settings.kafka.options["sasl.jaas.config"]
    assert jaas == 'username="ingest" password="from-the-vault";'
    shown = run_cli("--config", str(config_dir), "config", "show", "--json", env=stack_env)
    assert shown.returncode == 0, shown.stderr
    assert "from-the-vault" not in shown.stdout
    options = json.loads(shown.stdout)["settings"]["kafka"]["options"]
    assert options["sasl.jaas.config"] != jaas


def test_a_missing_secret_or_key_is_a_config_error_naming_it(
    stack_env: dict[str, str], settings: Any, tmp_path: Path
) -> None:
    name = f"kafka/{uuid.uuid4().hex[:8]}"
    missing = configs_reading(tmp_path / "a", f"${{secret:{name}}}")
    with pytest.raises(ConfigError, match=f"secret:{name}}}: the secret cannot be read"):
        load_config("local", missing, environ=stack_env, read_secret=read_secret)
    aws_endpoint(settings).client("secretsmanager").create_secret(
        Name=name, SecretString="plain text"
    )
    keyed = configs_reading(tmp_path / "b", f"${{secret:{name}#password}}")
    with pytest.raises(ConfigError, match="not a JSON object with the key 'password'"):
        load_config("local", keyed, environ=stack_env, read_secret=read_secret)
    shown = run_cli("--config", str(keyed), "config", "show", env=stack_env)
    assert shown.returncode == 2
    assert "local.yaml" in shown.stderr and "not a JSON object" in shown.stderr
