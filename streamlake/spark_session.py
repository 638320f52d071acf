"""Builds the SparkSession every job uses: Delta, the jars from `.jars/spark`, s3a.

Jars are handed over with ``spark.jars`` and never resolved at run time, so a run needs no
network (as on AWS Glue). Spark is imported only when a session is built.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from streamlake.config.settings import Settings
from streamlake.errors import SetupError
from streamlake.paths import default_spark_jars_dir

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

LOG4J2 = Path(__file__).with_name("spark_log4j2.properties")
REQUIRED_JARS = (
    "delta-spark_",
    "spark-sql-kafka-0-10_",
    "hadoop-aws-",
    "aws-msk-iam-auth-",
    "streamlake-delta-logstore-",
    "postgresql-",
)
# Built from jvm/ by `make setup`: commits to s3a:// tables with S3 conditional writes.
CONDITIONAL_PUT_LOG_STORE = "dev.streamlake.delta.S3ConditionalPutLogStore"


def spark_jars(jars_dir: Path) -> list[Path]:
    jars = sorted(jars_dir.glob("*.jar"))
    names = [jar.name for jar in jars]
    missing = [prefix for prefix in REQUIRED_JARS if not any(n.startswith(prefix) for n in names)]
    if missing:
        raise SetupError(
            f"Spark jars missing from {jars_dir}: {', '.join(p.rstrip('-_') for p in missing)}",
            "run `make setup` (Maven resolves them from pom.xml)",
            path=str(jars_dir),
        )
    return jars


# Settings a running session accepts too, so the ones AWS Glue's session is given as well.
SESSION_DEFAULTS = {
    "spark.sql.session.timeZone": "UTC",
    "spark.databricks.delta.schema.autoMerge.enabled": "false",
    # New tables record their changes, so that curate and export read only what changed
    # since their last run (an append writes no change files: the feed reads the added files).
    "spark.databricks.delta.properties.defaults.enableChangeDataFeed": "true",
}


def spark_conf(settings: Settings, cores: int | None = None) -> dict[str, str]:
    """Every Spark setting streamlake applies, as a plain mapping (pure, testable)."""
    spark = settings.spark
    jars = spark_jars(spark.jars_dir or default_spark_jars_dir())
    partitions = str(spark.shuffle_partitions or cores or os.cpu_count() or 2)
    conf = {
        "spark.jars": ",".join(str(jar) for jar in jars),
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.shuffle.partitions": partitions,
        "spark.default.parallelism": partitions,
        "spark.driver.memory": spark.driver_memory,
        "spark.ui.enabled": str(spark.ui_enabled).lower(),
        **SESSION_DEFAULTS,
        # A larger thread stack: Catalyst recurses deeply on wide parsing plans.
        "spark.driver.extraJavaOptions": (
            f"-Duser.timezone=UTC -Xss16m -Dlog4j2.configurationFile={LOG4J2}"
        ),
        # Executors in UTC too: a JDBC driver takes its session's time zone from its JVM,
        # and a pull's timestamp bound is written in the driver's.
        "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
        "spark.sql.streaming.stateStore.providerClass": (
            "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"
        ),
        # Delta's default of 50 partitions for reading a table's log is sized for clusters.
        "spark.databricks.delta.snapshotPartitions": partitions,
        # File listings (VACUUM's above all) run one task per 10,000 paths by default: 45 s
        # of empty tasks on two cores for a small table.
        "spark.sql.sources.parallelPartitionDiscovery.parallelism": partitions,
        "spark.ui.showConsoleProgress": "false",
    }
    if spark.master.startswith("local"):
        # Local services and the driver listen on loopback only.
        conf["spark.driver.bindAddress"] = "127.0.0.1"
        conf["spark.driver.host"] = "127.0.0.1"
    if settings.local.enabled:
        # Local state is its owner's only. Hadoop's file systems apply their own umask to
        # what Spark writes (lake, checkpoints), not the process's.
        conf["spark.hadoop.fs.permissions.umask-mode"] = "077"
    conf.update(s3a_conf(settings))
    conf.update(spark.conf)
    return conf


def s3a_conf(settings: Settings) -> dict[str, str]:
    """s3a settings: the local S3 endpoint when one is configured, else real S3."""
    aws = settings.aws
    conf = {
        "spark.hadoop.fs.s3a.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        "spark.hadoop.fs.s3a.endpoint.region": aws.region,
    }
    if settings.lake.s3_commits == "conditional-put":
        conf["spark.delta.logStore.s3a.impl"] = CONDITIONAL_PUT_LOG_STORE
    if aws.endpoint_url:
        conf.update(
            {
                "spark.hadoop.fs.s3a.endpoint": aws.endpoint_url,
                "spark.hadoop.fs.s3a.path.style.access": "true",
                "spark.hadoop.fs.s3a.connection.ssl.enabled": str(
                    aws.endpoint_url.startswith("https")
                ).lower(),
                "spark.hadoop.fs.s3a.change.detection.mode": "none",
            }
        )
    if aws.access_key_id and aws.secret_access_key:
        conf.update(
            {
                "spark.hadoop.fs.s3a.aws.credentials.provider": (
                    "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
                ),
                "spark.hadoop.fs.s3a.access.key": aws.access_key_id.get_secret_value(),
                "spark.hadoop.fs.s3a.secret.key": aws.secret_access_key.get_secret_value(),
            }
        )
    return conf


def build_spark_session(settings: Settings, app_name: str | None = None) -> SparkSession:
    """Create (or return the running) SparkSession configured for ``settings``."""
    from pyspark.sql import SparkSession

    if settings.spark.runtime == "glue":
        return glue_spark_session(settings)
    # Both are read when the JVM and the SparkContext start, before any conf applies.
    if settings.spark.master.startswith("local"):
        # Keeps Spark's own services on loopback.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # Python workers (the Kinesis and DynamoDB sources, UDFs) run this interpreter, which has
    # streamlake installed; a cluster sets PYSPARK_PYTHON itself.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.master(settings.spark.master).appName(
        app_name or settings.spark.app_name
    )
    for key, value in {**spark_conf(settings), **submitted_python_path()}.items():
        builder = builder.config(key, value)
    with jvm_stdout_to_stderr():
        session = builder.getOrCreate()
    quiet_query_context_loggers()
    log.info("Spark %s session on %s", session.version, settings.spark.master)
    return session


def submitted_python_path() -> dict[str, str]:
    """Under `spark-submit --py-files`: the files also on the executors' PYTHONPATH, by the
    names Spark gives them in each executor's working folder. Spark hands --py-files to the
    Python workers of UDFs, not to those that read a Python data source (Kinesis, DynamoDB
    Streams), which would not find the project otherwise."""
    if "PYSPARK_GATEWAY_PORT" not in os.environ:
        return {}  # not under spark-submit
    # spark-submit puts them on the driver's PYTHONPATH, ahead of Spark's own archives.
    names = [
        Path(entry).name
        for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep)
        if entry.endswith(SHIPPED_ARCHIVES) and not Path(entry).name.startswith(SPARK_ARCHIVES)
    ]
    return {"spark.executorEnv.PYTHONPATH": os.pathsep.join(names)} if names else {}


SHIPPED_ARCHIVES = (".zip", ".whl", ".egg")
SPARK_ARCHIVES = ("pyspark.zip", "py4j-")


# What a running session accepts of spark_conf: the SQL and Delta settings. The rest (jars,
# master, memory, extensions, the log store) is Glue's job configuration (infra/).
RUNTIME_CONF_PREFIXES = ("spark.sql.", "spark.databricks.delta.")
STATIC_SQL_CONF = ("spark.sql.extensions", "spark.sql.catalog.spark_catalog")


def glue_spark_session(settings: Settings) -> SparkSession:
    """AWS Glue's session (the one difference of a job on Glue), with the runtime settings
    streamlake applies elsewhere."""
    from pyspark.sql import SparkSession

    session = SparkSession.builder.getOrCreate()
    partitions = str(settings.spark.shuffle_partitions or session.sparkContext.defaultParallelism)
    conf = {**SESSION_DEFAULTS, "spark.sql.shuffle.partitions": partitions, **settings.spark.conf}
    for key, value in conf.items():
        if key.startswith(RUNTIME_CONF_PREFIXES) and key not in STATIC_SQL_CONF:
            session.conf.set(key, value)
    log.info("Spark %s session of AWS Glue", session.version)
    return session


@contextmanager
def jvm_stdout_to_stderr() -> Iterator[None]:
    """Point file descriptor 1 at stderr while the JVM starts: it inherits it, so what
    Spark and Delta print (VACUUM prints a line per table) never mixes with a command's
    own output on stdout (``--json`` stays parseable)."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


# PySpark logs every analysis error it raises, with the JVM's stack, on loggers of its own
# that bypass ours; streamlake reports the errors it cares about in one line itself.
QUERY_CONTEXT_LOGGERS = ("SQLQueryContextLogger", "DataFrameQueryContextLogger")


def quiet_query_context_loggers() -> None:
    """Silence PySpark's error-echo loggers unless we log at DEBUG."""
    from pyspark.logger import PySparkLogger

    if logging.getLogger().isEnabledFor(logging.DEBUG):
        return
    for name in QUERY_CONTEXT_LOGGERS:
        PySparkLogger.getLogger(name).setLevel(logging.CRITICAL)


def active_spark_session() -> SparkSession | None:
    """The session this process already runs, if any (without importing Spark otherwise),
    from any thread: the active session is the calling thread's, the default one the
    process's."""
    if "pyspark" not in sys.modules:
        return None
    from pyspark.sql import SparkSession

    return SparkSession.getActiveSession() or SparkSession._instantiatedSession
