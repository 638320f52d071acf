"""`streamlake deploy render`: the pipeline and one environment's settings as the variables
of infra/'s ``pipeline`` module (``infra/envs/<env>/pipeline.auto.tfvars.json``), so that a
table, source, job or workflow added to ``configs/pipeline.yaml`` gets its AWS resources."""

from __future__ import annotations

from typing import Any

from connectors.files.arrivals import arrival_queue_name
from connectors.files.landing import s3_parts
from connectors.jdbc.endpoint import PASSWORD_IN_URL
from streamlake import __version__
from streamlake.config.pipeline import (
    STREAMING_JOB_KINDS,
    DynamoDbSource,
    FilesSource,
    JdbcSource,
    KafkaSource,
    KinesisSource,
    Pipeline,
    Workflow,
)
from streamlake.config.settings import Settings
from streamlake.errors import UsageError
from streamlake.lake.tables import LAYERS

# Jars the jobs need that Glue 6.0 does not ship (it has Delta and the Kafka connector),
# uploaded by `deploy package` to s3://<scripts_bucket>/jars/.
GLUE_EXTRA_JARS = (
    "streamlake-delta-logstore-0.1.0.jar",
    "aws-msk-iam-auth-2.3.2.jar",
    "postgresql-42.7.14.jar",
)
# A workflow condition as the state Glue's conditional trigger waits for.
GLUE_STATES = {"on_success": "SUCCEEDED", "on_failure": "FAILED", "on_completion": "ANY"}
ALARM_PERIOD_S = 300
# The source lag alarm of a Kinesis or DynamoDB Streams ingest job when the pipeline's
# notifications set no source_lag_seconds.
DEFAULT_LAG_SECONDS = 300.0


def render(pipeline: Pipeline, settings: Settings) -> dict[str, Any]:
    """The module's variables for ``settings.env``; a UsageError names what the environment
    file lacks to deploy (a lake on S3, the scripts bucket, a connection's URL)."""
    deploy = settings.deploy
    if settings.local.enabled:
        raise UsageError(
            f"environment {settings.env!r} runs on the local stack; nothing to deploy",
            "render an AWS environment: --env dev, staging or prod",
        )
    lake = s3_parts(settings.lake.root)
    if lake is None:
        raise UsageError(
            f"lake.root {settings.lake.root!r} is not on S3", "deploy a lake at s3://bucket/..."
        )
    if deploy.scripts_bucket is None:
        raise UsageError(
            "deploy.scripts_bucket is not set",
            f"name the bucket for the Glue scripts in configs/{settings.env}.yaml",
        )
    scripts = deploy.scripts_bucket
    return {
        "pipeline_name": pipeline.name,
        "environment": settings.env,
        "region": settings.aws.region,
        "lake_bucket": lake[0],
        "scripts_bucket": scripts,
        "buckets": list(pipeline.buckets),
        **source_resources(pipeline, settings),
        "sns_topics": [topic.name for topic in pipeline.sns_topics],
        "firehose_streams": {
            f.name: {"bucket": f.bucket, "prefix": f.prefix} for f in pipeline.firehose
        },
        "landing_queues": landing_queues(pipeline),
        "glue_databases": glue_databases(pipeline),
        "jdbc_connections": jdbc_connections(pipeline, settings),
        **glue_jobs(pipeline, settings),
        "wheel_s3_path": f"s3://{scripts}/dist/streamlake-{__version__}-py3-none-any.whl",
        "extra_jars_s3_paths": [f"s3://{scripts}/jars/{jar}" for jar in GLUE_EXTRA_JARS],
        "workflows": {
            name: glue_workflow(pipeline, workflow) for name, workflow in pipeline.workflows.items()
        },
        "alarms": alarms(pipeline),
        "metrics_namespace": pipeline.metrics.namespace or "",
    }


def source_resources(pipeline: Pipeline, settings: Settings) -> dict[str, Any]:
    sources = pipeline.sources.values()
    return {
        "kinesis_streams": {
            s.stream: {"shards": s.shards} for s in sources if isinstance(s, KinesisSource)
        },
        "kafka_topics": {
            s.topic: {
                "partitions": s.partitions,
                "replication_factor": max(
                    s.replication_factor, settings.deploy.kafka_replication_factor
                ),
            }
            for s in sources
            if isinstance(s, KafkaSource)
        },
        "dynamodb_tables": {
            s.table: {
                "hash_key": s.hash_key,
                "hash_key_type": s.hash_key_type,
                "range_key": s.range_key,
                "range_key_type": s.range_key_type,
                "stream_view": s.stream_view,
            }
            for s in sources
            if isinstance(s, DynamoDbSource)
        },
    }


def landing_queues(pipeline: Pipeline) -> dict[str, dict[str, str]]:
    """The queue of each files source a workflow starts on, with what it hears of."""
    queues: dict[str, dict[str, str]] = {}
    for workflow in pipeline.workflows.values():
        source = pipeline.sources.get(workflow.on_arrival or "")
        if not isinstance(source, FilesSource):
            continue
        place = s3_parts(source.path)
        if place is None:
            raise UsageError(
                f"source {workflow.on_arrival!r} lands files in a local folder ({source.path})",
                "a deployed files source lands them on S3",
            )
        name = arrival_queue_name(pipeline.name, workflow.on_arrival or "")
        queues[name] = {"bucket": place[0], "prefix": place[1]}
    return queues


