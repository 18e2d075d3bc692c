"""Hypothesis fuzz of the HTTP ingress: whatever arrives, POST /export and GET /export/{id}
answer HTTP 200 with a legacy body (an integer ErrorCode; every -2 names its field), and
GET /files/... answers 200 or 404, never 5xx.

No input may reach an internal error (-9): bad input is -2 naming its field (slug_info
nested past the encoders' limit was -9 until the request's rules bounded its depth).

Bounded (200 examples each, derandomized so CI sees the same inputs every run) and one
server per test, not per example, so the module runs in seconds."""

from __future__ import annotations

import asyncio
import base64
import json
from collections import Counter
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote_from_bytes

from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from ingress.http import MAX_BODY, Ingress
from tests.ingress.http_client import BODY, EncodingPipe, ingress_for

T = TypeVar("T")
MAX_REQUEST_LINE = 8190  # aiohttp's max_line_size
LEGACY_CODES = {0, 1, 5, -1, -2, -3, -4, -5, -6}
FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FIELDS = [
    *BODY,
    "StartTime",
    "FetchThumb",
    "FileName",
    "ServiceCaller",
    "userid",
    "PeerId",
    "S3Bucket",
    "S3Region",
    "SessionId",
    "storage_info",
    "story",
    "_ServiceName",
    "_UrlPath",
    "_Version",
]


class LiveClient:
    """One server and client on one event loop for a whole hypothesis run."""

    def __init__(self, ingress: Ingress) -> None:
        self.loop = asyncio.new_event_loop()
        self.client = self.run(self._start(ingress))

    @staticmethod
    async def _start(ingress: Ingress) -> TestClient:
        client = TestClient(TestServer(ingress.web_app()))
        await client.start_server()
        return client

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        self.run(self.client.close())
        self.loop.close()


def _fuzz_ingress(tmp_path: Path) -> tuple[EncodingPipe, Ingress]:
    pipe, replica, _ = ingress_for(tmp_path, max_pending=100_000)
    encoding = EncodingPipe(settings=pipe.settings, ctx=pipe.ctx)
    return encoding, Ingress(encoding, replica)  # type: ignore[arg-type]


# --- strategies --------------------------------------------------------------------------

odd_texts = st.sampled_from(
    ["", "\x00", "\ud800", "..", "../../etc/passwd", "mp4/cam\x00/1/stream.mpd", "%00", "é" * 200]
)
texts = st.text(max_size=300) | odd_texts | st.text(alphabet="\x00\n/.\\%", max_size=8)
numbers = (
    st.integers()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([0, -1, 0.5, 0.999, 1e308, -1e308, 2**63, 2**64, 10**30, BODY["StartPos"]])
)
scalars = st.none() | st.booleans() | numbers | texts
values = st.recursive(
    scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(texts, kids, max_size=4),
    max_leaves=20,
)


def _b64(value: Any) -> str:
    return base64.b64encode(json.dumps(value).encode()).decode()


stories = st.builds(
    lambda sid, slug, encode: {"id": sid, "name": "n", "slug_info": _b64(slug) if encode else slug},
    values,
    values,
    st.booleans(),
)
field_values = values | stories | st.builds(_b64, values)
legacy_bodies = st.builds(
    lambda base, extra: {**base, **extra},
    st.sampled_from([{}, BODY, {**BODY, "FetchMedia": False}]),
    st.dictionaries(st.sampled_from(FIELDS) | texts, field_values, max_size=4),
)


def _encode(value: Any, ascii_only: bool) -> bytes:
    # surrogatepass: a lone surrogate becomes the invalid UTF-8 bytes some clients send.
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def _nested(depth: int, opener: str, where: str) -> bytes:
    """Text nesting (Python's json cannot write 1000 levels) at the top or inside a field."""
    inner = opener * depth + "1" + ("]" if opener == "[" else "}") * depth
    if where == "body":
        return inner.encode()
    story = {"id": "s", "name": "n", "slug_info": "@"}
    if where == "slug_b64":
        story["slug_info"] = base64.b64encode(('{"a":' + inner + "}").encode()).decode()
        return json.dumps({**BODY, "story": story}).encode()
    text = json.dumps({**BODY, where: "@"} if where != "slug_info" else {**BODY, "story": story})
    spliced = '{"a":' + inner + "}" if where == "slug_info" else inner
    return text.replace('"@"', spliced).encode()


