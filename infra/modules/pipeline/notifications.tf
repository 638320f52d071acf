# SNS topics (job events, alarms) with their e-mail subscriptions, and the SQS queues that
# receive the landing buckets' ObjectCreated notifications (`streamlake workflow serve`
# reads them), each with a dead-letter queue.

resource "aws_sns_topic" "this" {
  for_each = toset(var.sns_topics)

  name              = each.key
  kms_master_key_id = aws_kms_key.this.arn
}

# Same-account publishers (the Glue job role) are allowed by their IAM policies.
data "aws_iam_policy_document" "sns_topic" {
  for_each = aws_sns_topic.this

  statement {
    sid       = "CloudWatchAlarmsPublish"
    actions   = ["sns:Publish"]
    resources = [each.value.arn]

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

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["sns:Publish"]
    resources = [each.value.arn]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_sns_topic_policy" "this" {
  for_each = aws_sns_topic.this

  arn    = each.value.arn
  policy = data.aws_iam_policy_document.sns_topic[each.key].json
}

resource "aws_sns_topic_subscription" "email" {
  for_each = {
    for pair in setproduct(var.sns_topics, var.alert_emails) : "${pair[0]}/${pair[1]}" => {
      topic = pair[0]
      email = pair[1]
    }
  }

  topic_arn = aws_sns_topic.this[each.value.topic].arn
  protocol  = "email"
  endpoint  = each.value.email
}

# --- Landing queues --------------------------------------------------------------------------

resource "aws_sqs_queue" "landing_dlq" {
  for_each = var.landing_queues

  name                              = "${each.key}-dlq"
  message_retention_seconds         = 1209600 # 14 days
  kms_master_key_id                 = aws_kms_key.this.arn
  kms_data_key_reuse_period_seconds = 300
}

resource "aws_sqs_queue" "landing" {
  for_each = var.landing_queues

  name                              = each.key
  message_retention_seconds         = 345600 # 4 days
  visibility_timeout_seconds        = 300
  receive_wait_time_seconds         = 20
  kms_master_key_id                 = aws_kms_key.this.arn
  kms_data_key_reuse_period_seconds = 300

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.landing_dlq[each.key].arn
    maxReceiveCount     = 5
  })
}

resource "aws_sqs_queue_redrive_allow_policy" "landing_dlq" {
  for_each = var.landing_queues

  queue_url = aws_sqs_queue.landing_dlq[each.key].id

  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.landing[each.key].arn]
  })
}

# Only the queue's own bucket, in this account, may send to it.
data "aws_iam_policy_document" "landing_queue" {
  for_each = var.landing_queues

  statement {
    sid       = "S3ObjectCreated"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.landing[each.key].arn]

    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_s3_bucket.pipeline[each.value.bucket].arn]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage"]
    resources = [aws_sqs_queue.landing[each.key].arn]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_sqs_queue_policy" "landing" {
  for_each = var.landing_queues

  queue_url = aws_sqs_queue.landing[each.key].id
  policy    = data.aws_iam_policy_document.landing_queue[each.key].json
}
