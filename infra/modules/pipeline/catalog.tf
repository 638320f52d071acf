# The Glue Data Catalog databases, the connections that place jobs in the VPC, and the
# security configuration every job runs with.

resource "aws_glue_catalog_database" "this" {
  for_each = toset(var.glue_databases)

  name        = each.key
  description = "streamlake ${var.pipeline_name} (${var.environment}): ${each.key}"
}

resource "aws_glue_security_configuration" "this" {
  name = local.prefix

  encryption_configuration {
    cloudwatch_encryption {
      cloudwatch_encryption_mode = "SSE-KMS"
      kms_key_arn                = aws_kms_key.this.arn
    }

    job_bookmarks_encryption {
      job_bookmarks_encryption_mode = "CSE-KMS"
      kms_key_arn                   = aws_kms_key.this.arn
    }

    s3_encryption {
      s3_encryption_mode = "SSE-KMS"
      kms_key_arn        = aws_kms_key.this.arn
    }
  }
}

# A NETWORK connection per private subnet: a job in the VPC (MSK, databases) gets an ENI in
# the first one's subnet, the others are there for another availability zone.
resource "aws_glue_connection" "network" {
  for_each = data.aws_subnet.private

  name            = "${local.prefix}-network-${each.key}"
  description     = "Glue jobs of ${local.prefix} in ${each.key}"
  connection_type = "NETWORK"

  physical_connection_requirements {
    availability_zone      = each.value.availability_zone
    subnet_id              = each.value.id
    security_group_id_list = [aws_security_group.glue.id]
  }
}

# The databases the pull jobs read: the URL and the Secrets Manager secret of the
# credentials (the jobs read the secret themselves when a pull starts).
resource "aws_glue_connection" "jdbc" {
  for_each = var.jdbc_connections

  name            = "${local.prefix}-${each.key}"
  description     = "Database ${each.key} of ${local.prefix}"
  connection_type = "JDBC"

  connection_properties = {
    JDBC_CONNECTION_URL = each.value.url
    JDBC_ENFORCE_SSL    = "true"
    SECRET_ID           = each.value.secret
  }

  physical_connection_requirements {
    availability_zone      = data.aws_subnet.private[local.first_private_subnet].availability_zone
    subnet_id              = local.first_private_subnet
    security_group_id_list = [aws_security_group.glue.id]
  }
}
