# One customer-managed key encrypts the pipeline's data at rest: buckets, streams, tables,
# topics, queues, Firehose, MSK, logs and the Glue security configuration.

resource "aws_kms_key" "this" {
  description             = "streamlake ${local.prefix}: data at rest"
  enable_key_rotation     = true
  rotation_period_in_days = 365
  deletion_window_in_days = var.kms_key_deletion_window
  policy                  = data.aws_iam_policy_document.kms.json
}

resource "aws_kms_alias" "this" {
  name          = "alias/streamlake/${local.prefix}"
  target_key_id = aws_kms_key.this.key_id
}

data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_109:A key policy's Resource "*" is the key itself; the account statement delegates to IAM, as AWS's default key policy does.
  #checkov:skip=CKV_AWS_111:A key policy's Resource "*" is the key itself; the account statement delegates to IAM, as AWS's default key policy does.
  #checkov:skip=CKV_AWS_356:A key policy's Resource "*" is the key itself (AWS takes no other resource in a key policy).

  # AWS's default statement: the account's IAM policies decide who uses and manages the key
  # (the roles below are granted the actions they need on this key's ARN). Without it the
  # key could become unmanageable. Resource "*" in a key policy means this key.
  statement {
    sid       = "AccountDelegatesToIam"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  # CloudWatch Logs encrypts the pipeline's log groups (Glue, Firehose, MSK) with the key.
  statement {
    sid = "CloudWatchLogs"
    actions = [
      "kms:Encrypt",
      "kms:Decrypt",
      "kms:ReEncryptFrom",
      "kms:ReEncryptTo",
      "kms:GenerateDataKey",
      "kms:GenerateDataKeyWithoutPlaintext",
      "kms:DescribeKey",
    ]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["logs.${var.region}.amazonaws.com"]
    }

    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values = [
        "${local.logs_arn_prefix}:/aws-glue/*",
        "${local.logs_arn_prefix}:/aws/kinesisfirehose/*",
        "${local.logs_arn_prefix}:/aws/msk/${local.prefix}",
      ]
    }
  }

  # S3 sends ObjectCreated notifications to the landing queues, which are encrypted with the key.
  statement {
    sid       = "S3NotificationsToQueues"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }

  # CloudWatch alarms publish to the SNS topics, which are encrypted with the key.
  statement {
    sid       = "CloudWatchAlarmsToTopics"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}
