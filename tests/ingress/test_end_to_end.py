"""End to end through HTTP against the real broker binary and moto's S3 server.

One ``mediaexport worker`` subprocess (every agent + the ingress) serves the whole module;
outputs go to S3 (moto), archives come from a local folder, from S3 via storage_info, and
from a recording that the test grows step by step.

Every wait is for a condition, bounded in minutes (a busy 2-core CI machine can need them);
the tests assert what happened, never how fast.
"""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
import json
import os
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import av
import pytest

import schemas
from pipeline.identity import identity_document, job_id_of
from pipeline.synthetic import ArchiveSpec, read_frame_index, write_dash
from pipeline.synthetic.growing import GrowingArchive
from service.broker import free_port
from tests.fixtures.services import S3Server
from tests.ingress.worker_process import (
    changelog_values,
    post_export,
    produce,
    read_topic,
    spawn_worker,
    stop_worker,
    wait_ready,
)

# pytest-timeout's default (300 s) would cut the minutes-long bounds below short.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

SPEC = ArchiveSpec(seconds=6.0)  # 320x180, 25 fps, 2 s segments, AAC
OUT_BUCKET = "exports"
ARCHIVE_BUCKET = "recordings"
CAM = "mp4/cam/1/stream.mpd"
LIVE = "mp4/live/1/stream.mpd"
WAIT_S = 240  # bound on waiting for one condition; reached only when something is wrong
Answered = Callable[[dict[str, Any]], bool]


@dataclass
class Stack:
    url: str
    bootstrap: str
    s3: S3Server
    proc: subprocess.Popen[str]
    root: Path
    archive: Path
    env: dict[str, str]

    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        return post_export(self.url, body)

    def get(self, path: str, url: str | None = None) -> dict[str, Any]:
        with urllib.request.urlopen((url or self.url) + path, timeout=30) as resp:
            out: dict[str, Any] = json.loads(resp.read())
            return out

    def output(self, key: str) -> bytes:
        client: Any = self.s3.client()
        data: bytes = client.get_object(Bucket=OUT_BUCKET, Key=f"out/{key}")["Body"].read()
        return data

    def poll(
        self, body: dict[str, Any], *, until: set[int] | Answered, timeout: float = WAIT_S
    ) -> list[dict[str, Any]]:
        """POST ``body`` until an answer's ErrorCode is in ``until`` (or ``until(answer)``)."""
        done = until if callable(until) else lambda answer: answer["ErrorCode"] in until
        seen = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = self.post(body)
            seen.append(answer)
            if done(answer):
                return seen
            time.sleep(0.3)
        raise AssertionError(f"no ErrorCode in {until} after {timeout} s: {seen[-3:]}")


def _start_pos(frame: int) -> int:
    assert SPEC.epoch_ms is not None
    return SPEC.epoch_ms + round(frame * 1000 / SPEC.fps)


def _body(**fields: Any) -> dict[str, Any]:
    body = {
        "ServiceCaller": "mma",
        "StartPos": _start_pos(25),
        "Duration": 2000,
        "LivePath": CAM,
        "FetchMedia": False,
        "SessionId": "S",
        "userid": "dev@example.com",
    }
    body.update(fields)
    return body


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str, s3_server: S3Server
) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("e2e")
    archive = root / "archive"
    cam = write_dash(archive / Path(CAM).parent, SPEC)
    client: Any = s3_server.client()
    for bucket in (OUT_BUCKET, ARCHIVE_BUCKET):
        client.create_bucket(Bucket=bucket)
    for path in cam.parent.rglob("*"):
        if path.is_file():
            key = "archive/" + str(path.relative_to(archive))
            client.upload_file(str(path), ARCHIVE_BUCKET, key)

    port = free_port()
    env = dict(os.environ)
    env.update(s3_server.env)
    env.update(
        {
            "EXPORT_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "EXPORT_HTTP_PORT": str(port),
            "EXPORT_DATA_DIR": str(root / "data"),
            "EXPORT_ARCHIVE_URL": str(archive),
            "EXPORT_OUTPUT_URL": f"s3://{OUT_BUCKET}/out",
            # The live test grows its recording itself, step by step: a wait this long never
            # ends early, however slow the machine (the test publishes the end promptly).
            "EXPORT_LIVE_WAIT_MS": "600000",
            "EXPORT_SYNC_WAIT_MS": "20000",
            "EXPORT_H264_PRESET": "ultrafast",
            "EXPORT_WORKER_ID": "e2e-worker",
            # the shortest TTL: the retention timer runs every 6 s (jobs of this module
            # finish well within the status rows' 5 min grace, so polls stay polls)
            "EXPORT_JOB_TTL_MS": "60000",
        }
    )
    proc = _start_worker(env, root / "worker.log")
    try:
        yield Stack(
            f"http://127.0.0.1:{port}", kafka_bootstrap, s3_server, proc, root, archive, env
        )
    finally:
        stop_worker(proc)


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[str]:
    started = time.monotonic()
    proc = spawn_worker(env, log)
    line = wait_ready(proc, log)
    print(f"worker ready in {time.monotonic() - started:.1f} s: {line.strip()}")
    return proc


