"""The Kafka tools the README documents for the embedded broker, run against a real one.

kcat: Debian 12's kcat 1.7.1 is built on librdkafka 2.0.2, which cannot parse Tansu's
ApiVersions reply (README, "Known issues"), so the README's commands for it fall back to the
pre-0.10 protocol (``-X api.version.request=false -X broker.version.fallback=0.9.0``): listing
and consuming from an absolute offset work that way, producing does not.  Requests are
published with the broker's own ``tansu cat produce``.  With librdkafka 2.2 or later plain
kcat works.  The kcat tests skip where kcat is not installed (``apt-get install kcat``).
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from collections.abc import Iterator

import pytest

import schemas
from pipeline.identity import identity_document, job_id_of
from service.broker import EmbeddedBroker

pytestmark = pytest.mark.integration

KCAT = shutil.which("kcat")
needs_kcat = pytest.mark.skipif(KCAT is None, reason="kcat not installed (apt-get install kcat)")
# What the README adds to every kcat command for the embedded broker (librdkafka < 2.2).
OLD_PROTOCOL = ["-X", "api.version.request=false", "-X", "broker.version.fallback=0.9.0"]
TIMEOUT_S = 120  # a bound for a command that normally ends in a second, never a budget

# The README's shell recipe for a request event (the demo recording, a thumbnail at 10 s).
REQUEST_RECIPE = r"""
LIVE=mp4/demo/1/stream.mpd START=00:00:10 START_MS=10000 DUR=1000
DOC='{"archive":{"bucket":null,"prefix":""},"duration_ms":'$DUR',"export_type":0,"file_name":null,"kind":"thumbnail","live_path":"'$LIVE'","start_pos_ms":null,"start_time_ms":'$START_MS',"story_id":null,"v":2}'
JOB=$(printf '%s' "$DOC" | sha256sum | cut -c1-32 | tr a-f A-F)
EVENT='{"schema_version":2,"job_id":"'$JOB'","kind":"thumbnail","live_path":"'$LIVE'","start_time":"'$START'","duration_ms":'$DUR',"source":{"bucket":null},"image_key":"export/'$JOB'/'$JOB'.jpg","service_caller":"shell"}'
"""


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    """A private broker: the tools below write to export.* topics of their own."""
    with EmbeddedBroker() as running:
        for topic in (schemas.REQUESTS, schemas.COMPLETED):
            _run([running.binary, "topic", "create", "--broker", _url(running), topic])
        yield running


def _url(broker: EmbeddedBroker) -> str:
    return f"tcp://{broker.bootstrap}"


def _run(cmd: list[str], stdin: str = "", check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        cmd, input=stdin, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )
    if check:
        assert done.returncode == 0, f"{cmd}: {done.stderr}"
    return done


def _kcat(
    broker: EmbeddedBroker, *args: str, old: bool = True, stdin: str = "", check: bool = True
) -> subprocess.CompletedProcess[str]:
    assert KCAT is not None
    flags = OLD_PROTOCOL if old else []
    return _run([KCAT, "-b", broker.bootstrap, *flags, *args], stdin, check=check)


def _librdkafka() -> tuple[int, ...]:
    assert KCAT is not None
    found = re.search(r"librdkafka (\d+)\.(\d+)\.(\d+)", _run([KCAT, "-V"]).stdout)
    assert found, "kcat -V names no librdkafka version"
    return tuple(int(part) for part in found.groups())


def _request_event() -> tuple[str, str]:
    """(JOB, EVENT) as the README's shell recipe makes them."""
    done = _run(["bash", "-c", REQUEST_RECIPE + 'printf "%s\\n%s" "$JOB" "$EVENT"'])
    job, event = done.stdout.split("\n", 1)
    return job, event


async def _consume(bootstrap: str, topic: str, count: int) -> list[tuple[bytes, bytes]]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    got: list[tuple[bytes, bytes]] = []
    try:
        async with asyncio.timeout(TIMEOUT_S):
            while len(got) < count:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    got += [(m.key, m.value) for m in batch]
    finally:
        await consumer.stop()
    return got


