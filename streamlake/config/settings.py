"""Per-environment settings: endpoints, lake and checkpoint roots, Spark, local services."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from streamlake.errors import ConfigError
from streamlake.faults import FaultPointName, Faults


class StrictModel(BaseModel):
    """Base for config models: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class LakeSettings(StrictModel):
    root: str = ".streamlake/lake"
    checkpoint_root: str = ".streamlake/checkpoints"
    # How Delta commits to tables on s3a://. "conditional-put": S3 refuses a second commit
    # of one version (If-None-Match), so several drivers may write one table (the process
    # jobs share the metrics table). "single-driver": Delta's own S3 log store, safe only
    # when every writer of a table runs in one driver (for stores without conditional
    # writes).
    s3_commits: Literal["conditional-put", "single-driver"] = "conditional-put"

    def table_path(self, layer: str, table: str) -> str:
        return f"{self.root.rstrip('/')}/{layer}/{table}"

    def checkpoint_path(self, job: str) -> str:
        return f"{self.checkpoint_root.rstrip('/')}/{job}"

    def meta_path(self, name: str) -> str:
        """Where the pipeline's own state table ``name`` lives (batch metrics, ...)."""
        return self.table_path("_meta", name)


class SparkSettings(StrictModel):
    master: str = "local[*]"
    app_name: str = "streamlake"
    driver_memory: str = "2g"
    # None sizes shuffles to the cores Spark gets; a few partitions per core is right for
    # the small micro-batches of streaming jobs.
    shuffle_partitions: int | None = Field(default=None, ge=1)
    ui_enabled: bool = True
    # None means the checkout's `.jars/spark`, filled by `make setup`.
    jars_dir: Path | None = None
    conf: dict[str, str] = Field(default_factory=dict)
    # Who starts Spark: streamlake (master, jars from jars_dir, every setting), or AWS Glue,
    # whose running session is taken as it is (its jars come from --extra-jars, Delta from
    # --datalake-formats) with only the settings a running session accepts.
    runtime: Literal["streamlake", "glue"] = "streamlake"


class KafkaSettings(StrictModel):
    # None in the local environment: derived from the local broker's port.
    bootstrap_servers: str | None = None
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "AWS_MSK_IAM"] | None = None
    # Extra client properties passed through to Spark's Kafka source as `kafka.<key>`.
    options: dict[str, str] = Field(default_factory=dict)


class AwsSettings(StrictModel):
    region: str = "us-east-1"
    # None means the real AWS endpoints; the local environment derives the local server.
    endpoint_url: str | None = None
    # Only for the local API server, whose placeholder credentials are not secrets. Real
    # credentials come from the default chain (environment, profile, instance role).
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None


class SchemaRegistrySettings(StrictModel):
    # The Confluent-compatible registry of Avro tables with `registry: confluent`. Tables on
    # the Glue Schema Registry reach it through the `aws` settings instead.
    url: str | None = None
    timeout_s: float = Field(default=10.0, gt=0)


class MetricsSettings(StrictModel):
    # While a job runs, its metrics are served for Prometheus at
    # http://127.0.0.1:<port>/metrics; 0 takes a free port (logged), null serves none.
    prometheus_port: int | None = Field(default=None, ge=0, le=65535)
    # How often a running job writes its heartbeat to _meta/job_status (streamlake status
    # takes a job silent for three of these for lost).
    heartbeat_s: float = Field(default=15.0, gt=0)


