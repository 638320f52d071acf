"""Amazon SNS topics, where alerts and notifications are published."""

from __future__ import annotations

from typing import Any


def topic_arn(sns: Any, name: str) -> str | None:
    paginator = sns.get_paginator("list_topics")
    for page in paginator.paginate():
        for topic in page.get("Topics", []):
            arn: str = topic["TopicArn"]
            if arn.rsplit(":", 1)[-1] == name:
                return arn
    return None


def topic_exists(sns: Any, name: str) -> bool:
    return topic_arn(sns, name) is not None


def ensure_topic(sns: Any, name: str) -> bool:
    """Create the topic if it does not exist; True if created (CreateTopic is idempotent)."""
    existed = topic_exists(sns, name)
    sns.create_topic(Name=name)
    return not existed
