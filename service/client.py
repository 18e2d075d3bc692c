"""A plain HTTP client of the ingress (ingress/http.py): ``POST /export``,
``GET /export/{JobId}``, ``GET /files/<key>``.

The standard library's urllib and nothing of the Kafka stack, so it runs on any machine
that reaches the ingress.  Every failure is one of the few errors below, so the command
line (service/submit.py) can tell "cannot reach it" from "no answer in time".
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from pipeline.errors import ExportError

READ_TIMEOUT_S = 60.0  # per blocking read of a download, not for the whole file
SESSION_HEADER = "X-Session-Id"  # how a read carries its SessionId (ingress/http.py)


class ClientError(ExportError):
    """The client could not get what it asked the service for."""


class ServiceUnreachable(ClientError):
    """No connection, or an answer that is not the legacy contract's JSON."""


class NoAnswerInTime(ClientError):
    """The deadline passed before the service answered."""


class DownloadFailed(ClientError):
    """An output could not be fetched or written."""


class Service:
    """The ingress's HTTP routes, each call bounded by what is left of ``deadline``."""

    def __init__(self, url: str, session_id: str | None, deadline: float) -> None:
        self.url = url.rstrip("/")
        self.deadline = deadline
        self.headers = {"User-Agent": f"mediaexport/{package_version()}"}
        if session_id:
            self.headers[SESSION_HEADER] = session_id

    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(body).encode()
        return self._legacy("/export", data, {"Content-Type": "application/json"})

    def poll(self, job_id: str) -> dict[str, Any]:
        return self._legacy(f"/export/{urllib.parse.quote(job_id)}")

    def fetch(self, key: str, dest: Path) -> bool:
        """GET /files/<key> into ``dest``; False when the service does not serve it (404)."""
        path = "/files/" + urllib.parse.quote(key)
        try:
            resp = self._open(path, timeout=READ_TIMEOUT_S)
        except urllib.error.HTTPError as e:
            e.close()
            if e.code == 404:
                return False
            raise DownloadFailed(f"GET {path} answered HTTP {e.code}", obj=self.url) from e
        with resp, atomic_file(dest) as f:
            try:
                shutil.copyfileobj(resp, f)
            except (OSError, http.client.HTTPException) as e:
                raise DownloadFailed(f"downloading {path} into {dest}: {e}", field="-o") from e
        return True

    def _legacy(
        self, path: str, data: bytes | None = None, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise NoAnswerInTime("no time left for another request", field="--timeout")
        try:
            resp = self._open(path, data, headers, timeout=left)
        except urllib.error.HTTPError as e:
            e.close()
            raise ServiceUnreachable(
                f"{path} answered HTTP {e.code}, not the export contract", obj=self.url
            ) from e
        with resp, self._connection(path):
            raw = resp.read()
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or not isinstance(answer.get("ErrorCode"), int):
            raise ServiceUnreachable(f"{path} answered something else than JSON", obj=self.url)
        return answer

    def _open(
        self,
        path: str,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        *,
        timeout: float,
    ) -> Any:
        """The response; an HTTP error status raises urllib's HTTPError for the caller."""
        req = urllib.request.Request(self.url + path, data=data, headers=self.headers)
        for name, value in (headers or {}).items():
            req.add_header(name, value)
        with self._connection(path):
            return urllib.request.urlopen(req, timeout=timeout)

    @contextlib.contextmanager
    def _connection(self, path: str) -> Iterator[None]:
        try:
            yield
        except urllib.error.HTTPError:
            raise  # an answer: its status means something to the caller
        except (OSError, http.client.HTTPException) as e:
            reason = e.reason if isinstance(e, urllib.error.URLError) else e
            if isinstance(reason, TimeoutError):
                raise NoAnswerInTime(f"no answer from {self.url}{path}", field="--timeout") from e
            raise ServiceUnreachable(f"cannot reach the service: {reason}", obj=self.url) from e


@contextlib.contextmanager
def atomic_file(dest: Path) -> Iterator[BinaryIO]:
    # A reader (or a second try) never sees half a file under the name asked for.
    part = dest.with_name(dest.name + ".part")
    try:
        f = open(part, "wb")  # noqa: SIM115 (closed by the with below)
    except OSError as e:
        raise DownloadFailed(f"cannot write {part}: {e.strerror}", field="-o") from e
    try:
        with f:
            yield f
        os.replace(part, dest)
    finally:
        part.unlink(missing_ok=True)


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mediaexport")
    except PackageNotFoundError:  # run from a source tree that was never pip-installed
        return "unknown"
