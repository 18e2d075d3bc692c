"""GET /metrics: what an operator alerts on, in a text format Prometheus's parser reads.

Every scrape is parsed with prometheus_client's own parser, and checked by ``promtool check
metrics`` where promtool is on the PATH; consumer lag and the completed-event timings are
read from the real broker."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path

import orjson
import pytest
from aiohttp.test_utils import TestClient
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.parser import text_string_to_metric_families

import schemas
from agents.deadletter import dead_letter
from ingress.completions import CompletedTimings
from ingress.lag import ConsumerLag
from ingress.metrics import STAGE_BUCKETS
from pipeline import stages
from tests.agents.fakes import event
from tests.ingress.http_client import BODY, FakeReplica, ingress_for, with_client

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
WAIT_S = 120.0  # a bound for a busy machine, not a budget


def _scrape(text: str) -> Samples:
    promtool = shutil.which("promtool")
    if promtool is not None:
        check = subprocess.run(
            [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
        )
        assert check.returncode == 0, check.stdout + check.stderr
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _registry_samples(registry: CollectorRegistry) -> Samples:
    from prometheus_client import generate_latest

    return _scrape(generate_latest(registry).decode())


def _finish(replica: FakeReplica, job_id: str, state: str, **fields: object) -> None:
    replica.fold(stages.status_event(job_id, "accepted", at_ms=1, kind="media"))
    replica.fold(stages.status_event(job_id, state, at_ms=2, **fields))  # type: ignore[arg-type]


def _completed(job_id: str, outcome: str, timings: dict[str, dict[str, int]]) -> bytes:
    """An export.completed value as the upload stage writes it (only what is read here)."""
    return orjson.dumps({"job_id": job_id, "outcome": outcome, "timings": timings})


def test_metrics_in_prometheus_text_format(tmp_path: Path) -> None:
    pipe, replica, ingress = ingress_for(tmp_path, max_pending=1)
    release = threading.Event()

    async def check(client: TestClient) -> None:
        job = (await (await client.post("/export", json=BODY)).json())["JobId"]
        await client.post("/export", json={**BODY, "Duration": 1000})  # refused: overloaded
        replica.fold(stages.status_event(job, "accepted", at_ms=1000, kind="media"))
        replica.fold(stages.status_event(job, "done", at_ms=5000, lack_length_ms=0))
        replica.fold(stages.status_event(job, "done", at_ms=5001, lack_length_ms=0))  # again
        error = {"type": "MediaError", "code": -5, "message": "bad"}
        _finish(replica, "F" * 32, "failed", error=error)
        replica.fold(stages.status_event("E" * 32, "transcoding", at_ms=3, kind="media"))
        dead = event(schemas.REQUESTS, b"not json", "k")
        await dead_letter(pipe, dead, "not JSON", None)  # type: ignore[arg-type]
        # one transcode holds a slot while the scrape happens
        running = asyncio.ensure_future(pipe.ctx.cpu("transcode", release.wait, 10))
        while pipe.ctx.in_flight("transcode") == 0:
            await asyncio.sleep(0.01)

        resp = await client.get("/metrics")
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        m = _scrape(await resp.text())
        release.set()
        await running

        def jobs(state: str) -> float:
            return m[("mediaexport_jobs", (("state", state),))]

        assert (jobs("done"), jobs("failed"), jobs("transcoding"), jobs("waiting_live")) == (
            1,
            1,
            1,
            0,
        )
        assert m[("mediaexport_jobs_accepted_total", ())] == 1
        assert m[("mediaexport_jobs_rejected_total", (("reason", "overloaded"),))] == 1
        assert m[("mediaexport_jobs_completed_total", ())] == 1  # a redelivered done: once
        assert m[("mediaexport_transcodes_in_flight", ())] == 1
        assert m[("mediaexport_frame_grabs_in_flight", ())] == 0
        assert m[("mediaexport_transcodes_limit", ())] == pipe.settings.max_transcodes
        assert m[("mediaexport_deadletter_events_total", ())] == 1
        after = _scrape(await (await client.get("/metrics")).text())
        assert after[("mediaexport_transcodes_in_flight", ())] == 0

    with_client(ingress, check)
    pipe.ctx.close()


def test_a_failed_job_counts_under_its_error_code(tmp_path: Path) -> None:
    pipe, replica, ingress = ingress_for(tmp_path)

    async def check(client: TestClient) -> None:
        error = {"type": "MediaError", "code": -5, "message": "bad"}
        _finish(replica, "F" * 32, "failed", error=error)
        _finish(replica, "F" * 32, "failed", error=error)  # seen again: counted once
        m = _scrape(await (await client.get("/metrics")).text())

        def failed(code: int) -> float:
            return m[("mediaexport_jobs_failed_total", (("error_code", str(code)),))]

        assert failed(-5) == 1
        assert (failed(-1), failed(-6), failed(-9)) == (0, 0, 0)  # present before any failure

    with_client(ingress, check)
    pipe.ctx.close()


def test_http_requests_are_counted_by_route_and_status(tmp_path: Path) -> None:
    pipe, _, ingress = ingress_for(tmp_path)

    async def check(client: TestClient) -> None:
        job = (await (await client.post("/export", json=BODY)).json())["JobId"]
        await client.get(f"/export/{job}")
        await client.get(f"/export/{'A' * 32}")  # another id: the same route
        assert (await client.get("/nowhere/at/all")).status == 404
        assert (await client.get("/healthz")).status == 200
        m = _scrape(await (await client.get("/metrics")).text())

        def requests(route: str, method: str, status: int) -> float:
            labels = (("method", method), ("route", route), ("status", str(status)))
            return m.get(("mediaexport_http_requests_total", labels), 0)

        assert requests("/export", "POST", 200) == 1
        assert requests("/export/{job_id}", "GET", 200) == 2
        assert requests("unmatched", "GET", 404) == 1
        assert requests("/healthz", "GET", 200) == 1
        timed = (("method", "GET"), ("route", "/export/{job_id}"))
        assert m[("mediaexport_http_request_duration_seconds_count", timed)] == 2
        assert (
            m[("mediaexport_http_request_duration_seconds_bucket", (("le", "+Inf"), *timed))] == 2
        )

    with_client(ingress, check)
    pipe.ctx.close()


def test_stage_durations_are_the_completed_events_timings() -> None:
    registry = CollectorRegistry()
    histogram = Histogram("d", "d", ["stage"], buckets=STAGE_BUCKETS, registry=registry)
    timings = CompletedTimings(histogram)
    thumbnail = {
        "resolve": {"start_ms": 1000, "end_ms": 1250},
        "frames": {"start_ms": 1250, "end_ms": 1750},
        "upload": {"start_ms": 1750, "end_ms": 1800},
    }
    timings.observe(_completed("A" * 32, "ok", thumbnail))
    timings.observe(_completed("B" * 32, "failed", {"resolve": {"start_ms": 0, "end_ms": 9}}))
    timings.observe(b"not json")
    timings.observe(None)  # a tombstone
    m = _registry_samples(registry)
    counts = {labels[0][1]: v for (name, labels), v in m.items() if name == "d_count"}
    assert counts == {"resolve": 1, "frames": 1, "upload": 1}
    assert m[("d_sum", (("stage", "frames"),))] == 0.5
    assert m[("d_sum", (("stage", "resolve"),))] == 0.25


# --- against the real broker -------------------------------------------------------------


async def _new_topic(bootstrap: str, partitions: int) -> str:
    topic = f"test.metrics.{uuid.uuid4().hex[:12]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()
    return topic


async def _produce(bootstrap: str, topic: str, values: list[bytes], partition: int = 0) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=b"k", partition=partition)
    finally:
        await producer.stop()


async def _wait(condition: object, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"no {what} within {WAIT_S} s"
        await asyncio.sleep(0.2)


@pytest.mark.integration
def test_lag_shows_for_a_topic_with_unconsumed_events(kafka_bootstrap: str) -> None:
    group = f"test-lag-{uuid.uuid4().hex[:8]}"

    async def main() -> None:
        topic = await _new_topic(kafka_bootstrap, 2)
        await _produce(kafka_bootstrap, topic, [b"1", b"2", b"3"])
        consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            consumer.assign([TopicPartition(topic, 0)])
            await consumer.commit({TopicPartition(topic, 0): 1})  # one of three handled
        finally:
            await consumer.stop()
        registry = CollectorRegistry()
        lag = ConsumerLag(registry, topics=[topic], refresh_s=0.2)
        await lag.start(kafka_bootstrap)
        try:

            def shown(partition: int) -> float | None:
                labels = (("group", group), ("partition", str(partition)), ("topic", topic))
                return _registry_samples(registry).get(("mediaexport_consumer_lag", labels))

            await _wait(lambda: shown(0) == 2, "lag of 2 on partition 0")
            assert shown(1) == 0  # never committed, nothing on it: no lag
            await _produce(kafka_bootstrap, topic, [b"4"], partition=1)
            await _wait(lambda: shown(1) == 1, "lag on partition 1, never committed")
        finally:
            await lag.stop()

    asyncio.run(main())


@pytest.mark.integration
def test_stage_durations_are_read_from_export_completed(kafka_bootstrap: str) -> None:
    async def main() -> None:
        topic = await _new_topic(kafka_bootstrap, 2)
        registry = CollectorRegistry()
        histogram = Histogram("d", "d", ["stage"], buckets=STAGE_BUCKETS, registry=registry)
        timings = CompletedTimings(histogram, topic=topic)
        await timings.start(kafka_bootstrap)
        try:
            clip = {
                "resolve": {"start_ms": 0, "end_ms": 100},
                "transcode": {"start_ms": 100, "end_ms": 3100},
            }
            await _produce(kafka_bootstrap, topic, [_completed("C" * 32, "ok", clip)])

            def count(stage: str) -> float | None:
                return _registry_samples(registry).get(("d_count", (("stage", stage),)))

            await _wait(lambda: count("transcode") == 1, "transcode duration")
            assert count("resolve") == 1
        finally:
            await timings.stop()

    asyncio.run(main())
