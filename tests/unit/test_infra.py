"""infra/ held against the pipeline: the Terraform parses, `deploy render` gives each
environment the variables committed beside it, every stream, topic, table, bucket, queue,
job and workflow of configs/pipeline.yaml reaches a resource, IAM policies name only what
their role needs, alarms notify topics that exist, and checkov finds nothing failed.

No `terraform init` or `validate`: the provider registry is not reachable here, so the
providers' schemas are not checked; `terraform fmt` and checkov read the files alone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest

from connectors.files.arrivals import arrival_queue_name
from streamlake.config import load_config
from streamlake.config.pipeline import DynamoDbSource, KafkaSource, KinesisSource, Pipeline
from streamlake.deploy.render import render
from streamlake.paths import checkout_root

INFRA = checkout_root() / "infra"
MODULE = INFRA / "modules" / "pipeline"
CONFIGS = checkout_root() / "configs"
ENVS = ("dev", "staging", "prod")
CHECKOV = checkout_root() / ".venv-infra" / "bin" / "checkov"

# What each variable of the module is turned into: (resource type, name) -> variable.
RESOURCES_BY_VARIABLE = {
    ("aws_kinesis_stream", "this"): "kinesis_streams",
    ("kafka_topic", "this"): "kafka_topics",
    ("aws_dynamodb_table", "source"): "dynamodb_tables",
    ("aws_s3_bucket", "pipeline"): "buckets",
    ("aws_sns_topic", "this"): "sns_topics",
    ("aws_kinesis_firehose_delivery_stream", "this"): "firehose_streams",
    ("aws_sqs_queue", "landing"): "landing_queues",
    ("aws_glue_catalog_database", "this"): "glue_databases",
    ("aws_glue_connection", "jdbc"): "jdbc_connections",
    ("aws_glue_job", "streaming"): "streaming_jobs",
    ("aws_glue_job", "batch"): "batch_jobs",
    ("aws_glue_workflow", "this"): "workflows",
    ("aws_cloudwatch_metric_alarm", "this"): "alarms",
}
# The only actions AWS takes on no resource narrower than "*": PutMetricData (then limited
# by a cloudwatch:namespace condition) and the EC2 describes Glue's VPC jobs make.
STAR_RESOURCE_ACTIONS = {
    "cloudwatch:PutMetricData",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeRouteTables",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcEndpoints",
    "ec2:DescribeVpcs",
}


def unquoted(value: Any) -> Any:
    """python-hcl2 keeps the quotes of labels and string literals."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    if isinstance(value, list):
        return [unquoted(v) for v in value]
    return value


@cache
def parsed(path: Path) -> dict[str, Any]:
    with path.open() as handle:
        return dict(hcl2.load(handle))


def blocks(kind: str) -> dict[tuple[str, str], dict[str, Any]]:
    """The module's ``resource`` or ``data`` blocks by (type, name)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(MODULE.glob("*.tf")):
        for block in parsed(path).get(kind, []):
            for block_type, named in block.items():
                for name, body in named.items():
                    found[(unquoted(block_type), unquoted(name))] = body
    return found


def local_value(name: str) -> str:
    """The expression a ``locals`` entry of the module is defined by."""
    for path in sorted(MODULE.glob("*.tf")):
        for block in parsed(path).get("locals", []):
            if name in block:
                return str(block[name])
    raise AssertionError(f"local.{name} is not defined")


def statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    """A policy document's statements, those of ``dynamic "statement"`` blocks included."""
    found = list(document.get("statement", []))
    for dynamic in document.get("dynamic", []):
        for label, body in dynamic.items():
            if unquoted(label) == "statement":
                found += body.get("content", [])
    return found


def rendered(env: str) -> tuple[Pipeline, dict[str, Any]]:
    config = load_config(env, CONFIGS, environ={})
    return config.pipeline, render(config.pipeline, config.settings)


def test_every_terraform_file_parses() -> None:
    files = sorted(INFRA.rglob("*.tf"))
    assert len(files) > 10
    for path in files:
        assert isinstance(parsed(path), dict), path


@pytest.mark.parametrize("env", ENVS)
def test_the_committed_variables_are_what_deploy_render_gives(env: str) -> None:
    _pipeline, variables = rendered(env)
    committed = json.loads((INFRA / "envs" / env / "pipeline.auto.tfvars.json").read_text())
    assert committed == variables, f"run `streamlake --env {env} deploy render`"


def test_every_variable_the_renderer_gives_is_declared_by_the_module_and_its_env() -> None:
    _pipeline, variables = rendered("dev")
    for variables_file in (MODULE / "variables.tf", INFRA / "envs" / "dev" / "variables.tf"):
        declared = {
            unquoted(name) for block in parsed(variables_file)["variable"] for name in block
        }
        assert set(variables) <= declared, variables_file


