"""Entry point of the local AWS API server: moto server, with Kinesis resharding made to
behave as Kinesis does, and shard reads and writes in constant time.

moto 5 re-puts a parent shard's records when it splits or merges it (renumbering them),
keeps routing new records to the closed parent, and never ends a closed shard's iterator.
Kinesis keeps a closed parent's records where they are, routes new records to the
children, and returns no NextShardIterator once a closed shard is read to its end. The
patches below give the local stack those semantics, so that split and merge handling is
tested against the behaviour readers meet on AWS.

MillisBehindLatest is 0 only at the newest record, as on Kinesis (moto derives it from
arrival times alone, which gives 0 for records written in the same millisecond).

moto also scans a whole shard for every PutRecord and GetRecords call, so filling a stream
takes quadratic time; sequence numbers within a moto shard are consecutive integers, so
the patched calls look records up directly.

Kinesis trims records older than a stream's retention (24 hours at least), which no test
can wait for. The local server trims on demand instead: a stream tagged
``streamlake.local/trim-before-ms`` (epoch millis) loses every record that arrived before
then, as retention would; sequence numbers keep growing past trimmed records.

S3 checks a conditional write (If-None-Match, If-Match) and stores the object in one
step. moto checks, then computes the body's checksum, then stores, so two conditional PUTs
of one key racing each other can both succeed. Delta's conditional-put log store relies
on S3 to refuse the second commit of a version; the server takes conditional writes one
at a time so that it does.

moto keeps everything in memory. With ``--state-file``, the Kinesis streams and the
DynamoDB tables with their streams (what the streaming jobs read, positions included) are
saved there when the server stops on SIGTERM or SIGINT and loaded when it starts, so a
restart keeps them. S3 objects, SNS, Firehose and Glue are not kept (moto's S3 objects live
in temporary files that cannot be saved this way); `local up` creates their resources
again, empty. A server killed with SIGKILL saves nothing.

Run as ``python -m streamlake.local.moto_server -H 127.0.0.1 -p PORT [--state-file F]``.
"""

from __future__ import annotations

import pickle
import sys
import threading
from operator import attrgetter
from pathlib import Path
from typing import Any

from moto.kinesis import models
from moto.kinesis.exceptions import InvalidArgumentError
from moto.kinesis.utils import compose_shard_iterator, decompose_shard_iterator
from moto.utilities.utils import md5_hash

TRIM_TAG = "streamlake.local/trim-before-ms"
STATE_OPTION = "--state-file"


CONDITIONAL_WRITES = threading.Lock()


def trim(stream: Any) -> None:
    """Drop the records that arrived before the stream's trim tag, as retention would."""
    before = stream.tags.get(TRIM_TAG)
    if before is None:
        return
    cutoff = int(before) / 1000
    for shard in stream.shards.values():
        while shard.records:
            oldest = next(iter(shard.records))
            if shard.records[oldest].created_at >= cutoff:
                break
            shard.trimmed_through = oldest
            del shard.records[oldest]


def shard_put_record(self: Any, partition_key: str, data: str, explicit_hash_key: str) -> str:
    sequence_number = shard_max_sequence(self) + 1
    self.records[sequence_number] = models.Record(
        partition_key, data, sequence_number, explicit_hash_key
    )
    return str(sequence_number)


def shard_for_key(self: Any, partition_key: str, explicit_hash_key: str) -> Any:
    if explicit_hash_key:
        key = int(explicit_hash_key)
        if key >= 2**128:
            raise InvalidArgumentError("explicit_hash_key")
    else:
        key = int(md5_hash(partition_key.encode("utf-8")).hexdigest(), 16)
    for shard in self.shards.values():
        if shard.is_open and shard.starting_hash <= key <= shard.ending_hash:
            return shard
    return None


def shard_min_sequence(self: Any) -> int:
    return next(iter(self.records), 0)


def shard_max_sequence(self: Any) -> int:
    return next(reversed(self.records), getattr(self, "trimmed_through", 0))


def shard_get_records(
    self: Any, last_sequence_id: str, limit: int | None
) -> tuple[list[Any], int, int]:
    last = max(int(last_sequence_id), shard_min_sequence(self) - 1)
    newest = shard_max_sequence(self)
    stop = newest if limit is None else min(newest, last + limit)
    results = [self.records[n] for n in range(last + 1, stop + 1) if n in self.records]
    if not results:
        return [], int(last_sequence_id), 0
    behind = int((self.records[newest].created_at - results[-1].created_at) * 1000)
    if results[-1].sequence_number < newest:
        # Kinesis says 0 only when nothing newer is there; records written within the same
        # millisecond are still behind.
        behind = max(behind, 1)
    return results, results[-1].sequence_number, behind


def split_shard(self: Any, shard_to_split: str, new_starting_hash_key: str) -> None:
    split_at = int(new_starting_hash_key)
    shard = self.shards[shard_to_split]
    if not shard.starting_hash < split_at <= shard.ending_hash:
        raise InvalidArgumentError(
            message=f"NewStartingHashKey {split_at} is outside shard {shard.shard_id}"
        )
    if not shard.is_open:
        raise InvalidArgumentError(message=f"Shard {shard.shard_id} is already closed")
    last_id = max(self.shards.values(), key=attrgetter("_shard_id"))._shard_id
    for offset, (low, high) in enumerate(
        ((shard.starting_hash, split_at - 1), (split_at, shard.ending_hash)), start=1
    ):
        child = models.Shard(last_id + offset, low, high, parent=shard.shard_id)
        self.shards[child.shard_id] = child
    shard.is_open = False


