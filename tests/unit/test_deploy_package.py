"""`streamlake deploy package`: the wheel installs into a clean virtualenv, each job's entry
script reads Glue-style job arguments and names the command that runs its job, and the
files are where infra/'s jobs look for them. (No Glue here: `awsglue` is absent, so the
compatible parser reads the arguments; on Glue, `getResolvedOptions` does.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from streamlake.config import load_config
from streamlake.deploy.render import GLUE_EXTRA_JARS, render
from streamlake.paths import checkout_root

CONFIGS = checkout_root() / "configs"


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("glue")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLAKE")}
    command = [sys.executable, "-m", "streamlake", "--config", str(CONFIGS), "--env", "dev"]
    result = subprocess.run(
        [*command, "deploy", "package", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "16 entry scripts, 3 jars" in result.stdout
    return out


def test_the_files_are_where_the_deployment_looks_for_them(packaged: Path) -> None:
    config = load_config("dev", CONFIGS, environ={})
    variables = render(config.pipeline, config.settings)
    manifest = json.loads((packaged / "manifest.json").read_text())
    files = manifest["files"]
    assert all((packaged / name).is_file() for name in files)
    assert variables["wheel_s3_path"] in files.values()
    assert sorted(variables["extra_jars_s3_paths"]) == sorted(
        uri for name, uri in files.items() if name.startswith("jars/")
    )
    jobs = {*variables["streaming_jobs"], *variables["batch_jobs"]}
    assert {p.stem for p in (packaged / "glue").glob("*.py")} == jobs
    assert files["glue/ingest-orders.py"] == "s3://streamlake-dev-scripts/glue/ingest-orders.py"
    assert {"configs/pipeline.yaml", "configs/dev.yaml"} <= set(files)
    assert sorted(p.name for p in (packaged / "jars").iterdir()) == sorted(GLUE_EXTRA_JARS)


def test_the_wheel_installs_into_a_clean_virtualenv(packaged: Path, tmp_path: Path) -> None:
    """Without its dependencies, which Glue installs from PyPI (--additional-python-modules)."""
    (wheel,) = (packaged / "dist").glob("streamlake-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    install = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "--no-deps", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr
    listed = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import importlib.metadata as m; "
         "print('\\n'.join(str(f) for f in m.files('streamlake')))"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )  # fmt: skip
    files = set(listed.stdout.split())
    for module in (
        "streamlake/cli/glue_entry.py",
        "streamlake/spark_log4j2.properties",
        "connectors/jdbc/reader.py",
        "streaming/ingest.py",
        "batch/pull.py",
    ):
        assert module in files, module
    assert (venv / "bin" / "streamlake").exists()


GLUE_OWN = ["--job-bookmark-option", "job-bookmark-disable", "--TempDir", "s3://t/tmp/"]


def test_each_entry_script_reads_glue_arguments_and_runs_its_job(packaged: Path) -> None:
    config = load_config("dev", CONFIGS, environ={})
    for script in sorted((packaged / "glue").glob("*.py")):
        job = script.stem
        arguments = ["--JOB_NAME", f"shop-dev-{job}", *GLUE_OWN, "--env=dev"]
        arguments += ["--pipeline-config", str(packaged / "configs"), "--dry-run", "true"]
        result = subprocess.run(
            [sys.executable, str(script), *arguments], capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, f"{job}: {result.stderr}"
        streaming = config.pipeline.jobs[job].kind in ("ingest", "process")
        verb = "stream run" if streaming else "batch run"
        assert result.stdout.strip() == (
            f"--env dev --config {packaged / 'configs'} --log-format json {verb} {job}"
        )
    missing = subprocess.run(
        [sys.executable, str(packaged / "glue" / "compact.py"), "--env", "dev"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 1
    assert "missing job argument(s) --JOB_NAME, --pipeline-config" in missing.stderr


AWSGLUE_STANDIN = '''
import argparse


def getResolvedOptions(args, options):
    """As AWS Glue documents it: argparse over the named options, dashes in the names
    becoming underscores, unknown arguments left alone, only the named ones returned."""
    parser = argparse.ArgumentParser()
    for option in options:
        parser.add_argument("--" + option, required=True)
    known, _unknown = parser.parse_known_args(args[1:])
    return vars(known)
'''


def test_on_glue_the_arguments_are_resolved_as_glue_names_them(tmp_path: Path) -> None:
    """Glue's own library cannot be installed here: a stand-in for awsglue.utils with
    getResolvedOptions as Glue documents it."""
    (tmp_path / "awsglue").mkdir()
    (tmp_path / "awsglue" / "__init__.py").write_text("")
    (tmp_path / "awsglue" / "utils.py").write_text(AWSGLUE_STANDIN)
    probe = (
        "from streamlake.cli.glue_entry import glue_arguments, on_glue\n"
        "print(on_glue(), sorted(glue_arguments(['--JOB_NAME', 'j', '--TempDir', 's3://t/',"
        " '--env', 'dev', '--pipeline-config', 's3://b/configs/',"
        " '--kafka-bootstrap-servers', 'b-1:9098']).items()))"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "True [('JOB_NAME', 'j'), ('TempDir', 's3://t/'), ('env', 'dev'), "
        "('kafka-bootstrap-servers', 'b-1:9098'), ('pipeline-config', 's3://b/configs/')]"
    )
