"""Consumer lag of the pipeline's consumer groups, per topic and partition, from the broker.

Lag is the end offset of a partition minus the offset its group committed there, read from
the broker (ListGroups, OffsetFetch, ListOffsets) rather than from faust's own sensor: that
one reports only the partitions the reporting worker holds, and only while it runs, but a
stage whose workers all died is exactly when lag has to show.  A partition the group never
committed counts from its first offset (the agents read with ``auto_offset_reset=earliest``).

Refreshed in the background every :data:`REFRESH_S` while the ingress runs; a scrape reads
the last figures.  When the broker cannot be read the series disappear instead of going
stale (a flat lag would look healthy).  Only the groups that committed on one of the topics
count, so other applications' groups on a shared cluster stay out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import CollectorRegistry, Gauge

from ingress.background import stop_reader
from schemas import FRAMES, REQUESTS, STATUS, TRANSCODES, UPLOADS

log = logging.getLogger(__name__)

# The topics the stages consume (export.completed and export.deadletter have no consumer).
CONSUMED_TOPICS = (REQUESTS, FRAMES, TRANSCODES, UPLOADS, STATUS)
REFRESH_S = 5.0


class ConsumerLag:
    """``mediaexport_consumer_lag{group,topic,partition}``, refreshed from the broker."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        topics: Iterable[str] = CONSUMED_TOPICS,
        refresh_s: float = REFRESH_S,
    ) -> None:
        self.topics = tuple(topics)
        self.refresh_s = refresh_s
        self.gauge = Gauge(
            "mediaexport_consumer_lag",
            "Events on a partition its consumer group has not committed yet.",
            ["group", "topic", "partition"],
            registry=registry,
        )
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(
        self,
        bootstrap: str,
        *,
        client_id: str = "ingress-lag",
        kafka_options: Mapping[str, Any] | None = None,
    ) -> None:
        servers = bootstrap.split(",")
        options = dict(kafka_options or {})
        self._admin = AIOKafkaAdminClient(bootstrap_servers=servers, client_id=client_id, **options)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=servers, group_id=None, client_id=client_id, **options
        )
        await self._admin.start()
        await self._consumer.start()
        self._task = asyncio.create_task(self._run(), name="consumer-lag")

    async def stop(self) -> None:
        task, self._task = self._task, None
        consumer, self._consumer = self._consumer, None
        await stop_reader(task, consumer)
        admin, self._admin = self._admin, None
        if admin is not None:
            await admin.close()

    async def _run(self) -> None:
        failing = False
        while True:
            started = time.monotonic()
            try:
                lags = await self.read()
            except Exception as e:  # a metric must not take the ingress down, whatever broke
                if not failing:  # once per outage, not once per refresh
                    log.warning("consumer lag unavailable: %s: %s", type(e).__name__, e)
                failing = True
                self.gauge.clear()
            else:
                failing = False
                self._show(lags)
            await asyncio.sleep(max(0.0, self.refresh_s - (time.monotonic() - started)))

    def _show(self, lags: dict[tuple[str, str, int], int]) -> None:
        # clear and set in one step of the event loop: a scrape sees the old or the new set
        self.gauge.clear()
        for (group, topic, partition), lag in lags.items():
            self.gauge.labels(group=group, topic=topic, partition=str(partition)).set(lag)

    async def read(self) -> dict[tuple[str, str, int], int]:
        """(group, topic, partition) → lag, for every group that committed on the topics."""
        assert self._admin is not None and self._consumer is not None
        tps = await self._partitions()
        if not tps:
            return {}
        ends = await self._consumer.end_offsets(tps)
        firsts = await self._consumer.beginning_offsets(tps)
        out: dict[tuple[str, str, int], int] = {}
        for group, protocol in await self._admin.list_consumer_groups():
            if protocol not in ("consumer", ""):
                continue
            # Named partitions: the embedded broker (Tansu 0.6.0) answers an all-partitions
            # OffsetFetch with a reply aiokafka 0.14 cannot parse.
            committed = await self._admin.list_consumer_group_offsets(group, partitions=tps)
            offsets = {tp: meta.offset for tp, meta in committed.items()}
            if not any(offset >= 0 for offset in offsets.values()):
                continue  # not a group of this pipeline
            for tp in tps:
                position = offsets.get(tp, -1)
                if position < 0:
                    position = firsts[tp]
                out[(group, tp.topic, tp.partition)] = max(0, ends[tp] - position)
        return out

    async def _partitions(self) -> list[TopicPartition]:
        assert self._consumer is not None
        await self._consumer.topics()  # refresh metadata: topics may appear after start-up
        return [
            TopicPartition(topic, p)
            for topic in self.topics
            for p in sorted(self._consumer.partitions_for_topic(topic) or ())
        ]
