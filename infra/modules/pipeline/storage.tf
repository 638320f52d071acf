# Buckets: the lake (Delta tables and checkpoints), the scripts (Glue scripts, wheel, jars,
# configs), the pipeline's own (landing, delivery) and the access-log bucket they all log to.
# Each: versioning, SSE-KMS with the pipeline's key (the log bucket: SSE-S3, the only
# encryption S3 server access logging delivers to), public access blocked, TLS only,
# BucketOwnerEnforced, lifecycle rules by prefix.

locals {
  access_log_bucket = "${var.lake_bucket}-access-logs"

  # The buckets that log to the access-log bucket, under s3/<bucket>/.
  logged_bucket_arns = concat(
    ["arn:${local.partition}:s3:::${var.lake_bucket}", "arn:${local.partition}:s3:::${var.scripts_bucket}"],
    values(local.pipeline_bucket_arns),
  )

  # Firehose prefixes by bucket: what is delivered goes to Glacier after 90 days.
  delivery_prefixes = {
    for b in var.buckets : b => { for name, f in var.firehose_streams : name => f.prefix if f.bucket == b }
  }
}

# --- Access logs -----------------------------------------------------------------------------

resource "aws_s3_bucket" "logs" {
  #checkov:skip=CKV_AWS_18:This is the access-log target bucket; logging it to itself would log its own log deliveries.
  #checkov:skip=CKV_AWS_144:Access logs are kept in the region; cross-region replication is not wanted for them.
  #checkov:skip=CKV_AWS_145:S3 server access logging delivers only to buckets encrypted with SSE-S3 (AES256), not SSE-KMS.
  #checkov:skip=CKV2_AWS_62:Nothing reacts to new access-log objects; event notifications would have no consumer.
  bucket = local.access_log_bucket
}

