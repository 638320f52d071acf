"""Amazon Kinesis Data Streams."""

from __future__ import annotations
