# The module's interface. The pipeline-specific values come from
# envs/<env>/pipeline.auto.tfvars.json, which `streamlake deploy render --env <env>` writes from
# configs/pipeline.yaml and configs/<env>.yaml; the network and sizes from envs/<env>/terraform.tfvars.

variable "pipeline_name" {
  description = "The pipeline's name (pipeline.yaml `name`), e.g. shop."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9_-]*$", var.pipeline_name))
    error_message = "pipeline_name must be lowercase letters, digits, '-' or '_', starting with a letter."
  }
}

variable "environment" {
  description = "The environment (dev, staging, prod): names, tags and the jobs' --env."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*$", var.environment))
    error_message = "environment must be lowercase letters, digits or '-', starting with a letter."
  }
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

  validation {
    condition     = length(var.buckets) == length(distinct(var.buckets))
    error_message = "buckets must not repeat a name."
  }
}

# --- Sources ---------------------------------------------------------------------------------

variable "kinesis_streams" {
  description = "Kinesis data streams by name."
  type = map(object({
    shards = number
  }))

  validation {
    condition     = alltrue([for s in values(var.kinesis_streams) : s.shards >= 1])
    error_message = "Every Kinesis stream needs at least one shard."
  }
}

variable "kafka_topics" {
  description = "Kafka topics on the MSK cluster, by name."
  type = map(object({
    partitions         = number
    replication_factor = number
  }))

  validation {
    condition     = alltrue([for t in values(var.kafka_topics) : t.partitions >= 1 && t.replication_factor >= 1])
    error_message = "Every Kafka topic needs at least one partition and a replication factor of at least 1."
  }
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

  validation {
    condition = alltrue([
      for t in values(var.dynamodb_tables) :
      contains(["S", "N", "B"], t.hash_key_type) && contains(["S", "N", "B"], t.range_key_type)
    ])
    error_message = "Key types must be S, N or B."
  }

  validation {
    condition = alltrue([
      for t in values(var.dynamodb_tables) :
      contains(["KEYS_ONLY", "NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES"], t.stream_view)
    ])
    error_message = "stream_view must be KEYS_ONLY, NEW_IMAGE, OLD_IMAGE or NEW_AND_OLD_IMAGES."
  }
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

  validation {
    condition = alltrue([
      for f in values(var.firehose_streams) : contains(var.buckets, f.bucket)
    ])
    error_message = "Every Firehose stream's bucket must be one of buckets."
  }

  validation {
    condition = alltrue([
      for f in values(var.firehose_streams) : f.prefix != "" && endswith(f.prefix, "/") && !startswith(f.prefix, "/")
    ])
    error_message = "Every Firehose prefix must be a folder: not empty, no leading '/', ending with '/'."
  }
}

variable "landing_queues" {
  description = "SQS queues (by name) receiving the S3 ObjectCreated notifications of a bucket's prefix."
  type = map(object({
    bucket = string
    prefix = string
  }))

  validation {
    condition = alltrue([
      for q in values(var.landing_queues) : contains(var.buckets, q.bucket)
    ])
    error_message = "Every landing queue's bucket must be one of buckets."
  }

  validation {
    condition     = alltrue([for q in values(var.landing_queues) : !startswith(q.prefix, "/")])
    error_message = "A landing prefix is an object key prefix: no leading '/'."
  }
}

# --- Catalog and jobs ------------------------------------------------------------------------

variable "glue_databases" {
  description = "Glue Data Catalog databases (one per layer, and the crawlers')."
  type        = list(string)

  validation {
    condition     = alltrue([for d in var.glue_databases : can(regex("^[a-z0-9_]+$", d))])
    error_message = "Glue database names are lowercase letters, digits and underscores."
  }
}

variable "jdbc_connections" {
  description = "Databases the pull jobs read, by connection name: JDBC URL and Secrets Manager secret name."
  type = map(object({
    url    = string
    secret = string
  }))

  validation {
    condition     = alltrue([for c in values(var.jdbc_connections) : startswith(c.url, "jdbc:")])
    error_message = "Every JDBC connection url must start with jdbc:."
  }
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

  validation {
    condition     = alltrue([for j in values(var.streaming_jobs) : contains(["ingest", "process"], j.kind)])
    error_message = "A streaming job's kind is ingest or process."
  }

  validation {
    condition = alltrue([
      for j in values(var.streaming_jobs) : contains(["kafka", "kinesis", "dynamodb", "files", ""], j.source_kind)
    ])
    error_message = "A streaming job's source_kind is kafka, kinesis, dynamodb, files or \"\"."
  }

  validation {
    condition = alltrue([
      for j in values(var.streaming_jobs) :
      j.source_kind == "kafka" ? contains(keys(var.kafka_topics), j.source) :
      j.source_kind == "kinesis" ? contains(keys(var.kinesis_streams), j.source) :
      j.source_kind == "dynamodb" ? contains(keys(var.dynamodb_tables), j.source) : true
    ])
    error_message = "A kafka, kinesis or dynamodb job's source must be one of kafka_topics, kinesis_streams or dynamodb_tables."
  }

  validation {
    condition     = alltrue([for j in values(var.streaming_jobs) : j.workers >= 2 && can(regex("^[GR]\\.[0-9]+X$", j.worker_type))])
    error_message = "A Glue job needs at least 2 workers and a worker type such as G.1X or G.2X."
  }
}