def _sized(size: int) -> bytes:
    head = json.dumps({**BODY, "_Version": ""}).encode()
    return head[:-2] + b"x" * max(0, size - len(head)) + head[-2:]


def _mutated(at: int, junk: bytes) -> bytes:
    valid = json.dumps(BODY).encode()
    at %= len(valid)
    return valid[:at] + junk + valid[at + len(junk) :]


raw_bodies = st.one_of(
    st.builds(_encode, legacy_bodies, st.booleans()),
    st.builds(_encode, values, st.booleans()),
    st.builds(
        _nested,
        st.integers(1, 1100),
        st.sampled_from(["[", '{"a":']),
        st.sampled_from(["body", "slug_info", "slug_b64", "Duration", "LivePath", "storage_info"]),
    ),
    st.binary(max_size=512),
    st.builds(_mutated, st.integers(0, 10_000), st.binary(min_size=1, max_size=4)),
    st.builds(_sized, st.integers(MAX_BODY - 64, MAX_BODY + 64)),
)
content_types = st.sampled_from(
    [
        None,
        "application/json",
        "text/plain",
        "application/json; charset=foobar",
        "application/json; charset=utf-16",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ]
)


def _assert_legacy(status: int, raw: bytes, seen: Counter[Any]) -> None:
    seen["5xx" if status >= 500 else "tried"] += 1
    assert status == 200, raw[:200]
    body = json.loads(raw)
    code = body["ErrorCode"]
    assert type(code) is int and code in LEGACY_CODES, body
    assert isinstance(body["JobId"], str)
    if code == -2:
        assert isinstance(body.get("ErrorField"), str) and body["ErrorField"], body
    seen[code] += 1


# --- the fuzz ----------------------------------------------------------------------------


def test_fuzzed_post_export_answers_http_200_with_a_legacy_body(tmp_path: Path) -> None:
    pipe, ingress = _fuzz_ingress(tmp_path)
    live = LiveClient(ingress)
    seen: Counter[Any] = Counter()

    async def post(data: bytes, content_type: str | None) -> tuple[int, bytes]:
        headers = {"Content-Type": content_type} if content_type else {}
        async with live.client.post("/export", data=data, headers=headers) as resp:
            return resp.status, await resp.read()

    @FUZZ
    @given(raw_bodies, content_types)
    def one(data: bytes, content_type: str | None) -> None:
        _assert_legacy(*live.run(post(data, content_type)), seen)

    try:
        one()
    finally:
        live.close()
        pipe.ctx.close()
    print(f"fuzz POST /export: {seen['tried']} inputs, {seen['5xx']} 5xx, codes {dict(seen)}")
    assert seen["tried"] >= 200 and seen["5xx"] == 0
    assert seen[-2] > 0 and seen[1] > 0  # both bad and accepted bodies were reached


long_names = st.builds(lambda n: b"a" * n, st.integers(200, 10_000))
paths = st.binary(min_size=1, max_size=600) | long_names


def test_fuzzed_read_paths_never_answer_5xx(tmp_path: Path) -> None:
    pipe, ingress = _fuzz_ingress(tmp_path)
    (tmp_path / "out" / "export").mkdir(parents=True)
    live = LiveClient(ingress)
    seen: Counter[Any] = Counter()

    async def get(path: str) -> tuple[int, bytes]:
        async with live.client.get(URL(path, encoded=True)) as resp:
            return resp.status, await resp.read()

    @FUZZ
    @given(paths)
    def one(raw: bytes) -> None:
        escaped = quote_from_bytes(raw, safe="/.%")
        status, _ = live.run(get("/files/" + escaped))
        seen[f"files {status}"] += 1
        assert status in (400, 404, 414, 431), (raw[:80], status)
        path = "/export/" + quote_from_bytes(raw, safe="")
        status, body = live.run(get(path))
        if status == 400 and len(path) > MAX_REQUEST_LINE - 64:
            # aiohttp's parser refuses the request line before any handler runs.
            seen["export 400 (request line too long)"] += 1
            return
        _assert_legacy(status, body, seen)

    try:
        one()
    finally:
        live.close()
        pipe.ctx.close()
    print(f"fuzz GET paths: {seen['tried']} ids, {seen['5xx']} 5xx, answers {dict(seen)}")
    assert seen["tried"] >= 150 and seen["5xx"] == 0
