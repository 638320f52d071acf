terraform {
  required_version = ">= 1.10"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
    # Topics are created on the MSK cluster through the Kafka protocol (IAM auth); the
    # environment configures the provider with the cluster's bootstrap brokers.
    kafka = {
      source  = "Mongey/kafka"
      version = "~> 0.8"
    }
  }
}
