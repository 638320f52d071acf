"""The driver's record of recent dedup keys: it may keep a key longer than the watermark
needs, never shorter, since a batch it clears skips the exact lookup in processed."""

from __future__ import annotations

import pytest

from streaming.transforms import dedup
from streaming.transforms.dedup import RecentKeys, repeats_a_key

MINUTE_US = 60_000_000


def test_a_key_is_found_until_the_bound_passes_its_whole_bucket() -> None:
    keys = RecentKeys(bucket_us=MINUTE_US)
    keys.add([11, 12], newest_us=10 * MINUTE_US + 5)  # bucket [10 min, 11 min)
    assert keys.holds_any([12, 99]) and not keys.holds_any([98, 99])
    keys.expire(bound_us=10 * MINUTE_US + 30_000_000)  # the bound inside the bucket: kept
    assert keys.holds_any([11])
    keys.expire(bound_us=11 * MINUTE_US)  # the whole bucket older than the bound
    assert not keys.holds_any([11, 12]) and keys.size == 0


def test_keys_are_kept_as_long_as_the_newest_event_of_their_batch() -> None:
    keys = RecentKeys(bucket_us=MINUTE_US)
    keys.add([1], newest_us=2 * MINUTE_US)
    keys.add([2], newest_us=30 * MINUTE_US)  # a batch spanning old and new events
    keys.expire(bound_us=20 * MINUTE_US)
    assert not keys.holds_any([1]) and keys.holds_any([2])


def test_past_the_limit_it_gives_up_rather_than_forget_a_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dedup, "MAX_RECENT_KEYS", 3)
    keys = RecentKeys(bucket_us=MINUTE_US)
    keys.add([1, 2, 3], newest_us=MINUTE_US)
    assert not keys.overflowed
    keys.add([4], newest_us=MINUTE_US)
    assert keys.overflowed and keys.size == 0


def test_a_repeated_hash_counts_as_a_repeated_key() -> None:
    assert repeats_a_key([5, 6, 5])
    assert not repeats_a_key([5, 6, 7])
    assert not repeats_a_key([])
