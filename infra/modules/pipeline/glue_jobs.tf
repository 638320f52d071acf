# The Glue 6.0 jobs: streaming (ingest, process) and batch (pull, compact, curate, quality,
# catalog, crawl, export). Script s3://<scripts>/glue/<job>.py; the configs under
# s3://<scripts>/configs/; the streamlake wheel and the jars from the scripts bucket.

locals {
  network_connections = [for s in var.private_subnet_ids : aws_glue_connection.network[s].name]
  jdbc_connections    = [for name in keys(var.jdbc_connections) : aws_glue_connection.jdbc[name].name]

  # What Spark needs from the job's configuration (Glue starts Spark, so streamlake cannot
  # set these itself): Delta's extension and catalog, the log store that commits to s3a://
  # tables with S3 conditional writes (several jobs write one table), and UTC clocks in the
  # driver and the executors (JDBC pulls compare timestamps in the JVM's zone).
  spark_conf = [
    "spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog",
    "spark.delta.logStore.s3a.impl=dev.streamlake.delta.S3ConditionalPutLogStore",
    "spark.sql.session.timeZone=UTC",
    "spark.driver.extraJavaOptions=-Duser.timezone=UTC",
    "spark.executor.extraJavaOptions=-Duser.timezone=UTC",
  ]

  # The arguments every job gets; --JOB_NAME (the Glue job's own name, the value Glue passes
  # itself) and --TempDir are added per job.
  job_arguments = merge(
    {
      "--job-language"                     = "python"
      "--env"                              = var.environment
      "--pipeline-config"                  = "s3://${var.scripts_bucket}/${local.configs_prefix}"
      "--additional-python-modules"        = var.wheel_s3_path
      "--enable-metrics"                   = "true"
      "--enable-continuous-cloudwatch-log" = "true"
      "--custom-logGroup-prefix"           = local.glue_log_group
      "--datalake-formats"                 = "delta"
      # Glue takes one --conf; further settings follow inside its value.
      "--conf" = join(" --conf ", local.spark_conf)
    },
    # Glue refuses an empty --extra-jars.
    length(var.extra_jars_s3_paths) > 0 ? { "--extra-jars" = join(",", var.extra_jars_s3_paths) } : {},
  )

  # Jobs that need the VPC: Kafka ingest (MSK brokers) and database pulls. The others reach
  # AWS services directly and get no connection.
  streaming_connections = {
    for name, job in var.streaming_jobs : name => job.source_kind == "kafka" ? local.network_connections : []
  }
  batch_connections = {
    for name, job in var.batch_jobs : name => job.kind == "pull" ? concat(local.jdbc_connections, local.network_connections) : []
  }
}

resource "aws_glue_job" "streaming" {
  for_each = var.streaming_jobs

  name                   = "${local.prefix}-${each.key}"
  description            = "streamlake ${each.value.kind} ${each.value.table} (${var.environment})"
  role_arn               = aws_iam_role.glue_job.arn
  glue_version           = "6.0"
  worker_type            = each.value.worker_type
  number_of_workers      = each.value.workers
  security_configuration = aws_glue_security_configuration.this.name
  connections            = local.streaming_connections[each.key]
  max_retries            = 0

  command {
    name            = "gluestreaming"
    python_version  = "3"
    script_location = "s3://${var.scripts_bucket}/${local.scripts_prefix}${each.key}.py"
  }

  default_arguments = merge(
    local.job_arguments,
    {
      "--JOB_NAME" = "${local.prefix}-${each.key}"
      "--TempDir"  = "s3://${var.scripts_bucket}/${local.glue_temp_prefix}${each.key}/"
    },
    each.value.source_kind == "kafka" ? { "--kafka-bootstrap-servers" = local.msk_bootstrap_brokers } : {},
  )

  execution_property {
    max_concurrent_runs = 1
  }

  tags = {
    "streamlake:job"   = each.key
    "streamlake:kind"  = each.value.kind
    "streamlake:table" = each.value.table
  }
}

resource "aws_glue_job" "batch" {
  for_each = var.batch_jobs

  name                   = "${local.prefix}-${each.key}"
  description            = "streamlake ${each.value.kind}${each.value.table == null ? "" : " ${each.value.table}"} (${var.environment})"
  role_arn               = aws_iam_role.glue_job.arn
  glue_version           = "6.0"
  worker_type            = each.value.worker_type
  number_of_workers      = each.value.workers
  security_configuration = aws_glue_security_configuration.this.name
  connections            = local.batch_connections[each.key]
  timeout                = 120
  max_retries            = 0

  command {
    name            = "glueetl"
    python_version  = "3"
    script_location = "s3://${var.scripts_bucket}/${local.scripts_prefix}${each.key}.py"
  }

  default_arguments = merge(
    local.job_arguments,
    {
      "--JOB_NAME" = "${local.prefix}-${each.key}"
      "--TempDir"  = "s3://${var.scripts_bucket}/${local.glue_temp_prefix}${each.key}/"
    },
  )

  execution_property {
    max_concurrent_runs = 1
  }

  tags = {
    "streamlake:job"   = each.key
    "streamlake:kind"  = each.value.kind
    "streamlake:table" = coalesce(each.value.table, "-")
  }
}
