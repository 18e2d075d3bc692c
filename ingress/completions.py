"""Stage durations from export.completed: the ``timings`` each finished job carries.

The status table's ``stages`` cannot give them: a stage reports its start there but its
end only as the next state's start (or not at all: a thumbnail's ``frames`` never ends in
the table), and progress reports add keys named after states (``accepted``,
``transcoding``).  The completed event's ``timings`` are what the stages measured, under
the names they use (resolve, waiting_live, frames, transcode, upload), so the histogram is
fed from them.

One plain consumer (no consumer group) reads export.completed from its end at start-up: the
histogram counts the jobs that finished since this process started, cluster-wide (every
ingress reads every completion, so do not sum it across ingresses).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import Histogram

from ingress.background import stop_reader
from schemas import COMPLETED

log = logging.getLogger(__name__)


class CompletedTimings:
    """Observes the stage timings of every ``ok`` export.completed event into ``histogram``
    (labelled ``stage``)."""

    def __init__(self, histogram: Histogram, *, topic: str = COMPLETED) -> None:
        self.histogram = histogram
        self.topic = topic
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(
        self,
        bootstrap: str,
        *,
        client_id: str = "ingress-timings",
        kafka_options: Mapping[str, Any] | None = None,
    ) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap.split(","),
            group_id=None,
            enable_auto_commit=False,
            client_id=client_id,
            **(kafka_options or {}),
        )
        await consumer.start()
        self._consumer = consumer
        await consumer.topics()
        parts = consumer.partitions_for_topic(self.topic) or set()
        if not parts:  # the worker declares its topics before the ingress starts
            log.warning("no topic %s: stage durations will not be measured", self.topic)
            return
        tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        self._task = asyncio.create_task(self._run(consumer), name="completed-timings")

    async def stop(self) -> None:
        task, self._task = self._task, None
        consumer, self._consumer = self._consumer, None
        await stop_reader(task, consumer)

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=1000)
            for messages in batches.values():
                for msg in messages:
                    self.observe(msg.value)

    def observe(self, value: bytes | None) -> None:
        """One export.completed value (a tombstone or a failed job observes nothing)."""
        if value is None:
            return
        try:
            event = orjson.loads(value)
        except orjson.JSONDecodeError:
            return  # the upload stage validates what it writes; nothing to measure here
        if not isinstance(event, dict) or event.get("outcome") != "ok":
            return
        for stage, timing in _timings(event).items():
            start, end = timing.get("start_ms"), timing.get("end_ms")
            if isinstance(start, int) and isinstance(end, int) and end >= start:
                self.histogram.labels(stage=stage).observe((end - start) / 1000)


def _timings(event: dict[str, Any]) -> dict[str, dict[str, Any]]:
    timings = event.get("timings")
    if not isinstance(timings, dict):
        return {}
    return {str(k): v for k, v in timings.items() if isinstance(v, dict)}
