"""The status page in headless Chromium (Debian's ``chromium``; skipped where it is not on
PATH): at phone width against the real one-box service (``mediaexport up``), following a
thumbnail, a clip and a failing job to their end, with a screenshot artifact under
tests/artifacts/; and with SessionIds checked, asking for one before it shows any job,
then loading thumbnails with the id in a header (driven over the DevTools protocol)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from pipeline.jobs import JobStatus
from service.broker import free_port
from tests.ingress.http_client import ingress_for

CHROMIUM = shutil.which("chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
WAIT_S = 240  # bound on one condition; reached only when something is wrong
GOOD = "good-session"
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not on PATH (Debian: apt-get install chromium)"
)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]


class _Dom(HTMLParser):
    """The job cards (id → data-state) and which panels are shown, from --dump-dom."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.states: dict[str, str] = {}
        self.shown: set[str] = set()
        self.images: list[str] = []
        self.opened: set[str] = set()  # <details open>
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "li" and a.get("data-job-id"):
            self.states[str(a["data-job-id"])] = str(a.get("data-state"))
        if a.get("id") and "hidden" not in a:
            self.shown.add(str(a["id"]))
        if tag == "details" and "open" in a:
            self.opened.add(str(a.get("id")))
        if tag == "img" and "hidden" not in a and a.get("src"):
            self.images.append(str(a["src"]))


def _chromium(url: str, profile: Path, *args: str) -> str:
    assert CHROMIUM is not None
    cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=3000", *args, url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _wait_dom(url: str, profile: Path, done: Callable[[_Dom], bool]) -> _Dom:
    deadline = time.monotonic() + WAIT_S
    while True:
        dom = _Dom(_chromium(url, profile, "--dump-dom"))
        if done(dom) or time.monotonic() > deadline:
            return dom
        time.sleep(0.5)


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(url + "/export", data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=60) as resp:
        out: dict[str, Any] = json.loads(resp.read())
        return out


DEMO = "mp4/demo/1/stream.mpd"
THUMB = {"StartTime": "00:00:10", "Duration": 1000, "LivePath": DEMO, "FetchMedia": False}
MEDIA = {**THUMB, "StartTime": "00:00:20", "Duration": 3000, "FetchMedia": True}
MEDIA |= {"export_type": 1, "FileName": "goal.mp4"}
# Starts after the one-minute demo recording ends: fails with -2 once resolved.
PAST_END = {**MEDIA, "StartTime": "00:05:00", "FileName": "too-late.mp4"}


