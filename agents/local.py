"""Local delivery: an event this process sends to a partition its own agents consume is handed
to that agent at once, as well as written to Kafka.

Why: on the embedded Tansu a broker hop (one agent's send to the next agent's receipt) costs
~20-40 ms however the fetch wait is tuned (README, Latency), and a thumbnail crosses four.
In the one-box ``up``, and on a cluster wherever a job's partitions happen to be owned by
the same worker, the next agent is in this very process: it can start now.

What does not change: every event still goes to its topic, by the same send; the status
table is still folded from export.status by the status agent only.  The copy that later
arrives from Kafka is recognised by (topic, partition, a digest of its value) and only
acknowledged, after the local handling has finished: so its offset is committed when it
would have been without local delivery, and a crash before that re-delivers it to whoever
owns the partition (the stages are idempotent).  Nothing is lost either while an event is
only in the producer's buffer: faust flushes the producer before it commits the offset of
the event whose handling sent it, so a crash re-delivers that one.

Handing over does not wait for the broker's ack (~4-8 ms a send here), except for
export.requests: the resolve agent tells a redelivery from a second event of a job by the
record's offset (agents/resolve.py), so a request is handed over with the offset its ack
gave (the ingress and the supervisor wait for that ack anyway).

Bounds stay where they were: handlers run in the agents' own ``deliver`` functions (the
same per-partition locks and heartbeats) and the CPU work behind ``StageContext.cpu``'s
per-worker slots.  ``EXPORT_LOCAL_DELIVERY=off`` turns it off.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

Deliver = Callable[[Any], Coroutine[Any, Any, None]]
SentHook = Callable[[bytes], None]
Claim = tuple[str, int, bytes]  # topic, partition, digest of the value
# Claims remembered: one per event handed over or taken from Kafka, dropped when its second
# copy comes.  An event whose second copy never comes (its partition moved to another worker)
# is forgotten with the oldest; at worst that copy is handled again, which is idempotent.
MAX_CLAIMS = 4096


@dataclass(frozen=True)
class LocalMessage:
    topic: str
    partition: int
    offset: int | None  # known when the send waited for its ack


@dataclass(frozen=True)
class LocalEvent:
    """The same fields an agent reads of a faust event: raw key and value, and the record's
    position in Kafka."""

    key: bytes
    value: bytes
    message: LocalMessage


class LocalDelivery:
    """Which topics' agents run here, what was handed to them, and who listens to sends."""

    def __init__(self, *, enabled: bool = True, max_claims: int = MAX_CLAIMS) -> None:
        self.enabled = enabled
        self.max_claims = max_claims
        self._deliver: dict[str, Deliver] = {}
        self._needs_offset: set[str] = set()
        self._sent: dict[str, list[SentHook]] = {}
        # claim -> the local handling (a task), or None when the Kafka copy came first
        self._claims: OrderedDict[Claim, asyncio.Task[None] | None] = OrderedDict()
        # (topic, partition) -> its events being handled here now
        self._running: dict[tuple[str, int], set[asyncio.Task[None]]] = {}
        self.handed = 0  # events handed to an agent here (for tests and the bench)
        self.acknowledged = 0  # Kafka copies only acknowledged, handled here already

    def consumer(self, topic: str, deliver: Deliver, *, needs_offset: bool = False) -> None:
        """``deliver`` handles ``topic``'s events in this process (an agent's loop body);
        ``needs_offset``: hand an event over only once its ack gave its offset."""
        self._deliver[topic] = deliver
        if needs_offset:
            self._needs_offset.add(topic)

    def on_sent(self, topic: str, hook: SentHook) -> None:
        """Call ``hook`` with the value of every event this process sends to ``topic``
        (the ingress's status replica, when it runs in the worker's process)."""
        self._sent.setdefault(topic, []).append(hook)

    def wants(self, topic: str) -> bool:
        """True when an agent here may take ``topic``'s events as they are sent."""
        return self.enabled and topic in self._deliver

    def needs_offset(self, topic: str) -> bool:
        return topic in self._needs_offset

    def sent(self, topic: str, value: bytes) -> None:
        if self.enabled:
            for hook in self._sent.get(topic, ()):
                hook(value)

    def hand(
        self, topic: str, key: bytes, value: bytes, partition: int, offset: int | None
    ) -> bool:
        """Start handling a sent event here; False when it is not ours to hand over or its
        Kafka copy came first."""
        deliver = self._deliver.get(topic) if self.enabled else None
        if deliver is None or (offset is None and topic in self._needs_offset):
            return False
        claim = (topic, partition, _digest(value))
        if claim in self._claims:
            return False
        event = LocalEvent(key, value, LocalMessage(topic, partition, offset))
        # A fresh context: the task is no part of the sender's faust event (current_event).
        task = asyncio.create_task(
            deliver(event), name=f"local {topic}", context=contextvars.Context()
        )
        running = self._running.setdefault((topic, partition), set())
        running.add(task)
        task.add_done_callback(running.discard)
        self._remember(claim, task)
        self.handed += 1
        log.debug("handed %s[%s] to the agent here", topic, partition)
        return True

    async def from_kafka(self, event: Any, deliver: Deliver) -> None:
        """An agent's loop body: handle the Kafka copy of an event, unless it was handed
        over here; then wait until that handling ends (the offset is committed after it)."""
        msg = event.message
        claim = (msg.topic, msg.partition, _digest(event.value or b""))
        task = self._claims.pop(claim, None)
        if task is None:
            self._remember(claim, None)  # a late hand() of the same record does nothing
            await deliver(event)
            return
        where = (msg.partition, msg.offset)
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.cancelled():
                raise  # this agent is stopping: the copy stays uncommitted
            log.info("local handling of %s[%s]@%s cancelled; again", msg.topic, *where)
        except Exception:  # deliver() guards its handler; this is a bug around it
            log.exception("local handling of %s[%s]@%s broke; again", msg.topic, *where)
        else:
            self.acknowledged += 1
            return
        await deliver(event)

    def _remember(self, claim: Claim, task: asyncio.Task[None] | None) -> None:
        self._claims[claim] = task
        while len(self._claims) > self.max_claims:
            self._claims.popitem(last=False)

    async def finish(self, partitions: Iterable[tuple[str, int]], timeout: float) -> None:
        """Wait (up to ``timeout`` s) for what is handled here of ``partitions``: called as
        they are revoked, before their new owner starts on their uncommitted events, which it
        handles again (faust waits the same way for the events its agents hold; an event
        handed over here may not have been fetched from Kafka yet)."""
        tasks = [t for tp in partitions for t in self._running.get((tp[0], tp[1]), ())]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    async def stop(self) -> None:
        """Cancel what is still being handled (its Kafka copy is not committed: it is
        handled again after a restart)."""
        tasks = [t for running in self._running.values() for t in running]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _digest(value: bytes) -> bytes:
    return hashlib.blake2b(value, digest_size=16).digest()
