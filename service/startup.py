"""A bounded start: a worker that makes no progress towards ready says what it waits for and
exits, instead of hanging silently.

faust prints nothing between "ShortWaitConsumerThread: Starting..." and ready at our log
level, and a start waits for two things: the consumer group join (partitions assigned) and
table recovery (every active changelog partition read up to the high watermark its
ListOffsets reported).  A restarted worker against the embedded Tansu was once seen to wait
120 s with no line at all (bench/split.py; bench/repro_restart.py loops that sequence).
Progress, not time, is what is bounded: a long recovery that keeps reading is never cut
short, a wait that has not moved for ``stall_s`` is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from faust.exceptions import ConsumerNotStarted

log = logging.getLogger("mediaexport")

STALL_S = 60.0  # no progress for this long: stuck (a healthy start is ready in seconds)
CHECK_S = 1.0


class StartupStalled(RuntimeError):
    """The worker made no progress towards ready for ``STALL_S``; the message names the wait."""


def describe(app: Any) -> tuple[Any, str]:
    """(a fingerprint of the start's progress, what it waits for) for a faust App."""
    try:
        assigned = frozenset(app.consumer.assignment())
    except ConsumerNotStarted:  # faust's consumer thread is still connecting
        return ("consumer",), "the Kafka consumer's start (its thread is not running yet)"
    if not assigned:
        return ("join",), (
            f"the consumer group join (group {app.conf.id!r}): no partition assigned yet"
        )
    recovery = app.tables.recovery
    offsets = dict(recovery.active_offsets)
    behind = {
        tp: (offsets.get(tp), hw)
        for tp, hw in recovery.active_highwaters.items()
        if hw is not None and offsets.get(tp, -1) < hw  # -1: nothing read yet
    }
    fingerprint = (assigned, tuple(sorted(offsets.items())), recovery.in_recovery)
    if behind:
        parts = ", ".join(
            f"{tp.topic}[{tp.partition}] at offset {off} of high watermark {hw}"
            for tp, (off, hw) in sorted(behind.items())
        )
        return fingerprint, f"table recovery: changelog partitions not read to the end: {parts}"
    state = "in recovery" if recovery.in_recovery else "recovery not started or ended"
    return fingerprint, (
        f"faust's start after the group join ({len(assigned)} partitions assigned, {state})"
    )


@dataclass
class StallWatch:
    """Feeds on (fingerprint, description) samples; says when one has not changed for long."""

    stall_s: float = STALL_S
    _last: Any = None
    _since: float = 0.0
    _seen: bool = False

    def observe(self, fingerprint: Any, now: float) -> float:
        """Seconds the fingerprint has stayed the same as of ``now``."""
        if not self._seen or fingerprint != self._last:
            self._last, self._since, self._seen = fingerprint, now, True
        return now - self._since

    def stalled(self, fingerprint: Any, now: float) -> bool:
        return self.observe(fingerprint, now) >= self.stall_s


async def watch_start(app: Any, ready: asyncio.Event, *, stall_s: float = STALL_S) -> str:
    """Return once ``ready`` is set (""), or the description of a wait that stalled."""
    watch = StallWatch(stall_s)
    loop = asyncio.get_running_loop()
    reported = ""
    while not ready.is_set():
        fingerprint, what = describe(app)
        kind = what.split(":")[0]
        if kind != reported:  # each new kind of wait once: a stuck start shows where it is
            log.info("start: waiting for %s", what)
            reported = kind
        if watch.stalled(fingerprint, loop.time()):
            return what
        with contextlib.suppress(TimeoutError):  # not ready yet: look again
            await asyncio.wait_for(ready.wait(), CHECK_S)
    return ""