async def _produce(bootstrap: str, topic: str, events: dict[str, bytes]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for key, value in events.items():
            await producer.send_and_wait(topic, value, key=key.encode())
    finally:
        await producer.stop()


def test_the_readme_recipe_makes_a_valid_request_with_the_jobs_own_id() -> None:
    job, event = _request_event()
    doc = identity_document(
        live_path="mp4/demo/1/stream.mpd",
        start_pos_ms=None,
        start_time="00:00:10",
        duration_ms=1000,
        export_type=0,
        kind="thumbnail",
        file_name=None,
        story_id=None,
        bucket=None,
        prefix="",
    )
    assert job == job_id_of(doc)
    request = schemas.convert(schemas.REQUESTS, json.loads(event))  # the pipeline's own rules
    assert request.job_id == job


def test_tansu_lists_topics_and_publishes_a_request(broker: EmbeddedBroker) -> None:
    listed = json.loads(_run([broker.binary, "topic", "list", "--broker", _url(broker)]).stdout)
    assert {schemas.REQUESTS, schemas.COMPLETED} <= {t["name"] for t in listed}
    job, event = _request_event()
    line = json.dumps({"key": job, "value": json.loads(event)})
    _run([broker.binary, "cat", "produce", "--broker", _url(broker), schemas.REQUESTS], line)
    [(key, value)] = asyncio.run(_consume(broker.bootstrap, schemas.REQUESTS, 1))
    assert json.loads(key) == job  # tansu writes the key as JSON: "<job_id>", quotes included
    assert schemas.convert(schemas.REQUESTS, json.loads(value)).job_id == job


@needs_kcat
def test_kcat_lists_the_topics_with_the_old_protocol_flags(broker: EmbeddedBroker) -> None:
    listing = _kcat(broker, "-L").stdout
    assert f'topic "{schemas.COMPLETED}"' in listing
    assert f'topic "{schemas.REQUESTS}"' in listing


@needs_kcat
def test_kcat_reads_export_completed_from_an_absolute_offset(broker: EmbeddedBroker) -> None:
    events = {
        f"JOB{n}": json.dumps({"job_id": f"JOB{n}", "outcome": "ok"}).encode() for n in (1, 2)
    }
    asyncio.run(_produce(broker.bootstrap, schemas.COMPLETED, events))
    out = _kcat(
        broker, "-C", "-t", schemas.COMPLETED, "-o", "0", "-e", "-q", "-f", "%k %s\\n"
    ).stdout
    seen = dict(line.split(" ", 1) for line in out.splitlines())
    assert seen == {key: value.decode() for key, value in events.items()}


@needs_kcat
def test_kcat_with_the_old_protocol_cannot_seek_to_beginning_nor_produce(
    broker: EmbeddedBroker,
) -> None:
    # Tansu's ListOffsets v0 reply lacks old_style_offsets, and it drops the connection on a
    # v0/v1 MessageSet: the two limits the README's commands work around.
    seek = _kcat(broker, "-C", "-t", schemas.COMPLETED, "-o", "beginning", "-e", check=False)
    assert "ListOffsets" in seek.stderr
    produce = _kcat(broker, "-P", "-t", schemas.COMPLETED, "-K:", stdin="k:v\n", check=False)
    assert produce.returncode != 0


@needs_kcat
def test_plain_kcat_needs_librdkafka_2_2_or_later(broker: EmbeddedBroker) -> None:
    listing = _kcat(broker, "-L", "-m", "10", old=False, check=False)
    if _librdkafka() >= (2, 2, 0):
        assert listing.returncode == 0 and f'topic "{schemas.COMPLETED}"' in listing.stdout
    else:  # the tagged-field bug fixed by librdkafka PR 4278 (README, "Known issues")
        assert "ApiVersionRequest failed" in listing.stderr
