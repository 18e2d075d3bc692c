"""service/startup.py: a start that stops making progress is named and given up on."""

from __future__ import annotations

import asyncio
from collections import Counter
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from service.startup import StallWatch, describe, watch_start

CHANGELOG = TP("mediaexport-status-changelog", 2)


def fake_app(assigned: set[TP], offsets: dict[TP, int], highwaters: dict[TP, int]) -> Any:
    recovery = SimpleNamespace(
        active_offsets=Counter(offsets), active_highwaters=Counter(highwaters), in_recovery=True
    )
    return SimpleNamespace(
        conf=SimpleNamespace(id="mediaexport"),
        consumer=SimpleNamespace(assignment=lambda: assigned),
        tables=SimpleNamespace(recovery=recovery),
    )


def test_no_assignment_is_named_as_the_group_join() -> None:
    _, what = describe(fake_app(set(), {}, {}))
    assert what.startswith("the consumer group join (group 'mediaexport')")


def test_a_changelog_partition_short_of_its_high_watermark_is_named_with_both_offsets() -> None:
    _, what = describe(fake_app({CHANGELOG}, {CHANGELOG: 45}, {CHANGELOG: 47}))
    assert what == (
        "table recovery: changelog partitions not read to the end: "
        "mediaexport-status-changelog[2] at offset 45 of high watermark 47"
    )


def test_recovery_that_reads_on_changes_the_fingerprint() -> None:
    before, _ = describe(fake_app({CHANGELOG}, {CHANGELOG: 45}, {CHANGELOG: 47}))
    after, _ = describe(fake_app({CHANGELOG}, {CHANGELOG: 46}, {CHANGELOG: 47}))
    assert before != after


def test_the_watch_counts_from_the_last_change() -> None:
    watch = StallWatch(stall_s=10)
    assert not watch.stalled("a", 0.0)
    assert not watch.stalled("b", 9.0)  # progress: the count starts again
    assert not watch.stalled("b", 18.0)
    assert watch.stalled("b", 19.0)


def test_a_stalled_start_returns_what_it_waited_for() -> None:
    what = asyncio.run(watch_start(fake_app(set(), {}, {}), asyncio.Event(), stall_s=0))
    assert "consumer group join" in what


def test_a_ready_start_returns_nothing() -> None:
    async def run() -> str:
        ready = asyncio.Event()
        ready.set()
        return await watch_start(fake_app(set(), {}, {}), ready, stall_s=0)

    assert asyncio.run(run()) == ""


def test_a_consumer_not_started_yet_is_named_as_such() -> None:
    from faust.exceptions import ConsumerNotStarted

    def assignment() -> set[TP]:
        raise ConsumerNotStarted("Consumer thread not yet started")

    app = fake_app(set(), {}, {})
    app.consumer.assignment = assignment
    _, what = describe(app)
    assert what.startswith("the Kafka consumer's start")