def glue_databases(pipeline: Pipeline) -> list[str]:
    names = [pipeline.glue_database(layer) for layer in LAYERS]
    names += [pipeline.crawler_database(c) for c in pipeline.crawlers]
    return list(dict.fromkeys(names))


def jdbc_connections(pipeline: Pipeline, settings: Settings) -> dict[str, dict[str, str]]:
    used = sorted({s.connection for s in pipeline.sources.values() if isinstance(s, JdbcSource)})
    found: dict[str, dict[str, str]] = {}
    for name in used:
        connection = settings.jdbc.get(name)
        if connection is None or connection.url is None:
            raise UsageError(
                f"jdbc connection {name!r} has no url in environment {settings.env!r}",
                f"set jdbc.{name}.url in configs/{settings.env}.yaml, or "
                f"STREAMLAKE__JDBC__{name.upper()}__URL",
            )
        if PASSWORD_IN_URL.search(connection.url):
            raise UsageError(
                f"jdbc connection {name!r} has a password in its url",
                "a deployed connection reads its credentials from its Secrets Manager secret",
            )
        if connection.secret is None:
            raise UsageError(
                f"jdbc connection {name!r} takes its password from the environment",
                "a deployed connection reads its credentials from a Secrets Manager secret",
            )
        found[name] = {"url": connection.url, "secret": connection.secret}
    return found


def glue_jobs(pipeline: Pipeline, settings: Settings) -> dict[str, Any]:
    """Streaming jobs (Glue streaming) and batch jobs (Glue ETL); an inline process job runs
    inside its ingest job, so it is not a job of its own."""
    size = {"workers": settings.deploy.workers, "worker_type": settings.deploy.worker_type}
    streaming: dict[str, Any] = {}
    batch: dict[str, Any] = {}
    for name, job in pipeline.jobs.items():
        if job.mode == "inline":
            continue
        if job.kind not in STREAMING_JOB_KINDS:
            batch[name] = {"kind": job.kind, "table": job.table, **size}
            continue
        assert job.table is not None  # streaming jobs name their table
        source = pipeline.sources[pipeline.tables[job.table].source]
        named = source_name(source) if job.kind == "ingest" else ""
        streaming[name] = {
            "kind": job.kind,
            "table": job.table,
            "source_kind": source.kind if job.kind == "ingest" else "",
            "source": named,
            **size,
        }
    return {"streaming_jobs": streaming, "batch_jobs": batch}


def source_name(source: Any) -> str:
    """The topic, stream or table an ingest job reads ("" for landing files)."""
    if isinstance(source, KafkaSource):
        return source.topic
    if isinstance(source, KinesisSource):
        return source.stream
    if isinstance(source, DynamoDbSource):
        return source.table
    return ""


def glue_workflow(pipeline: Pipeline, workflow: Workflow) -> dict[str, Any]:
    graph = workflow.graph()
    return {
        "schedule": workflow.schedule,
        "on_arrival": (
            arrival_queue_name(pipeline.name, workflow.on_arrival) if workflow.on_arrival else None
        ),
        "nodes": [
            {
                "job": job,
                "conditions": [
                    {"job": upstream, "state": GLUE_STATES[condition]}
                    for condition, upstream in graph[job].conditions()
                ],
            }
            for job in workflow.order()
        ],
    }


def alarm(
    metric: str, namespace: str, dimensions: dict[str, str], threshold: float, topic: str
) -> dict[str, Any]:
    failed = metric == "JobFailed"
    return {
        "metric": metric,
        "namespace": namespace,
        "dimensions": dimensions,
        "statistic": "Maximum",
        "threshold": threshold,
        "comparison": "GreaterThanOrEqualToThreshold" if failed else "GreaterThanThreshold",
        "period": ALARM_PERIOD_S,
        "evaluation_periods": 1 if failed else 2,
        "topic": topic,
    }


def alarms(pipeline: Pipeline) -> dict[str, Any]:
    """Source lag of each ingest job, failures of each batch job, the quarantine ratio of
    each process job, on the notifications topic; none unless it is one the deployment
    creates (a topic given by ARN is someone else's) and the metrics go to CloudWatch."""
    topic, namespace = pipeline.notifications.topic, pipeline.metrics.namespace
    if topic not in {t.name for t in pipeline.sns_topics} or namespace is None:
        return {}
    assert topic is not None
    notes = pipeline.notifications
    found: dict[str, Any] = {}
    for name, job in pipeline.jobs.items():
        table = job.table or ""
        dimensions = {"job": name, "table": table}
        if job.kind == "ingest":
            kind = pipeline.sources[pipeline.tables[table].source].kind
            if kind == "kafka" and notes.source_lag_records is not None:
                found[f"{name}-source-lag"] = alarm(
                    "SourceLag", namespace, dimensions, notes.source_lag_records, topic
                )
            elif kind in ("kinesis", "dynamodb"):
                seconds = notes.source_lag_seconds or DEFAULT_LAG_SECONDS
                found[f"{name}-source-lag"] = alarm(
                    "SourceLagAge", namespace, dimensions, seconds, topic
                )
        elif job.kind == "process":
            found[f"{name}-quarantine-ratio"] = alarm(
                "QuarantineRatio", namespace, dimensions, notes.quarantine_ratio, topic
            )
        else:
            found[f"{name}-failed"] = alarm("JobFailed", namespace, {"job": name}, 1, topic)
    return found
