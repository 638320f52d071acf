terraform {
  required_version = ">= 1.10"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
    kafka = {
      source  = "Mongey/kafka"
      version = "~> 0.8"
    }
  }
}
