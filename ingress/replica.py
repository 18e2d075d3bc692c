"""A read-only replica of the whole status table, so any ingress answers a poll for any job.

The status table is a faust Table partitioned by job_id: each worker owns some partitions.
Instead of routing a poll to the partition's owner, every ingress keeps all rows in a dict,
fed by one plain consumer (no consumer group) from two sources:

- the table's changelog topic, from the beginning: the snapshot (compacted on real Kafka);
- export.status, from its end at start-up: every update folded with the same
  ``pipeline.jobs.advance`` the status agent uses, so a poll sees a change one hop after a
  stage reports it, even while the status agent's partitions are being rebalanced.

Both feeds are monotonic (``advance`` never moves a job backwards; a changelog row replaces
a row only when it is not behind it), so their overlap is harmless and the replica converges
to the table.  Cost: one small JSON document per job in memory, for as long as the job is
remembered: finished jobs are dropped on the table's tombstones (EXPORT_JOB_TTL_MS, see
pipeline/retention.py), and by the replica itself a little later as a backstop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

import schemas
from ingress.background import stop_reader
from pipeline.errors import ExportError
from pipeline.jobs import FINAL_STATES, STATES, JobStatus, advance
from pipeline.retention import REPLICA_GRACE_MS, expired_status, prune_interval_s
from pipeline.stages.context import now_ms
from schemas import STATUS

log = logging.getLogger(__name__)


Listener = Callable[[str, dict[str, Any] | None, dict[str, Any] | None], None]


class StatusReplica:
    """job_id -> status dict (JobStatus.to_dict()), fed from the status changelog."""

    def __init__(
        self,
        bootstrap: str,
        changelog_topic: str,
        *,
        status_topic: str = STATUS,
        client_id: str = "ingress",
        ttl_ms: int | None = None,
        clock: Callable[[], int] = now_ms,
        fetch_max_wait_ms: int = 50,
        kafka_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        # TLS/SASL keywords, the ones faust's clients use (service/kafka_auth.py)
        self.kafka_options = dict(kafka_options or {})
        self.ttl_ms = ttl_ms  # finished jobs older than this are dropped (None: never)
        self.clock = clock
        self._next_prune = 0.0
        self.topic = changelog_topic
        self.status_topic = status_topic
        self.client_id = client_id
        # With aiokafka's 500 the last hop of every job (its final status reaching this
        # replica) cost up to ~250 ms on the embedded Tansu, which holds a fetch over several
        # partitions about half its wait even when a record is there (service/app.py).
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.rows: dict[str, dict[str, Any]] = {}
        self._unfinished: set[str] = set()  # job ids whose row is not done/failed
        # job_id -> futures of the requests waiting for that job's row to change: a change
        # wakes only its job's waiters (20 POSTs waiting at once: each status event used to
        # wake all 20, for ~8 events a job).
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._caught_up = asyncio.Event()
        # (job_id, old row, new row or None when dropped), called on every change
        self._listeners: list[Listener] = []

    def get(self, job_id: str) -> dict[str, Any] | None:
        return self.rows.get(job_id)

    def unfinished_count(self) -> int:
        """Jobs not done or failed yet (the ingress's overload check reads this per POST)."""
        return len(self._unfinished)

    def listen(self, fn: Listener) -> None:
        self._listeners.append(fn)

    async def start(self, timeout: float = 30.0) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap.split(","),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id=self.client_id,
            fetch_max_wait_ms=self.fetch_max_wait_ms,
            **self.kafka_options,
        )
        await consumer.start()
        self._consumer = consumer
        tps = [
            TopicPartition(self.topic, p)
            for p in sorted(await self._partitions(consumer, self.topic, timeout))
        ]
        live = [
            TopicPartition(self.status_topic, p)
            for p in sorted(await self._partitions(consumer, self.status_topic, timeout))
        ]
        consumer.assign(tps + live)
        await consumer.seek_to_beginning(*tps)
        await consumer.seek_to_end(*live)
        end = await consumer.end_offsets(tps)
        self._task = asyncio.create_task(self._run(end), name="status-replica")
        # Answer polls only once what the table held at start-up has been read.
        await asyncio.wait_for(self._caught_up.wait(), timeout)

    async def _partitions(self, consumer: AIOKafkaConsumer, topic: str, timeout: float) -> set[int]:
        deadline = time.monotonic() + timeout
        while True:
            await consumer.topics()  # refresh metadata
            parts = consumer.partitions_for_topic(topic)
            if parts:
                return set(parts)
            if time.monotonic() > deadline:
                raise TimeoutError(f"topic {topic} does not exist")
            await asyncio.sleep(0.2)

    async def _run(self, end: dict[TopicPartition, int]) -> None:
        assert self._consumer is not None
        pending = {tp for tp, off in end.items() if off > 0}
        if not pending:
            self._caught_up.set()
        while True:
            batches = await self._consumer.getmany(timeout_ms=500)
            for tp, messages in batches.items():
                for msg in messages:
                    if tp.topic == self.status_topic:
                        self._fold(msg.value)
                    else:
                        self._apply(msg.key, msg.value)
                    if tp in pending and msg.offset + 1 >= end[tp]:
                        pending.discard(tp)
            if not self._caught_up.is_set() and not pending:
                self._caught_up.set()
            if self.ttl_ms is not None and time.monotonic() >= self._next_prune:
                self._next_prune = time.monotonic() + prune_interval_s(self.ttl_ms)
                self.prune()

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        job_id = key.decode("utf-8", "replace")
        if job_id.startswith('"'):  # faust writes changelog keys JSON-encoded
            try:
                job_id = str(orjson.loads(key))
            except ValueError:
                return
        if value is None:  # a tombstone: the job was pruned from the table
            self._drop(job_id)
            return
        try:
            row = orjson.loads(value)
        except ValueError:
            log.warning("status changelog: undecodable row for %s", job_id)
            return
        if isinstance(row, dict) and not _behind(row, self.rows.get(job_id)):
            self._set(job_id, row)

    def fold_sent(self, value: bytes) -> None:
        """Fold a status event this process has just sent, without waiting for it to come
        back from the broker (local delivery, agents/local.py).  Its Kafka copy is folded
        again on arrival, which changes nothing: ``advance`` of the same event twice is the
        same row."""
        self._fold(value)

    def _fold(self, value: bytes | None) -> None:
        try:
            update = schemas.decode(STATUS, value)
            current = self.rows.get(update.job_id)
            new = advance(JobStatus.from_dict(current) if current else None, update)
        except (ValueError, TypeError, AttributeError, ExportError):
            return  # the status agent dead-letters bad updates; the replica just skips them
        self._set(update.job_id, new.to_dict())

    def _set(self, job_id: str, row: dict[str, Any]) -> None:
        old = self.rows.get(job_id)
        self.rows[job_id] = row
        if row.get("state") in FINAL_STATES:
            self._unfinished.discard(job_id)
        else:
            self._unfinished.add(job_id)
        for fn in self._listeners:
            fn(job_id, old, row)
        self._wake(job_id)

    def prune(self) -> list[str]:
        """Drop finished jobs past the TTL.  A backstop: rows normally go with the status
        table's tombstones, which come earlier (pipeline/retention.py)."""
        if self.ttl_ms is None:
            return []
        expired = expired_status(
            self.rows, now_ms=self.clock(), ttl_ms=self.ttl_ms, grace_ms=REPLICA_GRACE_MS
        )
        for job_id in expired:
            self._drop(job_id)
        return expired

    def _drop(self, job_id: str) -> None:
        old = self.rows.pop(job_id, None)
        self._unfinished.discard(job_id)
        if old is not None:
            for fn in self._listeners:
                fn(job_id, old, None)
        self._wake(job_id)

    def _wake(self, job_id: str) -> None:
        for fut in self._waiters.pop(job_id, ()):
            if not fut.done():
                fut.set_result(None)

    async def wait_for(
        self, job_id: str, predicate: Callable[[dict[str, Any] | None], bool], timeout: float
    ) -> dict[str, Any] | None:
        """Wait up to ``timeout`` s until predicate(row) holds; return the row either way."""
        deadline = time.monotonic() + timeout
        while not predicate(self.rows.get(job_id)):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            changed = asyncio.get_running_loop().create_future()
            self._waiters.setdefault(job_id, set()).add(changed)
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed, left)
            finally:
                waiting = self._waiters.get(job_id)
                if waiting is not None:
                    waiting.discard(changed)
                    if not waiting:
                        del self._waiters[job_id]
        return self.rows.get(job_id)

    async def wait_final(self, job_id: str, timeout: float) -> dict[str, Any] | None:
        return await self.wait_for(
            job_id, lambda row: row is not None and row.get("state") in FINAL_STATES, timeout
        )

    async def stop(self) -> None:
        task, self._task = self._task, None
        consumer, self._consumer = self._consumer, None
        await stop_reader(task, consumer)


def _rank(row: dict[str, Any]) -> tuple[int, int, int]:
    state = row.get("state")
    order = 99 if state in FINAL_STATES else (STATES.index(state) if state in STATES else -1)
    return (order, int(row.get("updated_at_ms") or 0), len(row.get("stages") or {}))


def _behind(row: dict[str, Any], current: dict[str, Any] | None) -> bool:
    """True when a changelog row is older than what the replica already folded."""
    return current is not None and _rank(row) < _rank(current)
