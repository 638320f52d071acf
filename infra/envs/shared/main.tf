# An environment: the whole pipeline, from modules/pipeline (each of envs/{dev,staging,prod} links this file; its backend.tf and tfvars are its own).

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      project     = "streamlake"
      pipeline    = var.pipeline_name
      environment = var.environment
      managed-by  = "terraform"
    }
  }
}

# Kafka topics are created through the MSK cluster's brokers with IAM auth (the caller's AWS
# credentials), so Terraform must run where the private subnets are reachable. On the first
# apply the cluster does not exist yet: apply the cluster first (see infra/README.md).
provider "kafka" {
  bootstrap_servers = split(",", module.pipeline.msk_bootstrap_brokers_sasl_iam)
  tls_enabled       = true
  sasl_mechanism    = "aws-iam"
  sasl_aws_region   = var.region
}

module "pipeline" {
  source = "../../modules/pipeline"

  pipeline_name            = var.pipeline_name
  environment              = var.environment
  region                   = var.region
  lake_bucket              = var.lake_bucket
  scripts_bucket           = var.scripts_bucket
  buckets                  = var.buckets
  kinesis_streams          = var.kinesis_streams
  kafka_topics             = var.kafka_topics
  dynamodb_tables          = var.dynamodb_tables
  sns_topics               = var.sns_topics
  alert_emails             = var.alert_emails
  firehose_streams         = var.firehose_streams
  landing_queues           = var.landing_queues
  glue_databases           = var.glue_databases
  jdbc_connections         = var.jdbc_connections
  streaming_jobs           = var.streaming_jobs
  batch_jobs               = var.batch_jobs
  workflows                = var.workflows
  alarms                   = var.alarms
  metrics_namespace        = var.metrics_namespace
  vpc_id                   = var.vpc_id
  private_subnet_ids       = var.private_subnet_ids
  msk_mode                 = var.msk_mode
  msk_broker_instance_type = var.msk_broker_instance_type
  msk_brokers              = var.msk_brokers
  kms_key_deletion_window  = var.kms_key_deletion_window
}

output "pipeline" {
  description = "What the jobs and operators need: buckets, brokers, job and workflow names, ARNs."
  value = {
    lake_bucket                    = module.pipeline.lake_bucket
    scripts_bucket                 = module.pipeline.scripts_bucket
    msk_bootstrap_brokers_sasl_iam = module.pipeline.msk_bootstrap_brokers_sasl_iam
    glue_job_role_arn              = module.pipeline.glue_job_role_arn
    glue_jobs                      = module.pipeline.glue_jobs
    glue_workflows                 = module.pipeline.glue_workflows
    glue_security_group_id         = module.pipeline.glue_security_group_id
    msk_security_group_id          = module.pipeline.msk_security_group_id
    sns_topic_arns                 = module.pipeline.sns_topic_arns
    landing_queue_urls             = module.pipeline.landing_queue_urls
    firehose_stream_arns           = module.pipeline.firehose_stream_arns
    kinesis_stream_arns            = module.pipeline.kinesis_stream_arns
    dynamodb_stream_arns           = module.pipeline.dynamodb_stream_arns
    delta_log_table                = module.pipeline.delta_log_table
    kms_key_arn                    = module.pipeline.kms_key_arn
  }
}
