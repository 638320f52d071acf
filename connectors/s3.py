"""S3 bucket administration, and an S3 client for lake locations read without a JVM."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streamlake.lake.files import LocationFiles

if TYPE_CHECKING:
    from streamlake.config.settings import Settings


def bucket_exists(s3: Any, name: str) -> bool:
    try:
        s3.head_bucket(Bucket=name)
        return True
    except s3.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket", "NotFound"):
            return False
        raise


def ensure_bucket(s3: Any, name: str, region: str) -> bool:
    """Create the bucket if it does not exist; True if created."""
    if bucket_exists(s3, name):
        return False
    kwargs: dict[str, Any] = {"Bucket": name}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**kwargs)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        return False
    return True


def s3_client_for(location: str, settings: Settings) -> Any | None:
    """A boto3 S3 client when ``location`` is on S3 (s3a:// or s3://), else None."""
    from connectors.aws import aws_endpoint

    if not location.startswith(("s3a://", "s3://")):
        return None
    return aws_endpoint(settings).client("s3")


def location_files(location: str, settings: Settings) -> LocationFiles:
    """Small files under a lake location (local or on S3), e.g. the tables' leases."""
    return LocationFiles(location, s3_client_for(location, settings))
