"""Shared by the integration tests that run real ``mediaexport worker`` processes: start and
stop them, POST /export to them, and produce to or read from their topics.

Every wait here is bounded generously (minutes where a busy machine could need them) and
returns as soon as its condition holds: no test may depend on the machine's speed."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest


def post_export(url: str, body: dict[str, Any], *, timeout: float = 60) -> dict[str, Any]:
    """POST ``body`` to ``url``/export; the legacy contract always answers HTTP 200."""
    req = urllib.request.Request(
        url + "/export",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        assert resp.status == 200
        out: dict[str, Any] = json.loads(resp.read())
        return out


def spawn_worker(env: dict[str, str], log: Path) -> subprocess.Popen[str]:
    """Start ``mediaexport worker`` (stderr to ``log``); see :func:`wait_ready`."""
    with open(log, "w") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "service.cli", "worker", "--loglevel", "info"],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=env,
        )


def wait_ready(proc: subprocess.Popen[str], log: Path, name: str = "worker") -> str:
    """Block until the worker prints its ready line; fail the test (stopping it) if it exits."""
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the ready line, or "" when it exited
    if not line.startswith("ready "):
        stop_worker(proc)
        pytest.fail(f"{name} did not start: {line!r}\n{log.read_text()[-3000:]}")
    return line


def stop_worker(proc: subprocess.Popen[str], timeout: float = 30) -> None:
    """SIGTERM (the worker drains), then SIGKILL if it does not exit in ``timeout`` s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    if proc.stdout is not None:
        proc.stdout.close()


def read_topic(
    bootstrap: str, topic: str, *, key: str, wait_for: int, timeout: float = 120
) -> list[dict[str, Any]]:
    """Every event with ``key`` on ``topic`` (from the beginning), once ``wait_for`` arrived."""

    async def read() -> list[dict[str, Any]]:
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
        )
        await consumer.start()
        raw: list[bytes] = []
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                for messages in batch.values():
                    for m in messages:
                        if m.key == key.encode():
                            raw.append(m.value)
                if len(raw) >= wait_for:
                    # a little longer, so that a duplicate would be seen too
                    await asyncio.sleep(1.0)
                    for messages in (await consumer.getmany(timeout_ms=500)).values():
                        raw.extend(m.value for m in messages if m.key == key.encode())
                    break
        finally:
            await consumer.stop()
        return [json.loads(value) for value in raw]

    return asyncio.run(read())


def _json_or_text(value: bytes) -> Any:
    """A record's JSON, or its text when it is none: the session broker is shared, and
    other tests put refused (non-JSON) events on the same topics on purpose."""
    try:
        return json.loads(value)
    except ValueError:
        return value.decode(errors="replace")


def read_to_end(bootstrap: str, topic: str, *, timeout: float = 120) -> dict[str, list[Any]]:
    """Every event on ``topic`` up to its end offsets when called, by key (None = tombstone).

    Reads to the offsets the broker reports, not "until a pause brings nothing": a slow
    fetch on a busy machine cannot cut the result short."""

    async def read() -> dict[str, list[Any]]:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
        )
        await consumer.start()
        out: dict[str, list[Any]] = {}
        try:
            await consumer.topics()  # fetches the metadata partitions_for_topic reads
            tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
            assert tps, f"topic {topic} has no partitions"
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            deadline = time.monotonic() + timeout
            # Tansu 0.6 can report a partition's end one short (its last record, the second of
            # a two-record batch, lies at the end offset it reports: seen on the status
            # changelog), so read until the end offsets are passed and one more poll is empty.
            drained = False
            while not drained:
                assert time.monotonic() < deadline, f"{topic} not read to its end in {timeout} s"
                batches = await consumer.getmany(timeout_ms=1000)
                for messages in batches.values():
                    for m in messages:
                        key = m.key.decode() if m.key is not None else ""
                        value = None if m.value is None else _json_or_text(m.value)
                        out.setdefault(key, []).append(value)
                behind = [tp for tp in tps if await consumer.position(tp) < ends[tp]]
                drained = not behind and not batches
        finally:
            await consumer.stop()
        return out

    return asyncio.run(read())


async def produce(bootstrap: str, topic: str, key: str, value: bytes) -> None:
    """Publish one event straight to ``topic`` (as a producer other than the ingress would)."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key.encode())
    finally:
        await producer.stop()


def changelog_values(bootstrap: str, topic: str, key: str, timeout: float) -> list[Any]:
    """Values (None = tombstone) for ``key`` until a tombstone follows a row."""

    async def read() -> list[Any]:
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
        )
        await consumer.start()
        values: list[Any] = []
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                for messages in (await consumer.getmany(timeout_ms=500)).values():
                    for m in messages:
                        if m.key is not None and m.key.decode().strip('"') == key:
                            values.append(None if m.value is None else json.loads(m.value))
                if values and values[-1] is None:
                    break
        finally:
            await consumer.stop()
        return values

    return asyncio.run(read())


def transcodes_in_flight(url: str) -> int:
    """mediaexport_transcodes_in_flight from the /metrics of the worker at ``url``."""
    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    found = re.search(r"^mediaexport_transcodes_in_flight (\S+)$", text, re.MULTILINE)
    assert found, text
    return int(float(found.group(1)))
