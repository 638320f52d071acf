# staging: shaped like prod (provisioned MSK), smaller. The pipeline's own values are in
# pipeline.auto.tfvars.json (`streamlake deploy render --env staging`).

region = "eu-west-1"

# PLACEHOLDERS: replace with the staging VPC and its private subnets (each with an explicit
# route table association). Planning fails until then.
vpc_id             = "vpc-REPLACE-ME-staging"
private_subnet_ids = ["subnet-REPLACE-ME-staging-a", "subnet-REPLACE-ME-staging-b", "subnet-REPLACE-ME-staging-c"]

msk_mode                 = "provisioned"
msk_broker_instance_type = "kafka.m7g.large"
msk_brokers              = 3

kms_key_deletion_window = 14

# PLACEHOLDER: who gets the alarms and job events by e-mail.
alert_emails = ["streamlake-staging-alerts@example.com"]
