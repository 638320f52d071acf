"""`streamlake deploy package`: what AWS Glue 6.0 runs, in ``dist/glue/``, laid out as it
goes to the scripts bucket: the wheel (``dist/``, for ``--additional-python-modules``), one
entry script per job (``glue/<job>.py``), the jars Glue lacks (``jars/``) and the pipeline's
configuration (``configs/``); ``manifest.json`` maps each file to its S3 URI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from streamlake.config.pipeline import Pipeline
from streamlake.config.settings import Settings
from streamlake.deploy.render import GLUE_EXTRA_JARS
from streamlake.errors import SetupError, UsageError

ENTRY_SCRIPT = '''"""AWS Glue entry of the streamlake job {job} ({kind}), written by
`streamlake deploy package`. Glue's job arguments: --JOB_NAME, --env, --pipeline-config
(the configs' S3 prefix); --kafka-bootstrap-servers for Kafka jobs."""

from streamlake.cli.glue_entry import run

run({job!r})
'''


@dataclass
class Package:
    """What `deploy package` wrote, by path below its folder."""

    folder: Path
    wheel: str = ""
    scripts: list[str] = field(default_factory=list)
    jars: list[str] = field(default_factory=list)
    configs: list[str] = field(default_factory=list)


def deployable_jobs(pipeline: Pipeline) -> dict[str, str]:
    """Job -> kind, for every job Glue runs (an inline process job runs inside its ingest)."""
    return {name: job.kind for name, job in pipeline.jobs.items() if job.mode != "inline"}


def build_wheel(checkout: Path, folder: Path) -> str:
    """The project's wheel, built into ``folder``; its file name."""
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(folder)]
    # setuptools builds in the checkout's build/: removed again unless it was there before.
    scratch = checkout / "build"
    existed = scratch.exists()
    try:
        result = subprocess.run(
            [*command, str(checkout)], capture_output=True, text=True, timeout=600
        )
    finally:
        if not existed:
            shutil.rmtree(scratch, ignore_errors=True)
    wheels = sorted(folder.glob("streamlake-*.whl"))
    if result.returncode != 0 or not wheels:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise SetupError(
            "building the wheel failed: " + (lines[-1] if lines else f"exit {result.returncode}"),
            "pip needs setuptools from PyPI (or a local index) to build it",
        )
    return wheels[-1].name


def package(
    pipeline: Pipeline,
    settings: Settings,
    config_dir: Path,
    checkout: Path,
    jars_dir: Path,
    out: Path,
) -> Package:
    if settings.deploy.scripts_bucket is None:
        raise UsageError(
            "deploy.scripts_bucket is not set",
            f"name the bucket for the Glue scripts in configs/{settings.env}.yaml",
        )
    missing = [jar for jar in GLUE_EXTRA_JARS if not (jars_dir / jar).exists()]
    if missing:
        raise SetupError(
            f"jars missing from {jars_dir}: {', '.join(missing)}",
            "run `make setup` (Maven resolves them from pom.xml)",
            path=str(jars_dir),
        )
    if out.exists() and any(out.iterdir()) and not (out / "manifest.json").exists():
        raise UsageError(
            f"{out} is not empty and holds no earlier package (manifest.json)",
            "name an empty folder, or one `deploy package` filled before",
        )
    shutil.rmtree(out, ignore_errors=True)
    made = Package(out)
    made.wheel = f"dist/{build_wheel(checkout, out / 'dist')}"
    (out / "glue").mkdir(parents=True)
    for job, kind in deployable_jobs(pipeline).items():
        (out / "glue" / f"{job}.py").write_text(ENTRY_SCRIPT.format(job=job, kind=kind))
        made.scripts.append(f"glue/{job}.py")
    (out / "jars").mkdir()
    for jar in GLUE_EXTRA_JARS:
        shutil.copy2(jars_dir / jar, out / "jars" / jar)
        made.jars.append(f"jars/{jar}")
    (out / "configs").mkdir()
    for name in ("pipeline.yaml", f"{settings.env}.yaml"):
        shutil.copy2(config_dir / name, out / "configs" / name)
        made.configs.append(f"configs/{name}")
    bucket = settings.deploy.scripts_bucket
    files = [made.wheel, *made.scripts, *made.jars, *made.configs]
    manifest = {"scripts_bucket": bucket, "files": {f: f"s3://{bucket}/{f}" for f in files}}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return made
