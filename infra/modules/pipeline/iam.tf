# Roles, each with the actions its service needs on the resources named here and nothing
# else: the Glue job role, one Firehose role per delivery stream, and the role EventBridge
# uses to start on-arrival workflows.

locals {
  lake_arn    = "arn:${local.partition}:s3:::${var.lake_bucket}"
  scripts_arn = "arn:${local.partition}:s3:::${var.scripts_bucket}"
  vpc_arn     = "arn:${local.partition}:ec2:${var.region}:${local.account_id}:vpc/${var.vpc_id}"
  eni_arn     = "arn:${local.partition}:ec2:${var.region}:${local.account_id}:network-interface/*"
  subnet_arns = [for s in var.private_subnet_ids : "arn:${local.partition}:ec2:${var.region}:${local.account_id}:subnet/${s}"]

  glue_catalog_arn  = "${local.glue_arn_prefix}:catalog"
  glue_database_arn = [for d in var.glue_databases : "${local.glue_arn_prefix}:database/${d}"]
  glue_table_arn    = [for d in var.glue_databases : "${local.glue_arn_prefix}:table/${d}/*"]
  glue_connection_arn = concat(
    [for c in values(aws_glue_connection.network) : "${local.glue_arn_prefix}:connection/${c.name}"],
    [for c in values(aws_glue_connection.jdbc) : "${local.glue_arn_prefix}:connection/${c.name}"],
  )
}

# --- Glue jobs -------------------------------------------------------------------------------

data "aws_iam_policy_document" "glue_job_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["glue.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "glue_job" {
  name               = "${local.prefix}-glue-job"
  description        = "streamlake ${local.prefix}: the Glue jobs"
  assume_role_policy = data.aws_iam_policy_document.glue_job_assume.json
}