resource "aws_s3_bucket_ownership_controls" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "logs" {
  bucket                  = aws_s3_bucket.logs.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "logs" {
  bucket = aws_s3_bucket.logs.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    id     = "access-logs"
    status = "Enabled"

    filter {}

    transition {
      days          = 90
      storage_class = "GLACIER"
    }

    expiration {
      days = 365
    }

    noncurrent_version_expiration {
      noncurrent_days = 30
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

data "aws_iam_policy_document" "logs_bucket" {
  statement {
    sid       = "S3ServerAccessLogs"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.logs.arn}/s3/*"]

    principals {
      type        = "Service"
      identifiers = ["logging.s3.amazonaws.com"]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = local.logged_bucket_arns
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
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.logs.arn, "${aws_s3_bucket.logs.arn}/*"]

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

resource "aws_s3_bucket_policy" "logs" {
  bucket = aws_s3_bucket.logs.id
  policy = data.aws_iam_policy_document.logs_bucket.json

  depends_on = [aws_s3_bucket_public_access_block.logs]
}

# --- Lake ------------------------------------------------------------------------------------

resource "aws_s3_bucket" "lake" {
  #checkov:skip=CKV_AWS_144:The lake is rebuilt from its sources and protected by versioning; a second region is not part of this deployment.
  #checkov:skip=CKV2_AWS_62:Nothing reacts to lake objects (every Delta commit would be an event with no consumer).
  bucket = var.lake_bucket
}

resource "aws_s3_bucket_ownership_controls" "lake" {
  bucket = aws_s3_bucket.lake.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "lake" {
  bucket                  = aws_s3_bucket.lake.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "lake" {
  bucket = aws_s3_bucket.lake.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "lake" {
  bucket = aws_s3_bucket.lake.id

  rule {
    bucket_key_enabled = true

    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.this.arn
    }
  }
}

resource "aws_s3_bucket_logging" "lake" {
  bucket        = aws_s3_bucket.lake.id
  target_bucket = aws_s3_bucket.logs.id
  target_prefix = "s3/${var.lake_bucket}/"
}

# Layers live at <pipeline>/<layer>/<table>, checkpoints at _checkpoints/<pipeline>/<job>.
# Checkpoints have no expiring rule: a checkpoint is a job's position and never expires.
resource "aws_s3_bucket_lifecycle_configuration" "lake" {
  bucket = aws_s3_bucket.lake.id

  # Old versions of any object (files Delta's VACUUM or compaction removed, overwritten
  # checkpoint files) are kept 30 days, then removed. Current versions are never touched.
  rule {
    id     = "noncurrent-versions"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = 30
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  rule {
    id     = "raw-to-infrequent-access"
    status = "Enabled"

    filter {
      prefix = "${local.lake_root_prefix}raw/"
    }

    transition {
      days          = 30
      storage_class = "STANDARD_IA"
    }

    noncurrent_version_expiration {
      noncurrent_days = 30
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  rule {
    id     = "quarantine-expires"
    status = "Enabled"

    filter {
      prefix = "${local.lake_root_prefix}quarantine/"
    }

    expiration {
      days = 90
    }

    noncurrent_version_expiration {
      noncurrent_days = 7
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.lake]
}

data "aws_iam_policy_document" "lake_bucket" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.lake.arn, "${aws_s3_bucket.lake.arn}/*"]

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

resource "aws_s3_bucket_policy" "lake" {
  bucket = aws_s3_bucket.lake.id
  policy = data.aws_iam_policy_document.lake_bucket.json

  depends_on = [aws_s3_bucket_public_access_block.lake]
}

# --- Scripts ---------------------------------------------------------------------------------

resource "aws_s3_bucket" "scripts" {
  #checkov:skip=CKV_AWS_144:Scripts, wheel, jars and configs are build outputs uploaded again on every deploy; no second region.
  #checkov:skip=CKV2_AWS_62:Nothing reacts to uploaded scripts; deploys update the jobs themselves.
  bucket = var.scripts_bucket
}

resource "aws_s3_bucket_ownership_controls" "scripts" {
  bucket = aws_s3_bucket.scripts.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "scripts" {
  bucket                  = aws_s3_bucket.scripts.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "scripts" {
  bucket = aws_s3_bucket.scripts.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "scripts" {
  bucket = aws_s3_bucket.scripts.id

  rule {
    bucket_key_enabled = true

    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.this.arn
    }
  }
}

resource "aws_s3_bucket_logging" "scripts" {
  bucket        = aws_s3_bucket.scripts.id
  target_bucket = aws_s3_bucket.logs.id
  target_prefix = "s3/${var.scripts_bucket}/"
}

resource "aws_s3_bucket_lifecycle_configuration" "scripts" {
  bucket = aws_s3_bucket.scripts.id

  rule {
    id     = "noncurrent-versions"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = 90
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  # The jobs' --TempDir.
  rule {
    id     = "glue-temp-expires"
    status = "Enabled"

    filter {
      prefix = local.glue_temp_prefix
    }

    expiration {
      days = 7
    }

    noncurrent_version_expiration {
      noncurrent_days = 1
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  depends_on = [aws_s3_bucket_versioning.scripts]
}

data "aws_iam_policy_document" "scripts_bucket" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.scripts.arn, "${aws_s3_bucket.scripts.arn}/*"]

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

resource "aws_s3_bucket_policy" "scripts" {
  bucket = aws_s3_bucket.scripts.id
  policy = data.aws_iam_policy_document.scripts_bucket.json

  depends_on = [aws_s3_bucket_public_access_block.scripts]
}

# --- The pipeline's buckets (landing, delivery) ----------------------------------------------

resource "aws_s3_bucket" "pipeline" {
  #checkov:skip=CKV_AWS_144:Landing files are archived and delivered files are copies of lake data; no second region.
  for_each = toset(var.buckets)

  bucket = each.key
}

resource "aws_s3_bucket_ownership_controls" "pipeline" {
  for_each = toset(var.buckets)

  bucket = aws_s3_bucket.pipeline[each.key].id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "pipeline" {
  for_each = toset(var.buckets)

  bucket                  = aws_s3_bucket.pipeline[each.key].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "pipeline" {
  for_each = toset(var.buckets)

  bucket = aws_s3_bucket.pipeline[each.key].id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "pipeline" {
  for_each = toset(var.buckets)

  bucket = aws_s3_bucket.pipeline[each.key].id

  rule {
    bucket_key_enabled = true

    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.this.arn
    }
  }
}

resource "aws_s3_bucket_logging" "pipeline" {
  for_each = toset(var.buckets)

  bucket        = aws_s3_bucket.pipeline[each.key].id
  target_bucket = aws_s3_bucket.logs.id
  target_prefix = "s3/${each.key}/"
}

resource "aws_s3_bucket_lifecycle_configuration" "pipeline" {
  for_each = toset(var.buckets)

  bucket = aws_s3_bucket.pipeline[each.key].id

  rule {
    id     = "noncurrent-versions"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = 30
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  # Landing files the ingest job read are moved to archive/<landing path>.
  rule {
    id     = "landing-archive-to-glacier"
    status = "Enabled"

    filter {
      prefix = "archive/"
    }

    transition {
      days          = 90
      storage_class = "GLACIER"
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  # Landing files that could not be read are moved to errors/<landing path>, with their reason.
  rule {
    id     = "landing-errors-expire"
    status = "Enabled"

    filter {
      prefix = "errors/"
    }

    expiration {
      days = 180
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  # What Firehose delivered into this bucket.
  dynamic "rule" {
    for_each = local.delivery_prefixes[each.key]

    content {
      id     = "delivery-${rule.key}-to-glacier"
      status = "Enabled"

      filter {
        prefix = rule.value
      }

      transition {
        days          = 90
        storage_class = "GLACIER"
      }

      abort_incomplete_multipart_upload {
        days_after_initiation = 7
      }
    }
  }

  depends_on = [aws_s3_bucket_versioning.pipeline]
}

data "aws_iam_policy_document" "pipeline_bucket" {
  for_each = toset(var.buckets)

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.pipeline[each.key].arn, "${aws_s3_bucket.pipeline[each.key].arn}/*"]

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

resource "aws_s3_bucket_policy" "pipeline" {
  for_each = toset(var.buckets)

  bucket = aws_s3_bucket.pipeline[each.key].id
  policy = data.aws_iam_policy_document.pipeline_bucket[each.key].json

  depends_on = [aws_s3_bucket_public_access_block.pipeline]
}

# New objects: to EventBridge (the rules that start on-arrival workflows) and, for each
# landing queue of the bucket, to that queue, filtered to its prefix so that moving a read
# file to archive/ does not announce it again.
resource "aws_s3_bucket_notification" "pipeline" {
  for_each = toset(var.buckets)

  bucket      = aws_s3_bucket.pipeline[each.key].id
  eventbridge = true

  dynamic "queue" {
    for_each = { for name, q in var.landing_queues : name => q if q.bucket == each.key }

    content {
      id            = queue.key
      queue_arn     = aws_sqs_queue.landing[queue.key].arn
      events        = ["s3:ObjectCreated:*"]
      filter_prefix = queue.value.prefix
    }
  }

  depends_on = [aws_sqs_queue_policy.landing]
}
