# State in S3, locked with S3's own lock file (no DynamoDB table). The state bucket is
# created once per account, outside this configuration (see infra/README.md).
terraform {
  backend "s3" {
    bucket       = "streamlake-dev-terraform-state"
    key          = "streamlake/dev/pipeline.tfstate"
    region       = "eu-west-1"
    encrypt      = true
    use_lockfile = true
  }
}
