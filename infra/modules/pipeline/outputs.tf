output "kms_key_arn" {
  description = "The pipeline's KMS key."
  value       = aws_kms_key.this.arn
}

output "lake_bucket" {
  description = "The lake bucket (lake.root s3a://<bucket>/<pipeline>, lake.checkpoint_root s3a://<bucket>/_checkpoints/<pipeline>)."
  value       = aws_s3_bucket.lake.bucket
}

output "scripts_bucket" {
  description = "The scripts bucket (glue/<job>.py, configs/, the wheel and jars)."
  value       = aws_s3_bucket.scripts.bucket
}

output "msk_cluster_arn" {
  description = "The MSK cluster."
  value       = local.msk_cluster_arn
}

output "msk_bootstrap_brokers_sasl_iam" {
  description = "The MSK bootstrap brokers for IAM auth over TLS (kafka.bootstrap_servers)."
  value       = local.msk_bootstrap_brokers
}

output "glue_job_role_arn" {
  description = "The role the Glue jobs run as."
  value       = aws_iam_role.glue_job.arn
}

output "glue_jobs" {
  description = "Glue job names by streamlake job name."
  value       = local.all_job_names
}

output "glue_workflows" {
  description = "Glue workflow names by streamlake workflow name."
  value       = { for name, wf in aws_glue_workflow.this : name => wf.name }
}

output "glue_security_group_id" {
  description = "The Glue jobs' security group (admit it on the JDBC databases' security groups)."
  value       = aws_security_group.glue.id
}

output "msk_security_group_id" {
  description = "The MSK brokers' security group (add producers' ingress to it)."
  value       = aws_security_group.msk.id
}

output "kinesis_stream_arns" {
  description = "Kinesis stream ARNs by name."
  value       = { for name, s in aws_kinesis_stream.this : name => s.arn }
}

output "dynamodb_stream_arns" {
  description = "DynamoDB table stream ARNs by table name."
  value       = { for name, t in aws_dynamodb_table.source : name => t.stream_arn }
}

output "delta_log_table" {
  description = "The Delta log-store lock table."
  value       = aws_dynamodb_table.delta_log.name
}

output "sns_topic_arns" {
  description = "SNS topic ARNs by name."
  value       = { for name, t in aws_sns_topic.this : name => t.arn }
}

output "landing_queue_urls" {
  description = "Landing queue URLs by name."
  value       = { for name, q in aws_sqs_queue.landing : name => q.url }
}

output "firehose_stream_arns" {
  description = "Firehose delivery stream ARNs by name."
  value       = { for name, f in aws_kinesis_firehose_delivery_stream.this : name => f.arn }
}
