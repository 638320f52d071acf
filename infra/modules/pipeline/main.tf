data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  # <pipeline>-<env>: the prefix of every name the pipeline's own configuration does not fix.
  prefix     = "${var.pipeline_name}-${var.environment}"
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  # Where the jobs keep their tables and checkpoints (configs/<env>.yaml lake.root and
  # lake.checkpoint_root).
  lake_root_prefix       = "${var.pipeline_name}/"
  checkpoint_root_prefix = "_checkpoints/${var.pipeline_name}/"

  # Glue job arguments and scripts.
  scripts_prefix    = "glue/"
  configs_prefix    = "configs/"
  glue_temp_prefix  = "temp/"
  glue_log_group    = "/aws-glue/${local.prefix}"
  log_retention     = 365
  kinesis_retention = 168

  # The Delta log-store lock table (tablePath, fileName, expireTime).
  delta_log_table = "${local.prefix}-delta-log"

  # ARNs named from the variables.
  logs_arn_prefix = "arn:${local.partition}:logs:${var.region}:${local.account_id}:log-group"
  glue_arn_prefix = "arn:${local.partition}:glue:${var.region}:${local.account_id}"
  secret_arns = {
    for name, c in var.jdbc_connections :
    name => "arn:${local.partition}:secretsmanager:${var.region}:${local.account_id}:secret:${c.secret}-??????"
  }
  s3_object_arn = { for uri in concat([var.wheel_s3_path], var.extra_jars_s3_paths) : uri => "arn:${local.partition}:s3:::${trimprefix(uri, "s3://")}" }

  # Every bucket the pipeline owns, by its name.
  pipeline_bucket_arns = { for b in var.buckets : b => "arn:${local.partition}:s3:::${b}" }
}