variable "batch_jobs" {
  description = "Glue batch jobs (glueetl) by job name."
  type = map(object({
    kind        = string # pull | compact | curate | quality | catalog | crawl | export
    table       = optional(string)
    workers     = optional(number, 2)
    worker_type = optional(string, "G.1X")
  }))

  validation {
    condition = alltrue([
      for j in values(var.batch_jobs) :
      contains(["pull", "compact", "curate", "quality", "catalog", "crawl", "export"], j.kind)
    ])
    error_message = "A batch job's kind is pull, compact, curate, quality, catalog, crawl or export."
  }

  validation {
    condition     = alltrue([for j in values(var.batch_jobs) : j.workers >= 2 && can(regex("^[GR]\\.[0-9]+X$", j.worker_type))])
    error_message = "A Glue job needs at least 2 workers and a worker type such as G.1X or G.2X."
  }

  validation {
    condition     = length(setintersection(keys(var.batch_jobs), keys(var.streaming_jobs))) == 0
    error_message = "A job name is either a streaming job or a batch job, not both."
  }
}

variable "wheel_s3_path" {
  description = "s3:// URI of the streamlake wheel (--additional-python-modules)."
  type        = string

  validation {
    condition     = startswith(var.wheel_s3_path, "s3://") && endswith(var.wheel_s3_path, ".whl")
    error_message = "wheel_s3_path must be an s3:// URI of a .whl file."
  }
}

variable "extra_jars_s3_paths" {
  description = "s3:// URIs of the jars handed to every job (--extra-jars)."
  type        = list(string)

  validation {
    condition     = alltrue([for p in var.extra_jars_s3_paths : startswith(p, "s3://") && endswith(p, ".jar")])
    error_message = "Every extra jar must be an s3:// URI of a .jar file."
  }
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

  validation {
    condition     = alltrue([for w in values(var.workflows) : w.schedule == null || w.on_arrival == null])
    error_message = "A workflow starts either on a schedule or on arrival, not both."
  }

  validation {
    condition = alltrue([
      for w in values(var.workflows) :
      w.schedule == null || can(regex("^cron\\([^)]+\\)$", w.schedule)) || can(regex("^rate\\([0-9]+ (minute|hour|day)s?\\)$", w.schedule))
    ])
    error_message = "A schedule is cron(...) or rate(N minutes|hours|days)."
  }

  validation {
    condition     = alltrue([for w in values(var.workflows) : w.on_arrival == null ? true : contains(keys(var.landing_queues), w.on_arrival)])
    error_message = "A workflow's on_arrival must be one of landing_queues."
  }

  validation {
    condition = alltrue(flatten([
      for w in values(var.workflows) : [
        for n in w.nodes : contains(concat(keys(var.streaming_jobs), keys(var.batch_jobs)), n.job)
      ]
    ]))
    error_message = "Every workflow node's job must be one of streaming_jobs or batch_jobs."
  }

  validation {
    condition     = alltrue([for w in values(var.workflows) : length(w.nodes) == length(distinct([for n in w.nodes : n.job]))])
    error_message = "A job appears once per workflow."
  }

  validation {
    condition     = alltrue([for w in values(var.workflows) : length([for n in w.nodes : n.job if length(n.conditions) == 0]) > 0])
    error_message = "Every workflow needs at least one node without conditions (its start)."
  }

  validation {
    condition = alltrue(flatten([
      for w in values(var.workflows) : [
        for n in w.nodes : [
          for c in n.conditions : contains([for m in w.nodes : m.job], c.job) && c.job != n.job
        ]
      ]
    ]))
    error_message = "A condition names another job of the same workflow."
  }

  validation {
    condition = alltrue(flatten([
      for w in values(var.workflows) : [
        for n in w.nodes : [for c in n.conditions : contains(["SUCCEEDED", "FAILED", "ANY"], c.state)]
      ]
    ]))
    error_message = "A condition's state is SUCCEEDED, FAILED or ANY."
  }

  validation {
    condition = alltrue(flatten([
      for w in values(var.workflows) : [
        for n in w.nodes : length(n.conditions) == 1 || !contains([for c in n.conditions : c.state], "ANY")
      ]
    ]))
    error_message = "A Glue trigger's predicate is one AND or one ANY: a condition with state ANY must be its node's only condition."
  }
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

  validation {
    condition     = alltrue([for a in values(var.alarms) : contains(var.sns_topics, a.topic)])
    error_message = "Every alarm's topic must be one of sns_topics."
  }

  validation {
    condition = alltrue([
      for a in values(var.alarms) : contains([
        "GreaterThanOrEqualToThreshold", "GreaterThanThreshold", "LessThanThreshold", "LessThanOrEqualToThreshold"
      ], a.comparison)
    ])
    error_message = "comparison must be GreaterThanOrEqualToThreshold, GreaterThanThreshold, LessThanThreshold or LessThanOrEqualToThreshold."
  }

  validation {
    condition     = alltrue([for a in values(var.alarms) : contains(["Average", "Sum", "Minimum", "Maximum", "SampleCount"], a.statistic)])
    error_message = "statistic must be Average, Sum, Minimum, Maximum or SampleCount."
  }

  validation {
    condition     = alltrue([for a in values(var.alarms) : a.period >= 60 && a.period % 60 == 0 && a.evaluation_periods >= 1])
    error_message = "An alarm's period is a multiple of 60 seconds and it evaluates at least one period."
  }
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

  validation {
    condition     = length(var.private_subnet_ids) >= 2
    error_message = "At least two private subnets (in different availability zones) are needed."
  }
}

variable "msk_mode" {
  description = "MSK cluster type: serverless or provisioned."
  type        = string

  validation {
    condition     = contains(["serverless", "provisioned"], var.msk_mode)
    error_message = "msk_mode must be serverless or provisioned."
  }
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

  validation {
    condition     = var.kms_key_deletion_window >= 7 && var.kms_key_deletion_window <= 30
    error_message = "kms_key_deletion_window must be between 7 and 30 days."
  }
}
