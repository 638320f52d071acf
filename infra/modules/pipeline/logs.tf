# Log groups, created here so that they have a retention and are encrypted with the key:
# the Glue jobs' (--custom-logGroup-prefix: <prefix>/output and <prefix>/error), each
# Firehose stream's delivery errors, and the MSK brokers'.

resource "aws_cloudwatch_log_group" "glue" {
  for_each = toset(["output", "error"])

  name              = "${local.glue_log_group}/${each.key}"
  retention_in_days = local.log_retention
  kms_key_id        = aws_kms_key.this.arn
}

resource "aws_cloudwatch_log_group" "firehose" {
  for_each = var.firehose_streams

  name              = "/aws/kinesisfirehose/${each.key}"
  retention_in_days = local.log_retention
  kms_key_id        = aws_kms_key.this.arn
}

resource "aws_cloudwatch_log_stream" "firehose" {
  for_each = var.firehose_streams

  name           = "DestinationDelivery"
  log_group_name = aws_cloudwatch_log_group.firehose[each.key].name
}

resource "aws_cloudwatch_log_group" "msk" {
  count = local.msk_serverless ? 0 : 1

  name              = local.msk_log_group
  retention_in_days = local.log_retention
  kms_key_id        = aws_kms_key.this.arn
}
