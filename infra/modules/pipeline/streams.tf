# Kinesis data streams and DynamoDB tables the ingest jobs read, and the Delta log-store
# lock table.

resource "aws_kinesis_stream" "this" {
  for_each = var.kinesis_streams

  name             = each.key
  shard_count      = each.value.shards
  retention_period = local.kinesis_retention
  encryption_type  = "KMS"
  kms_key_id       = aws_kms_key.this.arn

  stream_mode_details {
    stream_mode = "PROVISIONED"
  }
}

resource "aws_dynamodb_table" "source" {
  for_each = var.dynamodb_tables

  name                        = each.key
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = each.value.hash_key
  range_key                   = each.value.range_key
  stream_enabled              = true
  stream_view_type            = each.value.stream_view
  deletion_protection_enabled = true

  attribute {
    name = each.value.hash_key
    type = each.value.hash_key_type
  }

  dynamic "attribute" {
    for_each = each.value.range_key == null ? [] : [each.value.range_key]

    content {
      name = attribute.value
      type = each.value.range_key_type
    }
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.this.arn
  }
}

# Delta's DynamoDB log store lock table (delta-storage-s3-dynamodb's layout), for writers
# that commit through it instead of S3 conditional writes.
resource "aws_dynamodb_table" "delta_log" {
  name                        = local.delta_log_table
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "tablePath"
  range_key                   = "fileName"
  deletion_protection_enabled = true

  attribute {
    name = "tablePath"
    type = "S"
  }

  attribute {
    name = "fileName"
    type = "S"
  }

  ttl {
    attribute_name = "expireTime"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.this.arn
  }
}