@pytest.mark.integration
@pytest.mark.timeout(900)
def test_on_a_phone_the_page_follows_real_jobs_to_their_end(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXPORT_")}
    env |= {"EXPORT_H264_PRESET": "ultrafast", "EXPORT_LIVE_WAIT_MS": "0"}
    cmd = [sys.executable, "-m", "service.cli", "up", "--port", str(port)]
    cmd += ["--data-dir", str(tmp_path / "var")]
    with open(tmp_path / "up.log", "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    profile = tmp_path / "chromium"
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith(f"ready {url} "), (tmp_path / "up.log").read_text()[-2000:]
        empty = _wait_dom(url + "/", profile, lambda d: "empty" in d.shown)
        assert "empty" in empty.shown and "how" in empty.opened and not empty.states
        thumb = _post(url, THUMB)
        media, late = _post(url, MEDIA), _post(url, PAST_END)
        assert thumb["ErrorCode"] == 0 and media["ErrorCode"] == late["ErrorCode"] == 1
        want = {thumb["JobId"]: "done", media["JobId"]: "done", late["JobId"]: "failed"}
        dom = _wait_dom(url + "/", profile, lambda d: d.states == want and len(d.images) == 2)
        assert dom.states == want and "session" not in dom.shown
        assert len(dom.images) == 2, dom.images  # both JPEGs loaded from /files
        shot = ARTIFACTS / "status-page-phone.png"
        ARTIFACTS.mkdir(exist_ok=True)
        shot.unlink(missing_ok=True)
        size = ["--window-size=390,844", "--force-device-scale-factor=2"]
        _chromium(url + "/", profile, *size, f"--screenshot={shot}")
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        print(f"status page screenshot: {shot}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(240)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        proc.stdout.close()  # type: ignore[union-attr]


class _Tab:
    """One Chromium tab over the DevTools protocol (aiohttp's websocket client)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        while True:  # events come in between; the answer carries our id
            msg = await self.ws.receive_json(timeout=60)
            if msg.get("id") == self.next_id:
                assert "error" not in msg, msg
                result: dict[str, Any] = msg["result"]
                return result

    async def value(self, js: str) -> Any:
        answer = await self.call("Runtime.evaluate", expression=js, returnByValue=True)
        return answer["result"].get("value")

    async def wait(self, js: str) -> Any:
        deadline = time.monotonic() + WAIT_S
        while not (value := await self.value(js)) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        return value


async def _devtools(profile: Path) -> tuple[asyncio.subprocess.Process, str]:
    """A headless Chromium with a DevTools port, and the websocket of its blank tab."""
    assert CHROMIUM is not None
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
        "about:blank", stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stderr is not None
    while True:
        line = (await asyncio.wait_for(proc.stderr.readline(), WAIT_S)).decode()
        assert line, "chromium ended before it opened its DevTools port"
        found = re.search(r"ws://127\.0\.0\.1:(\d+)/", line)
        if found:
            break
    async with aiohttp.ClientSession() as http:
        resp = await http.get(f"http://127.0.0.1:{found[1]}/json/list")
        (page,) = [t for t in await resp.json() if t["type"] == "page"]
    return proc, str(page["webSocketDebuggerUrl"])


def test_with_session_ids_checked_the_page_asks_for_one_before_it_shows_a_job(
    tmp_path: Path,
) -> None:
    pipe, replica, ingress = ingress_for(tmp_path, session_ids=frozenset({GOOD}))
    job = "E" * 32
    replica.rows[job] = JobStatus(
        job_id=job, kind="thumbnail", state="done", image_key=f"export/{job}/{job}.jpg"
    ).to_dict()
    jpg = tmp_path / "out" / "export" / job / f"{job}.jpg"
    jpg.parent.mkdir(parents=True)
    jpg.write_bytes(b"\xff\xd8\xff")  # any bytes: the test reads how it was fetched

    async def main() -> None:
        async with TestServer(ingress.web_app(), host="127.0.0.1") as server:
            page = str(server.make_url("/"))
            html = await asyncio.to_thread(_chromium, page, tmp_path / "dump", "--dump-dom")
            dom = _Dom(html)
            assert "session" in dom.shown and not dom.states and job not in html
            proc, ws_url = await _devtools(tmp_path / "devtools")
            try:
                async with aiohttp.ClientSession() as http, http.ws_connect(ws_url) as ws:
                    await _sign_in(_Tab(ws), page, job)
            finally:
                proc.kill()
                await proc.wait()

    asyncio.run(main())
    pipe.ctx.close()


async def _sign_in(tab: _Tab, page: str, job: str) -> None:
    await tab.call("Page.navigate", url=page)
    await tab.wait("!document.getElementById('session').hidden")
    await tab.value(
        "document.getElementById('sid').value = 'wrong';"
        "document.getElementById('session').requestSubmit()"
    )
    assert "not accepted" in await tab.wait("document.getElementById('form-error').textContent")
    await tab.value(
        f"document.getElementById('sid').value = '{GOOD}';"
        "document.getElementById('session').requestSubmit()"
    )
    state = await tab.wait(f"document.querySelector('[data-job-id=\"{job}\"]')?.dataset.state")
    assert state == "done"
    # The <img> cannot send X-Session-Id: the page fetched it with the header into a blob.
    src = await tab.wait("document.querySelector('.thumb img:not([hidden])')?.src")
    assert src.startswith("blob:")
    assert await tab.value("document.getElementById('session').hidden") is True
    assert GOOD not in await tab.value("location.href + document.body.innerHTML")
