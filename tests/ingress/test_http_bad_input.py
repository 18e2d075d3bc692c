"""Bad input never answers 5xx: /files names the file system refuses are 404, every
/export answer is HTTP 200 with a legacy body, and a bug in an /export handler is a logged
-9, not a 500."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from yarl import URL

from ingress.http import MAX_BODY
from tests.ingress.http_client import (
    BODY,
    EncodingPipe,
    FakeReplica,
    ingress_for,
    with_client,
)


def _out(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    (out / "export" / "J").mkdir(parents=True)
    (out / "export" / "J" / "a.jpg").write_bytes(b"JPEG")
    return out


async def _raw_get(client: TestClient, target: bytes) -> bytes:
    """The status line for a request line sent byte for byte (a client library would
    percent-encode a NUL)."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    await writer.drain()
    status = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return status


def test_files_names_the_file_system_refuses_answer_404_not_500(tmp_path: Path) -> None:
    pipe, _, ingress = ingress_for(tmp_path)
    out = _out(tmp_path)
    (out / "export" / ("n" * 255)).write_bytes(b"longest")  # NAME_MAX itself is fine
    (out / "export" / "loop").symlink_to(out / "export" / "loop")
    deep = "/".join(["d" * 200] * 25)  # every name legal, the path over PATH_MAX
    paths = [
        "/files/%00",
        "/files/export/J/a.jpg%00",
        "/files/export/%00/a.jpg",
        "/files/" + "a" * 256,
        "/files/export/" + "b" * 300 + "/a.jpg",
        "/files/export/" + "%C3%A9" * 128,  # 128 characters, 256 bytes
        "/files/" + deep,
        "/files/%FF%FE",
        "/files/%C0%AF",
        "/files/%ED%A0%80",  # a UTF-8-encoded lone surrogate
        "/files/export/loop",
        "/files/export/J/a.jpg/inside",
        "/files/export",
    ]

    async def check(client: TestClient) -> None:
        for path in paths:
            resp = await client.get(URL(path, encoded=True))
            assert resp.status == 404, path
        longest = await client.get("/files/export/" + "n" * 255)
        assert longest.status == 200 and await longest.read() == b"longest"
        for target in (b"/files/a\x00b", b"/files/\x00"):
            status = await _raw_get(client, target)
            assert status.split()[1].startswith(b"4"), (target, status)
        # Over the server's request-line limit: refused by aiohttp's parser, still a 4xx.
        huge = await client.get("/files/" + "/".join(["e" * 200] * 60))
        assert 400 <= huge.status < 500

    with_client(ingress, check)
    pipe.ctx.close()


def test_export_malformed_job_id_answers_minus_2_naming_jobid_at_once(tmp_path: Path) -> None:
    waited: list[str] = []

    class RecordingReplica(FakeReplica):
        async def wait_for(self, job_id: str, predicate: Any, timeout: float) -> Any:
            waited.append(job_id)
            return None

    pipe, _, _ = ingress_for(tmp_path)
    from ingress.http import Ingress

    ingress = Ingress(pipe, RecordingReplica())  # type: ignore[arg-type]
    bad = [
        "abc",
        "G" * 32,
        "A" * 31,
        "A" * 33,
        "%00",
        "A" * 32 + "%0A",
        "x" * 5000,
        "%FF" * 32,
        "%0A",
        "a/b",
        "A" * 32 + "/",
    ]

    async def check(client: TestClient) -> None:
        for job_id in bad:
            resp = await client.get(URL("/export/" + job_id, encoded=True))
            assert resp.status == 200, job_id
            answer = await resp.json()
            assert answer["ErrorCode"] == -2 and answer["ErrorField"] == "JobId", job_id
            assert answer["JobId"] == ""  # a malformed id is never echoed
        assert waited == []  # no grace wait for an id that cannot exist
        # a well-formed id in lower case is the same job, as before
        unknown = await (await client.get("/export/" + "a" * 32)).json()
        assert unknown["ErrorCode"] == -1 and unknown["JobId"] == "A" * 32
        assert waited == ["A" * 32]

    with_client(ingress, check)
    pipe.ctx.close()


async def _chunks(total: int) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        yield b" " * min(4096, total - sent)
        sent += 4096


def _padded(size: int) -> bytes:
    """A valid body of exactly ``size`` bytes (the padding is a field nobody reads)."""
    head = json.dumps({**BODY, "_Version": ""}).encode()
    return head[:-2] + b"x" * (size - len(head)) + head[-2:]


def _answers(tmp_path: Path, cases: list[tuple[bytes | Any, dict[str, str]]]) -> list[Any]:
    pipe, _, ingress = ingress_for(tmp_path)
    answers: list[Any] = []

    async def check(client: TestClient) -> None:
        for data, headers in cases:
            resp = await client.post("/export", data=data, headers=headers)
            assert resp.status == 200, (data if isinstance(data, bytes) else "<stream>")[:60]
            answers.append(json.loads(await resp.read()))

    with_client(ingress, check)
    pipe.ctx.close()
    return answers


