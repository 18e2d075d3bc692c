"""The faust App as built for the service: settings that faust does not expose reach the
client they are meant for."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pipeline.settings import Settings
from service.app import create_pipeline


def test_worker_consumer_asks_the_broker_for_the_short_fetch_wait(tmp_path: Path) -> None:
    # faust 0.15.3 hard-codes 1500 ms; on the embedded broker every hop waited ~half of it.
    # Guards the override (service/app.py, use_short_fetch_wait) across faust/aiokafka bumps.
    async def wait_of_the_worker_consumer() -> int:
        settings = Settings(data_dir=tmp_path, kafka_fetch_max_wait_ms=37)
        pipe = create_pipeline(settings, "127.0.0.1:9", agents=False)
        thread = pipe.app.consumer._thread
        consumer = thread._create_worker_consumer(pipe.app.transport)
        try:
            wait: int = consumer._fetch_max_wait_ms  # what aiokafka's start() hands its fetcher
            return wait
        finally:
            await consumer.stop()
            thread.thread_loop.close()  # the consumer thread's own loop, never started here

    assert asyncio.run(wait_of_the_worker_consumer()) == 37  # the setting, not faust's 1500
