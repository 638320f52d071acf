"""Amazon Data Firehose delivery streams to S3."""

from __future__ import annotations

from typing import Any


def delivery_stream_exists(firehose: Any, name: str) -> bool:
    try:
        firehose.describe_delivery_stream(DeliveryStreamName=name)
        return True
    except firehose.exceptions.ResourceNotFoundException:
        return False


def ensure_delivery_stream(
    firehose: Any, name: str, bucket: str, prefix: str, role_arn: str
) -> bool:
    """Create a DirectPut stream delivering to ``s3://bucket/prefix``; True if created."""
    if delivery_stream_exists(firehose, name):
        return False
    firehose.create_delivery_stream(
        DeliveryStreamName=name,
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": role_arn,
            "BucketARN": f"arn:aws:s3:::{bucket}",
            "Prefix": prefix,
            "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 60},
        },
    )
    return True