def _decode_jpeg(data: bytes) -> av.VideoFrame:
    with av.open(io.BytesIO(data), "r") as c:
        return next(iter(c.decode(video=0)))


def test_thumbnail_is_the_exact_frame(stack: Stack) -> None:
    answer = stack.post(_body(StartPos=_start_pos(37)))
    assert answer["ErrorCode"] == 0, answer
    assert answer["ImagePath"] == f"/{answer['JobId']}/{answer['JobId']}.jpg"
    jpeg = stack.output("export" + answer["ImagePath"])
    assert read_frame_index(_decode_jpeg(jpeg)) == 37


@pytest.mark.parametrize("export_type", [0, 1, 2])
def test_media_polls_to_a_clip_of_the_requested_duration(stack: Stack, export_type: int) -> None:
    body = _body(
        StartPos=_start_pos(30),
        Duration=2000,
        FetchMedia=True,
        export_type=export_type,
        FileName=f"clip{export_type}.mp4",
    )
    first = stack.post(body)
    assert first["ErrorCode"] == 1 and first["TimeWait"] > 0, first
    answers = stack.poll(body, until={5, -1, -2, -5, -6})
    done = answers[-1]
    assert done["ErrorCode"] == 5, done
    assert done["LackLength"] == 0 and done["Version"] == "v1" and done["S3Dir"] == "export"
    assert done["VideoPath"] == f"/export/{done['JobId']}/clip{export_type}.mp4"
    clip = stack.output(done["VideoPath"].lstrip("/"))
    with av.open(io.BytesIO(clip), "r") as c:
        frames = [f for f in c.decode(video=0)]
    assert len(frames) == 50  # 2 s at 25 fps
    assert read_frame_index(frames[0]) == 30
    assert read_frame_index(frames[-1]) == 79
    thumb = stack.output("export" + done["ImagePath"])
    assert read_frame_index(_decode_jpeg(thumb)) == 30
    assert stack.get(f"/export/{done['JobId']}")["ErrorCode"] == 5


def test_same_body_twice_is_one_job(stack: Stack) -> None:
    body = _body(StartPos=_start_pos(60), FetchMedia=True, export_type=1, FileName="twice")
    a, b = stack.post(body), stack.post(body)
    assert a["JobId"] == b["JobId"]
    stack.poll(body, until={5})
    requests = read_topic(stack.bootstrap, schemas.REQUESTS, key=a["JobId"], wait_for=1)
    completed = read_topic(stack.bootstrap, schemas.COMPLETED, key=a["JobId"], wait_for=1)
    assert len(requests) == 1 and len(completed) == 1
    schemas.convert(schemas.COMPLETED, completed[0])
    assert completed[0]["outcome"] == "ok"
    assert completed[0]["outputs"]["video"]["key"] == f"export/{a['JobId']}/twice.mp4"


def test_archive_in_s3_via_storage_info(stack: Stack) -> None:
    info = [
        {
            "storage_purpose": "mp4",
            "storage_type": "S3",
            "storage_enable": True,
            "storage_name": ARCHIVE_BUCKET,
            "storage_location": "us-east-1",
            "storage_root_folder": "archive",
        }
    ]
    slug = {"slug_id": "abc", "slug_name": "test"}
    body = _body(
        StartPos=_start_pos(40),
        storage_info=base64.b64encode(json.dumps(info).encode()).decode(),
        story={
            "id": "4B999DC458FBC4C8",
            "name": "story",
            "slug_info": base64.b64encode(json.dumps(slug).encode()).decode(),
        },
    )
    answer = stack.post(body)
    assert answer["ErrorCode"] == 0, answer
    key = "export" + answer["ImagePath"]
    assert read_frame_index(_decode_jpeg(stack.output(key))) == 40
    client: Any = stack.s3.client()
    head = client.head_object(Bucket=OUT_BUCKET, Key=f"out/{key}")
    assert head["Metadata"]["story-id"] == "4B999DC458FBC4C8"
    assert json.loads(head["Metadata"]["slug"]) == slug
    completed = read_topic(stack.bootstrap, schemas.COMPLETED, key=answer["JobId"], wait_for=1)
    assert completed[0]["slug"] == slug
    assert completed[0]["request"]["source"]["bucket"] == ARCHIVE_BUCKET