def test_post_export_odd_bodies_and_content_types_answer_a_legacy_body(tmp_path: Path) -> None:
    cases: list[tuple[Any, dict[str, str]]] = [
        (b"", {}),
        (b"\xff\xfe\x00{", {}),
        (b'{"LivePath": "\xff"}', {"Content-Type": "application/json"}),
        (b'{"LivePath": "\\ud800"}', {}),
        (b"[" * 1100 + b"]" * 1100, {}),
        (b'{"a":' * 1100 + b"1" + b"}" * 1100, {}),
        (b"1e999999", {}),
        (b"null", {}),
        (b"[]", {}),
        (b'"\\u0000"', {}),
        (json.dumps({**BODY, "LivePath": "mp4/cam\x00/1/stream.mpd"}).encode(), {}),
        (b'{"a":1}', {"Content-Type": "application/json; charset=foobar"}),
        (b'{"a":1}', {"Content-Type": "application/json; charset=utf-16"}),
        (b"a=1&b=2", {"Content-Type": "application/x-www-form-urlencoded"}),
        (b"--x\r\n\r\n--x--", {"Content-Type": "multipart/form-data; boundary=x"}),
        (_padded(MAX_BODY + 1), {}),
        (_chunks(MAX_BODY + 10_000), {}),  # chunked, no Content-Length
    ]
    answers = _answers(tmp_path, cases)
    for (data, _), answer in zip(cases, answers, strict=True):
        label = data[:60] if isinstance(data, bytes) else "<stream>"
        assert answer["ErrorCode"] == -2 and answer["ErrorField"], (label, answer)
        assert answer["JobId"] == ""
    assert "over 65536 bytes" in answers[-1]["ErrorMessage"]
    assert "depth limit" in answers[4]["ErrorMessage"]


def test_a_valid_body_is_read_whatever_the_content_type_says(tmp_path: Path) -> None:
    # Legacy callers send text/plain or nothing; the charset is not Python's to decode.
    valid = json.dumps(BODY).encode()
    types = ["text/plain", "application/json; charset=latin-1", "application/octet-stream"]
    answers = _answers(tmp_path, [(valid, {"Content-Type": t}) for t in types])
    answers += _answers(tmp_path / "limit", [(_padded(MAX_BODY), {})])
    assert [a["ErrorCode"] for a in answers] == [1, 1, 1, 1]
    assert len({a["JobId"] for a in answers[:3]}) == 1


def test_an_unexpected_exception_in_an_export_handler_is_a_logged_minus_9(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pipe, replica, ingress = ingress_for(tmp_path)

    async def broken_send(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom: an internal detail")

    def broken_get(job_id: str) -> Any:
        raise KeyError("another internal detail")

    async def check(client: TestClient) -> None:
        pipe.send = broken_send  # type: ignore[method-assign]
        posted = await client.post("/export", json=BODY)
        assert posted.status == 200
        answer = await posted.json()
        assert answer["ErrorCode"] == -9 and answer["JobId"] == ""
        assert "internal detail" not in json.dumps(answer)
        replica.get = broken_get  # type: ignore[method-assign]
        polled = await client.get("/export/" + "A" * 32 + "?SessionId=secret-id")
        assert polled.status == 200 and (await polled.json())["ErrorCode"] == -9

    with caplog.at_level(logging.ERROR, logger="ingress.http"):
        with_client(ingress, check)
    pipe.ctx.close()
    logged = [r for r in caplog.records if r.name == "ingress.http"]
    assert len(logged) == 2 and all(r.exc_info for r in logged)
    assert "POST /export" in logged[0].getMessage()
    assert "secret-id" not in caplog.text  # a read's query may carry a SessionId


def test_slug_info_nested_past_the_encoders_limit_is_not_a_500(tmp_path: Path) -> None:
    """The measured symptom: 253+ levels in story.slug_info made the event unencodable."""
    pipe, replica, _ = ingress_for(tmp_path)
    from ingress.http import Ingress

    encoding = EncodingPipe(settings=pipe.settings, ctx=pipe.ctx)
    ingress = Ingress(encoding, replica)  # type: ignore[arg-type]
    answers: list[dict[str, Any]] = []

    async def check(client: TestClient) -> None:
        for depth in (252, 253, 300, 1000):
            slug = '{"a":' + "[" * depth + "]" * depth + "}"
            # Spliced in as text: Python's json cannot write (or read) 1000 levels.
            for slug_info in (slug, json.dumps(base64.b64encode(slug.encode()).decode())):
                story = {"id": "s", "name": "n", "slug_info": "@SLUG@"}
                text = json.dumps({**BODY, "Duration": 1000 + depth, "story": story})
                body = text.replace('"@SLUG@"', slug_info).encode()
                resp = await client.post("/export", data=body)
                assert resp.status == 200, depth
                answers.append(await resp.json())

    with_client(ingress, check)
    pipe.ctx.close()
    for answer in answers:  # the request's rules bound slug depth: refused, naming it
        assert answer["ErrorCode"] == -2, answer
        assert answer["ErrorField"] == "story.slug_info", answer
