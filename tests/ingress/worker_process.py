"""Shared by the integration tests that run real ``mediaexport worker`` processes: start and
stop them, POST /export to them, and read what they published on a topic."""

from __future__ import annotations

import asyncio
import json
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
            [sys.executable, "-m", "pipeline.cli", "worker", "--loglevel", "info"],
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
    bootstrap: str, topic: str, *, key: str, wait_for: int, timeout: float = 20
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