class JdbcConnection(StrictModel):
    """A database that jdbc sources pull from. Credentials come from ``secret`` (an AWS
    Secrets Manager secret id whose JSON has ``username`` and ``password``, as RDS writes
    them), read when a pull starts, or from ``username`` and ``password`` (give these as
    ``${env:NAME}``: never commit a password)."""

    # jdbc:postgresql://host:port/database. None in the local environment: the local
    # PostgreSQL of `local up`, database ``database``.
    url: str | None = Field(default=None, pattern=r"^jdbc:[a-z0-9]+:")
    database: str = Field(default="postgres", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    secret: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    # Driver properties (sslmode, connectTimeout, ...), passed to the JDBC driver as given.
    properties: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _has_credentials(self) -> JdbcConnection:
        given = self.username is not None and self.password is not None
        if self.secret is None and not given:
            raise ValueError("needs secret (a Secrets Manager id) or username and password")
        if self.secret is not None and (self.username is not None or self.password is not None):
            raise ValueError("takes secret or username and password, not both")
        return self


class LocalStackSettings(StrictModel):
    enabled: bool = False
    host: Literal["127.0.0.1"] = "127.0.0.1"
    state_dir: Path = Path(".streamlake")
    kafka_port: int = Field(default=19092, ge=1, le=65535)
    kafka_controller_port: int = Field(default=19093, ge=1, le=65535)
    # The local broker's SASL_PLAINTEXT listener (PLAIN, user streamlake); null: none.
    kafka_sasl_port: int | None = Field(default=19094, ge=1, le=65535)
    aws_port: int = Field(default=15000, ge=1, le=65535)
    # The local PostgreSQL that jdbc sources of local connections pull from (started by
    # `local up` when the pipeline has a jdbc source).
    postgres_port: int = Field(default=15432, ge=1, le=65535)
    kafka_heap: str = "512m"
    # How `local up` runs the broker: the jars of `.jars/kafka` in a JVM of its own, or
    # Apache Kafka's image in a container (needs a Docker engine; no SASL listener).
    kafka_runtime: Literal["jar", "testcontainers"] = "jar"
    # None means the checkout's `.jars/kafka`, filled by `make setup`.
    kafka_jars_dir: Path | None = None
    start_timeout_s: float = Field(default=90.0, gt=0)


class DeploySettings(StrictModel):
    """What `streamlake deploy render` needs beyond the pipeline to size the AWS
    deployment: where the Glue scripts, wheel and jars go, and the jobs' workers."""

    # The bucket the Glue job scripts, the wheel, the extra jars and the configs go to.
    scripts_bucket: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    worker_type: Literal["G.1X", "G.2X", "G.4X", "G.8X", "G.025X"] = "G.1X"
    workers: int = Field(default=2, ge=2)
    # MSK topics' replication (a pipeline's topic asking for more gets more).
    kafka_replication_factor: int = Field(default=3, ge=1)


class Settings(StrictModel):
    env: str = "local"
    lake: LakeSettings = LakeSettings()
    spark: SparkSettings = SparkSettings()
    kafka: KafkaSettings = KafkaSettings()
    aws: AwsSettings = AwsSettings()
    schema_registry: SchemaRegistrySettings = SchemaRegistrySettings()
    metrics: MetricsSettings = MetricsSettings()
    local: LocalStackSettings = LocalStackSettings()
    # Databases of jdbc sources, by the name a source's ``connection`` gives.
    jdbc: dict[str, JdbcConnection] = Field(default_factory=dict)
    deploy: DeploySettings = DeploySettings()
    # Crash tests only: the job kills itself at this point (see streamlake.faults).
    fault_point: FaultPointName | None = None

    @property
    def faults(self) -> Faults:
        return Faults(self.fault_point)

    @model_validator(mode="after")
    def _derive_local_endpoints(self) -> Settings:
        if not self.local.enabled:
            # Not required here: a deployment's brokers may not exist yet when its variables
            # are rendered, and a pipeline without Kafka needs none (see bootstrap_servers).
            return self
        kafka = self.kafka
        if kafka.bootstrap_servers is None:
            kafka = kafka.model_copy(
                update={"bootstrap_servers": f"{self.local.host}:{self.local.kafka_port}"}
            )
        aws = self.aws
        if aws.endpoint_url is None:
            aws = aws.model_copy(
                update={"endpoint_url": f"http://{self.local.host}:{self.local.aws_port}"}
            )
        jdbc = {
            name: connection
            if connection.url is not None
            else connection.model_copy(update={"url": self.local_jdbc_url(connection.database)})
            for name, connection in self.jdbc.items()
        }
        object.__setattr__(self, "kafka", kafka)
        object.__setattr__(self, "aws", aws)
        object.__setattr__(self, "jdbc", jdbc)
        return self

    def local_jdbc_url(self, database: str) -> str:
        return f"jdbc:postgresql://{self.local.host}:{self.local.postgres_port}/{database}"

    def local_jdbc_connections(self) -> dict[str, JdbcConnection]:
        """The connections that reach the local PostgreSQL."""
        return {
            name: connection
            for name, connection in self.jdbc.items()
            if self.local.enabled and connection.url == self.local_jdbc_url(connection.database)
        }

    @property
    def bootstrap_servers(self) -> str:
        """The brokers; a ConfigError when the environment names none (outside the local
        stack, which derives them)."""
        return require_bootstrap(self.kafka, self.env)


def require_bootstrap(kafka: KafkaSettings, env: str = "") -> str:
    if kafka.bootstrap_servers is None:
        raise ConfigError(
            "required to reach Kafka when local.enabled is false",
            "set it in the environment file or in STREAMLAKE__KAFKA__BOOTSTRAP_SERVERS",
            source=f"configs/{env}.yaml" if env else "the environment file",
            key="kafka.bootstrap_servers",
        )
    return kafka.bootstrap_servers