def test_unknown_live_path_is_not_such_dir(stack: Stack) -> None:
    answer = stack.post(_body(LivePath="mp4/nobody/1/stream.mpd"))
    assert answer["ErrorCode"] == -1
    assert answer["ErrorMessage"] == "not such dir"
    assert answer["JobId"]


def test_raw_event_on_export_requests_completes(stack: Stack) -> None:
    # What a search service publishes: the JobId by the README's recipe, the default archive.
    start_pos = _start_pos(12)
    doc = identity_document(
        live_path=CAM,
        start_pos_ms=start_pos,
        start_time=None,
        duration_ms=1000,
        export_type=0,
        kind="thumbnail",
        file_name="raw",
        story_id=None,
        bucket=None,
        prefix="",
    )
    job_id = job_id_of(doc)
    event = {
        "schema_version": 2,
        "job_id": job_id,
        "kind": "thumbnail",
        "live_path": CAM,
        "start_pos_ms": start_pos,
        "duration_ms": 1000,
        "file_name": "raw",
        "service_caller": "search",
        "source": {"bucket": None},
        "image_key": f"export/{job_id}/raw.jpg",
        "submitted_at_ms": int(time.time() * 1000),
    }
    schemas.convert(schemas.REQUESTS, event)
    asyncio.run(produce(stack.bootstrap, schemas.REQUESTS, job_id, json.dumps(event).encode()))
    completed = read_topic(stack.bootstrap, schemas.COMPLETED, key=job_id, wait_for=1)
    schemas.convert(schemas.COMPLETED, completed[0])
    assert completed[0]["outcome"] == "ok"
    image = completed[0]["outputs"]["image"]
    assert image["key"] == f"export/{job_id}/raw.jpg"
    assert read_frame_index(_decode_jpeg(stack.output(image["key"]))) == 12


def test_invalid_events_go_to_the_dead_letter_topic(stack: Stack) -> None:
    bad_id = uuid.uuid4().hex.upper()
    not_json = b"{not json"
    missing = json.dumps({"schema_version": 2, "job_id": bad_id, "kind": "thumbnail"}).encode()
    asyncio.run(produce(stack.bootstrap, schemas.REQUESTS, bad_id, not_json))
    asyncio.run(produce(stack.bootstrap, schemas.REQUESTS, bad_id, missing))
    dead = read_topic(stack.bootstrap, schemas.DEADLETTER, key=bad_id, wait_for=2)
    originals = {base64.b64decode(d["original_b64"]) for d in dead}
    assert originals == {not_json, missing}
    for d in dead:
        schemas.convert(schemas.DEADLETTER, d)
        assert d["topic"] == schemas.REQUESTS and d["reason"]
    assert any("not JSON" in d["reason"] for d in dead)
    assert any("live_path" in d["reason"] for d in dead)


