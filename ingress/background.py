"""Stopping what the ingress runs beside its HTTP server: a reading task and its consumer."""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka import AIOKafkaConsumer


async def stop_reader(task: asyncio.Task[None] | None, consumer: AIOKafkaConsumer | None) -> None:
    """Cancel the task that reads with ``consumer`` and wait for it, then close the consumer
    (in that order: a consumer closed under a running getmany raises in the task)."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if consumer is not None:
        await consumer.stop()
