# dev: small. The pipeline's own values are in pipeline.auto.tfvars.json
# (`streamlake deploy render --env dev`).

region = "eu-west-1"

# PLACEHOLDERS: replace with the dev VPC and its private subnets (two or more, in different
# availability zones, each with an explicit route table association). Planning fails until then.
vpc_id             = "vpc-REPLACE-ME-dev"
private_subnet_ids = ["subnet-REPLACE-ME-dev-a", "subnet-REPLACE-ME-dev-b"]

# MSK Serverless: no brokers to size (the broker settings below apply only if dev is switched
# to a provisioned cluster; topics then need a replication factor of at most 2).
msk_mode                 = "serverless"
msk_broker_instance_type = "kafka.t3.small"
msk_brokers              = 2

kms_key_deletion_window = 7

# PLACEHOLDER: who gets the alarms and job events by e-mail (none in dev).
alert_emails = []
