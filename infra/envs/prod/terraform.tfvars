# prod: larger. The pipeline's own values are in pipeline.auto.tfvars.json
# (`streamlake deploy render --env prod`).

region = "eu-west-1"

# PLACEHOLDERS: replace with the prod VPC and its private subnets (one per availability zone,
# each with an explicit route table association). Planning fails until then.
vpc_id             = "vpc-REPLACE-ME-prod"
private_subnet_ids = ["subnet-REPLACE-ME-prod-a", "subnet-REPLACE-ME-prod-b", "subnet-REPLACE-ME-prod-c"]

# Provisioned MSK: six brokers, two per availability zone.
msk_mode                 = "provisioned"
msk_broker_instance_type = "kafka.m7g.xlarge"
msk_brokers              = 6

kms_key_deletion_window = 30

# PLACEHOLDER: who gets the alarms and job events by e-mail.
alert_emails = ["streamlake-prod-alerts@example.com"]