def test_live_edge_wait_shrinks_lack_length_then_delivers(stack: Stack) -> None:
    # A recording whose archive time 8 s is about "now".  The test is its recorder: it
    # publishes the next segments only once the job has reported the LackLength of the edge
    # before, so every LackLength is known exactly, however slowly each step runs.
    epoch = int(time.time() * 1000) - 8000
    live = GrowingArchive(
        stack.archive / Path(LIVE).parent, replace(SPEC, seconds=16.0, epoch_ms=epoch)
    )
    start_s, end_s = 2.0, 14.0  # ends 6 s past the first edge
    body = _body(
        LivePath=LIVE,
        StartPos=epoch + int(start_s * 1000),
        Duration=int((end_s - start_s) * 1000),
        FetchMedia=True,
        export_type=1,
        FileName="live",
    )
    answers: list[dict[str, Any]] = []
    lacks: list[int] = []
    try:
        for edge_s in (8.0, 12.0):
            live.publish_until(edge_s)
            below = lacks[-1] if lacks else 1 << 62

            def shrunk(a: dict[str, Any], below: int = below) -> bool:
                waiting = a.get("State") == "waiting_live" and 0 < a["LackLength"] < below
                return waiting or a["ErrorCode"] != 1

            answers += stack.poll(body, until=shrunk)
            assert answers[-1]["ErrorCode"] == 1, answers[-1]  # neither done nor failed yet
            lack = int(answers[-1]["LackLength"])
            # What lies past the video edge, plus up to one segment more while the audio (on
            # the AAC frame grid) trails it.
            beyond_ms = round((end_s - edge_s) * 1000)
            assert beyond_ms <= lack < beyond_ms + 2000, (edge_s, lack, answers[-3:])
            lacks.append(lack)
        live.publish_until(live.spec.end_time)  # the recording reaches the clip's end
        answers += stack.poll(body, until={5, -1, -2, -5, -6})
    finally:
        live.finish()  # a waiting job never outlives a failed test
    done = answers[-1]
    assert done["ErrorCode"] == 5, done
    assert done["LackLength"] == 0
    shown = [a["LackLength"] for a in answers if a["ErrorCode"] == 1 and a["LackLength"] > 0]
    assert all(a >= b for a, b in itertools.pairwise(shown)), shown  # never grows back
    clip = stack.output(done["VideoPath"].lstrip("/"))
    with av.open(io.BytesIO(clip), "r") as c:
        frames = len(list(c.decode(video=0)))
    assert abs(frames - round((end_s - start_s) * 25)) <= 1
    print(f"LackLength at the two edges: {lacks}; {len(answers)} answers")


def test_finished_jobs_past_the_ttl_leave_a_tombstone_and_the_replica(stack: Stack) -> None:
    # A job that finished long ago (as if the worker had been down): the retention timer
    # deletes its table row outside any stream, the changelog gets a tombstone, and the
    # ingress's replica forgets the job.
    job = "0E" * 16
    old = 1_562_253_600_000
    for state, at in (("accepted", old), ("done", old + 5)):
        event = {"schema_version": 2, "job_id": job, "state": state, "at_ms": at}
        if state == "accepted":
            event["kind"] = "thumbnail"
        schemas.convert(schemas.STATUS, event)
        asyncio.run(produce(stack.bootstrap, schemas.STATUS, job, json.dumps(event).encode()))
    values = changelog_values(stack.bootstrap, "mediaexport-status-changelog", job, WAIT_S)
    assert values and values[0] is not None and values[-1] is None, values
    deadline = time.monotonic() + WAIT_S
    while stack.get(f"/export/{job}")["ErrorCode"] != -1:
        assert time.monotonic() < deadline, "the replica kept an expired job"
        time.sleep(0.1)


def test_a_second_worker_shares_the_work_and_answers_any_poll(stack: Stack) -> None:
    port = free_port()
    env = dict(
        stack.env,
        EXPORT_HTTP_PORT=str(port),
        EXPORT_WORKER_ID="e2e-worker-2",
        EXPORT_DATA_DIR=str(stack.root / "data2"),
    )
    second = _start_worker(env, stack.root / "worker2.log")
    other = f"http://127.0.0.1:{port}"
    try:
        bodies = [
            _body(StartPos=_start_pos(k), FetchMedia=True, export_type=1, FileName=f"pair{k}")
            for k in (5, 15, 45, 65)
        ]
        jobs = [stack.post(b)["JobId"] for b in bodies]  # submitted through the first
        deadline = time.monotonic() + WAIT_S
        pending = set(jobs)
        while pending and time.monotonic() < deadline:
            for job in list(pending):
                answer = stack.get(f"/export/{job}", url=other)  # polled through the second
                assert answer["ErrorCode"] in (1, 5), answer
                if answer["ErrorCode"] == 5:
                    pending.discard(job)
            time.sleep(0.3)
        assert not pending, f"unfinished via the second ingress: {pending}"
        thumb = stack.post(_body(StartPos=_start_pos(99)))  # and the first answers too
        assert thumb["ErrorCode"] == 0
        # the other replica sees "done" one hop later (eventually consistent, milliseconds
        # on an idle machine)
        deadline = time.monotonic() + WAIT_S
        while stack.get(f"/export/{thumb['JobId']}", url=other)["ErrorCode"] != 0:
            assert time.monotonic() < deadline, "the second ingress never saw the thumbnail"
            time.sleep(0.05)
    finally:
        stop_worker(second)
    logs = [(stack.root / n).read_text() for n in ("worker.log", "worker2.log")]
    done_in = [sum(f"job {j} ok" in log for j in jobs) for log in logs]
    assert sum(done_in) == len(jobs)  # each job completed exactly once, in one worker
    print(f"jobs completed per worker: {done_in}")
