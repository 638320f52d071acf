"""Deployment to AWS: the Terraform variables of infra/ rendered from the pipeline."""
