"""The source-kind registry: every implemented kind has one object, and a pipeline that
declares a kind with no implementation is refused where the configuration is loaded."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml

from connectors.registry import SOURCE_KINDS, check_pipeline, source_kind
from streamlake.config.pipeline import Pipeline, Source
from streamlake.errors import ConfigError, UsageError
from streamlake.paths import checkout_root

CONFIGS = checkout_root() / "configs"


def declared_kinds() -> set[str]:
    union = get_args(Source)[0]
    return {get_args(model.model_fields["kind"].annotation)[0] for model in get_args(union)}


def pipeline_with_files_source(**changes: str) -> dict[str, Any]:
    """The shop pipeline, its files source ``returns`` changed as given."""
    spec: dict[str, Any] = yaml.safe_load((CONFIGS / "pipeline.yaml").read_text())
    spec["sources"]["returns"] |= changes
    return spec


def test_every_declared_kind_has_one_registry_object() -> None:
    assert set(SOURCE_KINDS) == declared_kinds()
    assert all(obj.kind == kind for kind, obj in SOURCE_KINDS.items())


def test_the_shop_pipeline_passes_and_each_source_reports_its_resource() -> None:
    pipeline = Pipeline.model_validate(pipeline_with_files_source())
    check_pipeline(pipeline, "pipeline.yaml")
    identities = {
        name: source_kind(source).resource_identity(source)
        for name, source in pipeline.sources.items()
    }
    assert identities == {
        "orders": ("kafka topic", "orders"),
        "clickstream": ("kinesis stream", "clickstream"),
        "customers": ("dynamodb table", "customers"),
        "returns": ("landing place", "s3://shop-landing/returns"),
        "products": ("database table", "shop_db:public.products"),
    }


def test_a_kind_without_an_implementation_is_refused_naming_the_file_and_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every declared kind is implemented today: a build without one is stood in for.
    from connectors import registry

    without_files = {k: v for k, v in SOURCE_KINDS.items() if k != "files"}
    monkeypatch.setattr(registry, "SOURCE_KINDS", without_files)
    pipeline = Pipeline.model_validate(pipeline_with_files_source())
    with pytest.raises(ConfigError) as caught:
        check_pipeline(pipeline, "/configs/pipeline.yaml")
    assert caught.value.exit_code == 2
    assert str(caught.value).startswith("/configs/pipeline.yaml: sources.returns.kind: ")
    with pytest.raises(UsageError):
        source_kind(pipeline.sources["returns"])


def test_config_show_exits_2_with_one_line_for_a_files_source_whose_places_overlap(
    tmp_path: Path,
) -> None:
    config_dir = tmp_path / "configs"
    shutil.copytree(CONFIGS, config_dir)
    spec = pipeline_with_files_source(archive="s3://shop-landing/returns/done")
    (config_dir / "pipeline.yaml").write_text(yaml.safe_dump(spec))
    result = subprocess.run(
        [sys.executable, "-m", "streamlake", "--config", str(config_dir), "config", "show"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("STREAMLAKE")},
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"{config_dir / 'pipeline.yaml'}: sources.returns" in lines[0]
    assert "archive 's3://shop-landing/returns/done' and path" in lines[0]