data "aws_iam_policy_document" "glue_job" {
  # Scripts, configs, the wheel and the jars: read only.
  statement {
    sid     = "ReadScriptsWheelJarsConfigs"
    actions = ["s3:GetObject"]
    resources = concat(
      ["${local.scripts_arn}/${local.scripts_prefix}*", "${local.scripts_arn}/${local.configs_prefix}*"],
      values(local.s3_object_arn),
    )
  }

  statement {
    sid       = "GlueTempDir"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = ["${local.scripts_arn}/${local.glue_temp_prefix}*"]
  }

  statement {
    sid       = "ListBuckets"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = concat([local.lake_arn, local.scripts_arn], values(local.pipeline_bucket_arns))
  }

  # The lake: the pipeline's tables and its jobs' checkpoints.
  statement {
    sid     = "LakeTablesAndCheckpoints"
    actions = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = [
      "${local.lake_arn}/${local.lake_root_prefix}*",
      "${local.lake_arn}/${local.checkpoint_root_prefix}*",
    ]
  }

  # The pipeline's buckets: landing files are read, moved to archive/ or errors/ (copy and
  # delete); delivered files are read by the crawler. Their layout is the pipeline
  # configuration's, so the whole bucket.
  dynamic "statement" {
    for_each = length(var.buckets) > 0 ? [1] : []

    content {
      sid       = "PipelineBuckets"
      actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
      resources = [for arn in values(local.pipeline_bucket_arns) : "${arn}/*"]
    }
  }

  statement {
    sid       = "PipelineKey"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [aws_kms_key.this.arn]
  }

  dynamic "statement" {
    for_each = length(var.kinesis_streams) > 0 ? [1] : []

    content {
      sid = "ReadKinesisStreams"
      actions = [
        "kinesis:DescribeStream",
        "kinesis:DescribeStreamSummary",
        "kinesis:GetRecords",
        "kinesis:GetShardIterator",
        "kinesis:ListShards",
      ]
      resources = [for s in values(aws_kinesis_stream.this) : s.arn]
    }
  }

  dynamic "statement" {
    for_each = length(var.dynamodb_tables) > 0 ? [1] : []

    content {
      sid       = "DescribeSourceTables"
      actions   = ["dynamodb:DescribeTable"]
      resources = [for t in values(aws_dynamodb_table.source) : t.arn]
    }
  }

  dynamic "statement" {
    for_each = length(var.dynamodb_tables) > 0 ? [1] : []

    content {
      sid       = "ReadSourceTableStreams"
      actions   = ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"]
      resources = [for t in values(aws_dynamodb_table.source) : t.stream_arn]
    }
  }

  statement {
    sid = "DeltaLogStoreTable"
    actions = [
      "dynamodb:DescribeTable",
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
      "dynamodb:DeleteItem",
      "dynamodb:Query",
    ]
    resources = [aws_dynamodb_table.delta_log.arn]
  }

  statement {
    sid       = "ConnectToMsk"
    actions   = ["kafka-cluster:Connect", "kafka-cluster:DescribeCluster"]
    resources = [local.msk_cluster_arn]
  }

  dynamic "statement" {
    for_each = length(var.kafka_topics) > 0 ? [1] : []

    content {
      sid = "ReadKafkaTopics"
      actions = [
        "kafka-cluster:DescribeTopic",
        "kafka-cluster:DescribeTopicDynamicConfiguration",
        "kafka-cluster:ReadData",
      ]
      resources = [for t in keys(var.kafka_topics) : "${local.msk_topic_arn_prefix}/${t}"]
    }
  }

  # Spark's Kafka source names its consumer groups itself (spark-kafka-source-<uuid>...).
  statement {
    sid       = "KafkaConsumerGroups"
    actions   = ["kafka-cluster:AlterGroup", "kafka-cluster:DescribeGroup"]
    resources = ["${local.msk_group_arn_prefix}/spark-kafka-source-*"]
  }

  # The catalog and crawl jobs register tables in the pipeline's databases.
  dynamic "statement" {
    for_each = length(var.glue_databases) > 0 ? [1] : []

    content {
      sid = "GlueCatalog"
      actions = [
        "glue:GetDatabase",
        "glue:CreateDatabase",
        "glue:GetTable",
        "glue:GetTables",
        "glue:CreateTable",
        "glue:UpdateTable",
        "glue:GetPartition",
        "glue:GetPartitions",
        "glue:BatchGetPartition",
        "glue:BatchCreatePartition",
        "glue:BatchUpdatePartition",
        "glue:BatchDeletePartition",
      ]
      resources = concat([local.glue_catalog_arn], local.glue_database_arn, local.glue_table_arn)
    }
  }

  statement {
    sid       = "GlueConnections"
    actions   = ["glue:GetConnection"]
    resources = concat([local.glue_catalog_arn], local.glue_connection_arn)
  }

  dynamic "statement" {
    for_each = length(var.workflows) > 0 ? [1] : []

    content {
      sid       = "WorkflowRunProperties"
      actions   = ["glue:GetWorkflowRunProperties"]
      resources = [for w in values(aws_glue_workflow.this) : w.arn]
    }
  }

  dynamic "statement" {
    for_each = length(var.jdbc_connections) > 0 ? [1] : []

    content {
      sid       = "JdbcSecrets"
      actions   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
      resources = values(local.secret_arns)
    }
  }

  dynamic "statement" {
    for_each = length(var.sns_topics) > 0 ? [1] : []

    content {
      sid       = "PublishNotifications"
      actions   = ["sns:Publish"]
      resources = [for t in values(aws_sns_topic.this) : t.arn]
    }
  }

  dynamic "statement" {
    for_each = length(var.firehose_streams) > 0 ? [1] : []

    content {
      sid       = "ExportToFirehose"
      actions   = ["firehose:PutRecord", "firehose:PutRecordBatch", "firehose:DescribeDeliveryStream"]
      resources = [for f in values(aws_kinesis_firehose_delivery_stream.this) : f.arn]
    }
  }

  # cloudwatch:PutMetricData has no resource-level permissions: AWS accepts only "*". It is
  # limited to the pipeline's namespace and Glue's own (--enable-metrics) by a condition.
  statement {
    sid       = "PutMetrics"
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"]

    condition {
      test     = "StringEquals"
      variable = "cloudwatch:namespace"
      values   = [var.metrics_namespace, "Glue"]
    }
  }

  # Glue writes the jobs' logs to log groups under /aws-glue/ (ours: <prefix>/output and
  # /error; with the security configuration, encrypted with the key).
  statement {
    sid = "GlueLogs"
    actions = [
      "logs:CreateLogGroup",
      "logs:CreateLogStream",
      "logs:PutLogEvents",
      "logs:AssociateKmsKey",
    ]
    resources = ["${local.logs_arn_prefix}:/aws-glue/*"]
  }

  # A job with a connection runs in the VPC on network interfaces Glue creates with this
  # role. The Describe actions have no resource-level permissions: AWS accepts only "*".
  statement {
    sid = "VpcDescribe"
    actions = [
      "ec2:DescribeNetworkInterfaces",
      "ec2:DescribeRouteTables",
      "ec2:DescribeSecurityGroups",
      "ec2:DescribeSubnets",
      "ec2:DescribeVpcEndpoints",
      "ec2:DescribeVpcs",
    ]
    resources = ["*"]
  }

  statement {
    sid       = "VpcAttributes"
    actions   = ["ec2:DescribeVpcAttribute"]
    resources = [local.vpc_arn]
  }

  statement {
    sid       = "VpcCreateNetworkInterfaces"
    actions   = ["ec2:CreateNetworkInterface"]
    resources = concat([local.eni_arn, aws_security_group.glue.arn], local.subnet_arns)
  }

  statement {
    sid       = "VpcDeleteNetworkInterfaces"
    actions   = ["ec2:DeleteNetworkInterface"]
    resources = [local.eni_arn]

    condition {
      test     = "ArnEquals"
      variable = "ec2:Vpc"
      values   = [local.vpc_arn]
    }
  }

  statement {
    sid       = "VpcTagNetworkInterfaces"
    actions   = ["ec2:CreateTags", "ec2:DeleteTags"]
    resources = [local.eni_arn]

    condition {
      test     = "ForAllValues:StringEquals"
      variable = "aws:TagKeys"
      values   = ["aws-glue-service-resource"]
    }
  }
}

