# Network: security groups for the Glue jobs' connections, the MSK cluster and the interface
# endpoints, and the VPC endpoints the jobs in the VPC reach AWS through (the private subnets
# need no NAT for AWS APIs).

data "aws_vpc" "this" {
  id = var.vpc_id
}

data "aws_subnet" "private" {
  for_each = toset(var.private_subnet_ids)

  id = each.value
}

# The route table of each private subnet (an explicit association is expected).
data "aws_route_table" "private" {
  for_each = toset(var.private_subnet_ids)

  subnet_id = each.value
}

locals {
  interface_endpoints = {
    glue           = "glue"
    kinesis        = "kinesis-streams"
    sts            = "sts"
    secretsmanager = "secretsmanager"
    sns            = "sns"
    sqs            = "sqs"
    monitoring     = "monitoring"
    logs           = "logs"
    firehose       = "kinesis-firehose"
    kms            = "kms"
  }
  gateway_endpoints = toset(["s3", "dynamodb"])

  private_route_table_ids = distinct([for rt in data.aws_route_table.private : rt.id])
  first_private_subnet    = var.private_subnet_ids[0]
}

# --- Glue jobs -------------------------------------------------------------------------------

resource "aws_security_group" "glue" {
  #checkov:skip=CKV2_AWS_5:Attached to the Glue connections (physical_connection_requirements), which the check does not follow.
  name        = "${local.prefix}-glue"
  description = "Glue jobs of ${local.prefix} in the VPC"
  vpc_id      = var.vpc_id

  # Glue requires the connection's security group to admit all TCP traffic from itself
  # (driver and executors talk to each other).
  ingress {
    description = "Glue workers among themselves (required by Glue)"
    protocol    = "tcp"
    from_port   = 0
    to_port     = 65535
    self        = true
  }

  egress {
    description = "Glue workers among themselves (required by Glue)"
    protocol    = "tcp"
    from_port   = 0
    to_port     = 65535
    self        = true
  }

  # MSK brokers, the JDBC databases and anything else the jobs reach inside the VPC.
  egress {
    description = "TCP within the VPC (MSK brokers, JDBC databases)"
    protocol    = "tcp"
    from_port   = 0
    to_port     = 65535
    cidr_blocks = [data.aws_vpc.this.cidr_block]
  }

  egress {
    description = "DNS to the VPC resolver"
    protocol    = "udp"
    from_port   = 53
    to_port     = 53
    cidr_blocks = [data.aws_vpc.this.cidr_block]
  }

  egress {
    description     = "HTTPS to the interface endpoints"
    protocol        = "tcp"
    from_port       = 443
    to_port         = 443
    security_groups = [aws_security_group.endpoints.id]
  }

  egress {
    description     = "HTTPS to S3 and DynamoDB through their gateway endpoints"
    protocol        = "tcp"
    from_port       = 443
    to_port         = 443
    prefix_list_ids = [for k in sort(tolist(local.gateway_endpoints)) : aws_vpc_endpoint.gateway[k].prefix_list_id]
  }
}

# --- MSK -------------------------------------------------------------------------------------

resource "aws_security_group" "msk" {
  name        = "${local.prefix}-msk"
  description = "MSK brokers of ${local.prefix}: IAM over TLS from the Glue jobs"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "msk_from_glue" {
  security_group_id            = aws_security_group.msk.id
  description                  = "Kafka SASL/IAM over TLS from the Glue jobs"
  ip_protocol                  = "tcp"
  from_port                    = local.msk_broker_port
  to_port                      = local.msk_broker_port
  referenced_security_group_id = aws_security_group.glue.id
}

# --- Endpoints -------------------------------------------------------------------------------

resource "aws_security_group" "endpoints" {
  name        = "${local.prefix}-endpoints"
  description = "Interface endpoints of ${local.prefix}: HTTPS from the Glue jobs"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "endpoints_from_glue" {
  security_group_id            = aws_security_group.endpoints.id
  description                  = "HTTPS from the Glue jobs"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = aws_security_group.glue.id
}

resource "aws_vpc_endpoint" "gateway" {
  for_each = local.gateway_endpoints

  vpc_id            = var.vpc_id
  service_name      = "com.amazonaws.${var.region}.${each.key}"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = local.private_route_table_ids

  tags = {
    Name = "${local.prefix}-${each.key}"
  }
}

resource "aws_vpc_endpoint" "interface" {
  for_each = local.interface_endpoints

  vpc_id              = var.vpc_id
  service_name        = "com.amazonaws.${var.region}.${each.value}"
  vpc_endpoint_type   = "Interface"
  subnet_ids          = var.private_subnet_ids
  security_group_ids  = [aws_security_group.endpoints.id]
  private_dns_enabled = true

  tags = {
    Name = "${local.prefix}-${each.key}"
  }
}
