"""The client-side copy of ARM's write bucket: no pacing until ARM reports what remains, then ARM's rate."""

from __future__ import annotations

import time

from shared.arm_budget import RequestCounts, WriteBucket, counting


def test_no_pacing_until_arm_says_what_remains() -> None:
    bucket = WriteBucket(capacity=200, refill_per_second=10)
    assert all(bucket.take() == 0.0 for _ in range(500))  # an endpoint without limits is never paced


def test_after_arm_reports_the_remaining_writes_they_are_paced_at_its_rate() -> None:
    bucket = WriteBucket(capacity=200, refill_per_second=100)
    bucket.observe(2)
    assert bucket.take() == 0.0
    assert bucket.take() == 0.0
    started = time.monotonic()
    waited = bucket.take()
    assert 0.005 <= waited <= 0.011 and time.monotonic() - started >= 0.005  # one token at 100/s
    bucket.exhausted()  # a 429: empty now
    assert bucket.take() > 0.0


def test_counting_is_per_block() -> None:
    with counting() as outer:
        assert isinstance(outer, RequestCounts)
        outer.add("GET")
        outer.add("POST")
    assert outer.to_dict() == {"reads": 1, "writes": 1}


def test_an_answer_without_the_header_ends_pacing() -> None:
    bucket = WriteBucket(capacity=200, refill_per_second=10)
    bucket.observe(0)
    bucket.unlimited()
    assert bucket.take() == 0.0
