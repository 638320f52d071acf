"""A Spark streaming source over sharded change logs: Kinesis Data Streams and DynamoDB
Streams share the model (shards with parents, sequence numbers, iterators, GetRecords)."""

from __future__ import annotations