def merge_shards(self: Any, shard_to_merge: str, adjacent_shard_to_merge: str) -> None:
    first, second = self.shards[shard_to_merge], self.shards[adjacent_shard_to_merge]
    low, high = sorted((first, second), key=attrgetter("starting_hash"))
    if low.ending_hash + 1 != high.starting_hash:
        raise InvalidArgumentError(adjacent_shard_to_merge)
    last_id = max(self.shards.values(), key=attrgetter("_shard_id"))._shard_id
    merged = models.Shard(
        last_id + 1,
        starting_hash=low.starting_hash,
        ending_hash=high.ending_hash,
        parent=first.shard_id,
        adjacent_parent=second.shard_id,
    )
    self.shards[merged.shard_id] = merged
    first.is_open = False
    second.is_open = False


def get_records(
    self: Any, stream_arn: str | None, shard_iterator: str, limit: int | None
) -> tuple[str | None, list[Any], int]:
    stream_name, shard_id, last_sequence_id = decompose_shard_iterator(shard_iterator)
    stream = self.describe_stream(stream_arn=stream_arn, stream_name=stream_name)
    trim(stream)
    shard = stream.get_shard(shard_id)
    records, last_sequence, millis_behind = shard.get_records(last_sequence_id, limit)
    read_to_end = last_sequence >= shard.get_max_sequence_number()
    if not shard.is_open and read_to_end:
        return None, records, millis_behind
    return compose_shard_iterator(stream_name, shard, last_sequence), records, millis_behind


def one_conditional_write_at_a_time(handler: Any) -> Any:
    def handle(self: Any, *args: Any, **kwargs: Any) -> Any:
        if "If-None-Match" in self.headers or "If-Match" in self.headers:
            with CONDITIONAL_WRITES:
                return handler(self, *args, **kwargs)
        return handler(self, *args, **kwargs)

    return handle


def apply() -> None:
    from moto.s3.responses import S3Response

    # PutObject, and CompleteMultipartUpload (a POST on the key).
    for name in ("put_object", "_key_response_post"):
        setattr(S3Response, name, one_conditional_write_at_a_time(getattr(S3Response, name)))
    setattr(models.Shard, "get_min_sequence_number", shard_min_sequence)  # noqa: B010
    setattr(models.Shard, "get_max_sequence_number", shard_max_sequence)  # noqa: B010
    setattr(models.Shard, "get_records", shard_get_records)  # noqa: B010
    setattr(models.Shard, "put_record", shard_put_record)  # noqa: B010
    setattr(models.Stream, "get_shard_for_key", shard_for_key)  # noqa: B010
    setattr(models.Stream, "split_shard", split_shard)  # noqa: B010
    setattr(models.Stream, "merge_shards", merge_shards)  # noqa: B010
    setattr(models.KinesisBackend, "get_records", get_records)  # noqa: B010


def persisted_backends() -> dict[str, Any]:
    """The backends a restart keeps, by service: what the streaming jobs read."""
    from moto.backends import get_backend

    return {
        "kinesis": get_backend("kinesis"),
        "dynamodb": get_backend("dynamodb"),
        "dynamodbstreams": get_backend("dynamodbstreams"),
    }


def save_state(path: Path) -> None:
    """Write the persisted services' backends (every account and region) to ``path``."""
    snapshot = {
        name: {account: dict(regions.items()) for account, regions in backends.items()}
        for name, backends in persisted_backends().items()
    }
    partial = path.with_name(f"{path.name}.partial")
    partial.write_bytes(pickle.dumps(snapshot))
    partial.chmod(0o600)
    partial.replace(path)


def load_state(path: Path) -> None:
    """Put the backends saved in ``path`` back in place."""
    # The file is this server's own, written by save_state in its owner-only state folder.
    snapshot = pickle.loads(path.read_bytes())
    backends_by_service = persisted_backends()
    for name, accounts in snapshot.items():
        backends = backends_by_service[name]
        for account, regions in accounts.items():
            for region, backend in regions.items():
                backends[account][region] = backend


def state_file_option(argv: list[str]) -> tuple[Path | None, list[str]]:
    """``--state-file F`` taken out of ``argv``; the rest is moto's."""
    if STATE_OPTION not in argv:
        return None, argv
    at = argv.index(STATE_OPTION)
    return Path(argv[at + 1]), argv[:at] + argv[at + 2 :]


def main() -> None:
    from moto.server import main as moto_main

    state_file, argv = state_file_option(sys.argv[1:])
    apply()
    if state_file is not None and state_file.exists():
        load_state(state_file)
        print(f"loaded Kinesis and DynamoDB state from {state_file}", flush=True)
    try:
        moto_main(argv)
    finally:
        # moto turns SIGTERM and SIGINT into SystemExit, which passes through here.
        if state_file is not None:
            save_state(state_file)
            print(f"saved Kinesis and DynamoDB state to {state_file}", flush=True)


if __name__ == "__main__":
    main()
