# Firehose delivery streams the export job puts changed rows into, each delivering JSON
# lines to one bucket and prefix (YYYY/MM/DD/HH/ below it) with its own role.

resource "aws_kinesis_firehose_delivery_stream" "this" {
  for_each = var.firehose_streams

  name        = each.key
  destination = "extended_s3"

  server_side_encryption {
    enabled  = true
    key_type = "CUSTOMER_MANAGED_CMK"
    key_arn  = aws_kms_key.this.arn
  }

  extended_s3_configuration {
    role_arn    = aws_iam_role.firehose[each.key].arn
    bucket_arn  = aws_s3_bucket.pipeline[each.value.bucket].arn
    prefix      = each.value.prefix
    kms_key_arn = aws_kms_key.this.arn
    # Below the prefix, in a folder the crawler skips (a name starting with "_"), so that the
    # role needs no other place.
    error_output_prefix = "${each.value.prefix}_errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/"
    buffering_size      = 5
    buffering_interval  = 300
    compression_format  = "UNCOMPRESSED"

    cloudwatch_logging_options {
      enabled         = true
      log_group_name  = aws_cloudwatch_log_group.firehose[each.key].name
      log_stream_name = aws_cloudwatch_log_stream.firehose[each.key].name
    }
  }
}
