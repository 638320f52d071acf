# The environment's variables: the module's interface (modules/pipeline/variables.tf, which
# validates them), set by terraform.tfvars (network, sizes) and pipeline.auto.tfvars.json
# (written by `streamlake deploy render`).

variable "pipeline_name" {
  description = "The pipeline's name (pipeline.yaml `name`), e.g. shop."
  type        = string
}

variable "environment" {
  description = "The environment (dev, staging, prod): names, tags and the jobs' --env."
  type        = string
}

variable "region" {
  description = "The AWS region everything is deployed to (configs/<env>.yaml aws.region)."
  type        = string
}

# --- Storage ---------------------------------------------------------------------------------

variable "lake_bucket" {
  description = "The bucket holding the Delta lake (s3://<lake_bucket>/<pipeline>/) and the checkpoints (s3://<lake_bucket>/_checkpoints/<pipeline>/)."
  type        = string
}

variable "scripts_bucket" {
  description = "The bucket holding the Glue scripts (glue/), the wheel, the jars and the configs (configs/)."
  type        = string
}

variable "buckets" {
  description = "The pipeline's other buckets (pipeline.yaml `buckets` but the lake): landing, delivery."
  type        = list(string)
}

# --- Sources ---------------------------------------------------------------------------------

variable "kinesis_streams" {
  description = "Kinesis data streams by name."
  type = map(object({
    shards = number
  }))
}

variable "kafka_topics" {
  description = "Kafka topics on the MSK cluster, by name."
  type = map(object({
    partitions         = number
    replication_factor = number
  }))
}

variable "dynamodb_tables" {
  description = "DynamoDB source tables by name; each gets a stream the ingest job reads."
  type = map(object({
    hash_key       = string
    hash_key_type  = string
    range_key      = optional(string)
    range_key_type = optional(string, "S")
    stream_view    = string
  }))
}

# --- Delivery and notifications --------------------------------------------------------------

variable "sns_topics" {
  description = "SNS topics the jobs publish their events to and the alarms notify."
  type        = list(string)
}

variable "alert_emails" {
  description = "E-mail addresses subscribed to every SNS topic (each confirms its subscription)."
  type        = list(string)
  default     = []
}

variable "firehose_streams" {
  description = "Firehose delivery streams by name, each into one bucket and prefix."
  type = map(object({
    bucket = string
    prefix = string
  }))
}

variable "landing_queues" {
  description = "SQS queues (by name) receiving the S3 ObjectCreated notifications of a bucket's prefix."
  type = map(object({
    bucket = string
    prefix = string
  }))
}

# --- Catalog and jobs ------------------------------------------------------------------------

variable "glue_databases" {
  description = "Glue Data Catalog databases (one per layer, and the crawlers')."
  type        = list(string)
}

variable "jdbc_connections" {
  description = "Databases the pull jobs read, by connection name: JDBC URL and Secrets Manager secret name."
  type = map(object({
    url    = string
    secret = string
  }))
}

variable "streaming_jobs" {
  description = "Glue streaming jobs (gluestreaming) by job name: ingest and process jobs."
  type = map(object({
    kind        = string # ingest | process
    table       = string
    source_kind = string # kafka | kinesis | dynamodb | files | "" (process jobs)
    source      = string # the topic, stream or table name, or ""
    workers     = optional(number, 2)
    worker_type = optional(string, "G.1X")
  }))
}

variable "batch_jobs" {
  description = "Glue batch jobs (glueetl) by job name."
  type = map(object({
    kind        = string # pull | compact | curate | quality | catalog | crawl | export
    table       = optional(string)
    workers     = optional(number, 2)
    worker_type = optional(string, "G.1X")
  }))
}

variable "wheel_s3_path" {
  description = "s3:// URI of the streamlake wheel (--additional-python-modules)."
  type        = string
}

variable "extra_jars_s3_paths" {
  description = "s3:// URIs of the jars handed to every job (--extra-jars)."
  type        = list(string)
}

variable "workflows" {
  description = "Glue workflows by name: a start (schedule, new files under a landing queue's prefix, or by hand) and the jobs, each with the conditions on other jobs of the workflow it waits for."
  type = map(object({
    schedule   = optional(string) # AWS cron(...) or rate(...)
    on_arrival = optional(string) # a landing_queues key
    nodes = list(object({
      job = string
      conditions = list(object({
        job   = string
        state = string # SUCCEEDED | FAILED | ANY
      }))
    }))
  }))
}

# --- Monitoring ------------------------------------------------------------------------------

variable "alarms" {
  description = "CloudWatch alarms by name, each notifying one of sns_topics. The metric QuarantineRatio is derived: QuarantinedRows / InputRows of the same dimensions."
  type = map(object({
    metric             = string
    namespace          = string
    dimensions         = map(string)
    statistic          = string
    threshold          = number
    comparison         = string
    period             = number
    evaluation_periods = number
    topic              = string # an sns_topics entry
  }))
}

variable "metrics_namespace" {
  description = "The CloudWatch namespace the jobs put their metrics in (pipeline.yaml metrics.namespace)."
  type        = string
}

# --- Network and sizes -----------------------------------------------------------------------

variable "vpc_id" {
  description = "The VPC of the MSK cluster, the Glue connections and the endpoints."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets (each with an explicit route table association) for MSK, the Glue connections and the interface endpoints."
  type        = list(string)
}

variable "msk_mode" {
  description = "MSK cluster type: serverless or provisioned."
  type        = string
}

variable "msk_broker_instance_type" {
  description = "Broker instance type of a provisioned MSK cluster."
  type        = string
  default     = "kafka.m7g.large"
}

variable "msk_brokers" {
  description = "Number of brokers of a provisioned MSK cluster (a multiple of the number of private subnets)."
  type        = number
  default     = 3
}

variable "kms_key_deletion_window" {
  description = "Days the pipeline's KMS key waits before it is deleted."
  type        = number
  default     = 30
}
