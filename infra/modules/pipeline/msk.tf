# The MSK cluster (serverless or provisioned, by msk_mode): IAM auth over TLS only, in the
# private subnets, and the Kafka topics on it.

locals {
  msk_serverless  = var.msk_mode == "serverless"
  msk_log_group   = "/aws/msk/${local.prefix}"
  msk_broker_port = 9098 # SASL/IAM over TLS
  msk_replication = min(3, var.msk_brokers)

  msk_cluster_arn = one(concat(aws_msk_serverless_cluster.this[*].arn, aws_msk_cluster.this[*].arn))
  msk_bootstrap_brokers = one(concat(
    aws_msk_serverless_cluster.this[*].bootstrap_brokers_sasl_iam,
    aws_msk_cluster.this[*].bootstrap_brokers_sasl_iam,
  ))

  # kafka-cluster resources: arn:...:cluster/<name>/<uuid> -> topic/<name>/<uuid>/<topic>,
  # group/<name>/<uuid>/<group>.
  msk_topic_arn_prefix = replace(local.msk_cluster_arn, ":cluster/", ":topic/")
  msk_group_arn_prefix = replace(local.msk_cluster_arn, ":cluster/", ":group/")
}

resource "aws_msk_serverless_cluster" "this" {
  count = local.msk_serverless ? 1 : 0

  cluster_name = local.prefix

  vpc_config {
    subnet_ids         = var.private_subnet_ids
    security_group_ids = [aws_security_group.msk.id]
  }

  client_authentication {
    sasl {
      iam {
        enabled = true
      }
    }
  }
}

resource "aws_msk_configuration" "this" {
  count = local.msk_serverless ? 0 : 1

  name           = local.prefix
  kafka_versions = ["3.9.x"]
  description    = "streamlake ${local.prefix}: topics are created by Terraform only"

  server_properties = <<-PROPERTIES
    auto.create.topics.enable=false
    default.replication.factor=${local.msk_replication}
    min.insync.replicas=${max(1, local.msk_replication - 1)}
    num.partitions=3
    unclean.leader.election.enable=false
  PROPERTIES
}

resource "aws_msk_cluster" "this" {
  count = local.msk_serverless ? 0 : 1

  cluster_name           = local.prefix
  kafka_version          = "3.9.x"
  number_of_broker_nodes = var.msk_brokers
  enhanced_monitoring    = "PER_TOPIC_PER_BROKER"

  broker_node_group_info {
    instance_type   = var.msk_broker_instance_type
    client_subnets  = var.private_subnet_ids
    security_groups = [aws_security_group.msk.id]

    storage_info {
      ebs_storage_info {
        volume_size = 500
      }
    }

    connectivity_info {
      public_access {
        type = "DISABLED"
      }
    }
  }

  configuration_info {
    arn      = aws_msk_configuration.this[0].arn
    revision = aws_msk_configuration.this[0].latest_revision
  }

  client_authentication {
    unauthenticated = false

    sasl {
      iam = true
    }
  }

  encryption_info {
    encryption_at_rest_kms_key_arn = aws_kms_key.this.arn

    encryption_in_transit {
      client_broker = "TLS"
      in_cluster    = true
    }
  }

  logging_info {
    broker_logs {
      cloudwatch_logs {
        enabled   = true
        log_group = aws_cloudwatch_log_group.msk[0].name
      }
    }
  }

  lifecycle {
    precondition {
      condition     = var.msk_brokers % length(var.private_subnet_ids) == 0
      error_message = "msk_brokers must be a multiple of the number of private subnets."
    }
  }
}

resource "kafka_topic" "this" {
  for_each = var.kafka_topics

  name               = each.key
  partitions         = each.value.partitions
  replication_factor = each.value.replication_factor

  config = {
    "cleanup.policy" = "delete"
    "retention.ms"   = "604800000" # 7 days
  }

  depends_on = [aws_msk_serverless_cluster.this, aws_msk_cluster.this]

  lifecycle {
    precondition {
      condition     = local.msk_serverless || each.value.replication_factor <= var.msk_brokers
      error_message = "A topic's replication_factor cannot exceed msk_brokers."
    }
  }
}