def test_every_source_job_bucket_queue_and_workflow_of_the_pipeline_has_its_resource() -> None:
    pipeline, variables = rendered("dev")
    resources = blocks("resource")
    for (kind, name), variable in RESOURCES_BY_VARIABLE.items():
        body = resources.get((kind, name))
        assert body is not None, f"{kind}.{name} is missing"
        assert variable in str(body["for_each"]), f"{kind}.{name} is not one per {variable}"
    sources = pipeline.sources.values()
    streams = {s.stream for s in sources if isinstance(s, KinesisSource)}
    topics = {s.topic for s in sources if isinstance(s, KafkaSource)}
    tables = {s.table for s in sources if isinstance(s, DynamoDbSource)}
    assert set(variables["kinesis_streams"]) == streams == {"clickstream"}
    assert set(variables["kafka_topics"]) == topics == {"orders"}
    assert set(variables["dynamodb_tables"]) == tables == {"customers"}
    assert set(variables["buckets"]) == set(pipeline.buckets)
    assert set(variables["sns_topics"]) == {t.name for t in pipeline.sns_topics}
    assert set(variables["firehose_streams"]) == {f.name for f in pipeline.firehose}
    arrivals = {w.on_arrival for w in pipeline.workflows.values() if w.on_arrival}
    assert set(variables["landing_queues"]) == {
        arrival_queue_name(pipeline.name, source) for source in arrivals
    }
    jobs = {name for name, job in pipeline.jobs.items() if job.mode != "inline"}
    assert set(variables["streaming_jobs"]) | set(variables["batch_jobs"]) == jobs
    assert set(variables["workflows"]) == set(pipeline.workflows)
    assert {"shop_raw", "shop_processed", "shop_quarantine", "shop_curated"} <= set(
        variables["glue_databases"]
    )
    assert set(variables["jdbc_connections"]) == {"shop_db"}
    nightly = variables["workflows"]["nightly"]
    assert nightly["schedule"] == "cron(0 2 * * ? *)"
    assert [(n["job"], n["conditions"]) for n in nightly["nodes"]][:2] == [
        ("compact", []),
        ("curate", [{"job": "compact", "state": "SUCCEEDED"}]),
    ]
    assert variables["workflows"]["returns-arrived"]["on_arrival"] == "shop-returns-arrivals"


def test_iam_policies_name_only_what_their_role_needs() -> None:
    roles = ("glue_job", "firehose", "events_to_glue")
    documents = {
        name: body
        for (kind, name), body in blocks("data").items()
        if kind == "aws_iam_policy_document" and name in roles
    }
    assert set(documents) == set(roles)
    for name, document in documents.items():
        for statement in statements(document):
            if unquoted(statement.get("effect", "Allow")) == "Deny":
                continue
            actions = set(unquoted(statement.get("actions", [])))
            resources = unquoted(statement.get("resources", []))
            where = f"{name}: {unquoted(statement.get('sid'))}"
            assert actions, where
            assert not any(a == "*" or a.endswith(":*") for a in actions), where
            if resources == ["*"]:
                assert actions <= STAR_RESOURCE_ACTIONS, where
            if "cloudwatch:PutMetricData" in actions:
                assert statement.get("condition"), f"{where}: PutMetricData without namespace"
    by_sid = {
        unquoted(s.get("sid")): s
        for name, document in documents.items()
        for s in statements(document)
        if name == "glue_job"
    }
    assert "local.secret_arns" in str(by_sid["JdbcSecrets"]["resources"])
    assert "var.jdbc_connections" in local_value("secret_arns")
    assert ":secretsmanager:" in local_value("secret_arns")
    assert "kinesis" in str(by_sid["ReadKinesisStreams"]["resources"]).lower()
    on_s3 = [s for s in statements(documents["firehose"]) if "s3:" in str(s.get("actions", []))]
    assert on_s3 and all("each.value.bucket" in str(s["resources"]) for s in on_s3)


def test_glue_jobs_get_delta_the_conditional_put_log_store_and_utc_clocks() -> None:
    conf = local_value("spark_conf")
    for setting in (
        "spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension",
        "spark.delta.logStore.s3a.impl=dev.streamlake.delta.S3ConditionalPutLogStore",
        "spark.executor.extraJavaOptions=-Duser.timezone=UTC",
    ):
        assert setting in conf, setting
    arguments = local_value("job_arguments")
    assert "--conf" in arguments and "local.spark_conf" in arguments
    assert "--datalake-formats" in arguments


@pytest.mark.parametrize("env", ENVS)
def test_every_alarm_notifies_a_topic_the_deployment_creates(env: str) -> None:
    _pipeline, variables = rendered(env)
    assert variables["alarms"]
    assert {a["topic"] for a in variables["alarms"].values()} <= set(variables["sns_topics"])
    alarm = blocks("resource")[("aws_cloudwatch_metric_alarm", "this")]
    assert "aws_sns_topic.this[each.value.topic]" in str(alarm["alarm_actions"])


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed")
def test_terraform_fmt_finds_nothing_to_change() -> None:
    result = subprocess.run(
        ["terraform", "fmt", "-check", "-recursive", "-diff", str(INFRA)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_checkov_finds_no_failed_check_and_every_skip_says_why() -> None:
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV} is missing: `make test` installs checkov there")
    result = subprocess.run(
        [str(CHECKOV), "-d", str(INFRA), "--framework", "terraform", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    reports = json.loads(result.stdout)
    for report in reports if isinstance(reports, list) else [reports]:
        checks = report["results"]
        failed = [f"{c['check_id']} {c['resource']}" for c in checks["failed_checks"]]
        assert failed == [], failed
        assert report["summary"]["parsing_errors"] == 0
        for skipped in checks["skipped_checks"]:
            reason = (skipped.get("check_result") or {}).get("suppress_comment", "")
            assert len(reason) > 10, f"{skipped['check_id']} on {skipped['resource']}: no reason"


def deploy_render(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "streamlake", "--config", str(CONFIGS), *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLAKE")}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)


def test_deploy_render_writes_the_variables_and_refuses_the_local_environment(
    tmp_path: Path,
) -> None:
    out = tmp_path / "vars.json"
    result = deploy_render("--env", "staging", "deploy", "render", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text()) == rendered("staging")[1]
    assert "9 streaming jobs, 7 batch jobs, 3 workflows" in result.stdout
    local = deploy_render("--env", "local", "deploy", "render", "--out", str(out))
    assert local.returncode == 2
    assert "environment 'local' runs on the local stack; nothing to deploy" in local.stderr