resource "aws_iam_role_policy" "glue_job" {
  name   = "streamlake-jobs"
  role   = aws_iam_role.glue_job.id
  policy = data.aws_iam_policy_document.glue_job.json
}

# --- Firehose --------------------------------------------------------------------------------

data "aws_iam_policy_document" "firehose_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["firehose.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "firehose" {
  for_each = var.firehose_streams

  name               = "${local.prefix}-firehose-${each.key}"
  description        = "streamlake ${local.prefix}: Firehose ${each.key} into s3://${each.value.bucket}/${each.value.prefix}"
  assume_role_policy = data.aws_iam_policy_document.firehose_assume.json
}

# Each stream's role reaches its own bucket and prefix only.
data "aws_iam_policy_document" "firehose" {
  for_each = var.firehose_streams

  statement {
    sid       = "Bucket"
    actions   = ["s3:GetBucketLocation", "s3:ListBucketMultipartUploads"]
    resources = [local.pipeline_bucket_arns[each.value.bucket]]
  }

  statement {
    sid       = "ListPrefix"
    actions   = ["s3:ListBucket"]
    resources = [local.pipeline_bucket_arns[each.value.bucket]]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${each.value.prefix}*"]
    }
  }

  statement {
    sid       = "Objects"
    actions   = ["s3:AbortMultipartUpload", "s3:GetObject", "s3:PutObject"]
    resources = ["${local.pipeline_bucket_arns[each.value.bucket]}/${each.value.prefix}*"]
  }

  # SSE-KMS of the objects it writes, through S3 only (with S3 Bucket Keys the encryption
  # context is the bucket's ARN).
  statement {
    sid       = "EncryptObjects"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [aws_kms_key.this.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${var.region}.amazonaws.com"]
    }

    condition {
      test     = "StringLike"
      variable = "kms:EncryptionContext:aws:s3:arn"
      values = [
        local.pipeline_bucket_arns[each.value.bucket],
        "${local.pipeline_bucket_arns[each.value.bucket]}/${each.value.prefix}*",
      ]
    }
  }

  statement {
    sid       = "DeliveryErrorLogs"
    actions   = ["logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.firehose[each.key].arn}:log-stream:*"]
  }
}

resource "aws_iam_role_policy" "firehose" {
  for_each = var.firehose_streams

  name   = "delivery"
  role   = aws_iam_role.firehose[each.key].id
  policy = data.aws_iam_policy_document.firehose[each.key].json
}

# --- EventBridge to Glue ---------------------------------------------------------------------

data "aws_iam_policy_document" "events_to_glue_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "events_to_glue" {
  count = length(local.arrival_workflows) > 0 ? 1 : 0

  name               = "${local.prefix}-events-to-glue"
  description        = "streamlake ${local.prefix}: EventBridge starts the on-arrival workflows"
  assume_role_policy = data.aws_iam_policy_document.events_to_glue_assume.json
}

data "aws_iam_policy_document" "events_to_glue" {
  count = length(local.arrival_workflows) > 0 ? 1 : 0

  statement {
    sid       = "NotifyOnArrivalWorkflows"
    actions   = ["glue:notifyEvent"]
    resources = [for name in keys(local.arrival_workflows) : aws_glue_workflow.this[name].arn]
  }
}

resource "aws_iam_role_policy" "events_to_glue" {
  count = length(local.arrival_workflows) > 0 ? 1 : 0

  name   = "start-workflows"
  role   = aws_iam_role.events_to_glue[0].id
  policy = data.aws_iam_policy_document.events_to_glue[0].json
}
