"""The status page: ``GET /`` (one self-contained HTML file, ingress/static/index.html) and
the JSON it polls, ``GET /jobs?limit=N``: the replica's most recent jobs, newest first.

Polling rather than SSE: the page asks once a second, which any proxy passes, needs no
reconnect logic and costs one small JSON document; the replica already holds every row.

``/jobs`` follows the rule of the other reads (ingress/http.py): with EXPORT_SESSION_IDS
set it answers 401 unless a valid id comes in ``X-Session-Id`` or ``SessionId``; a job list
is worth as much to a stranger as a single job.  The page itself holds no data and is open;
it asks for the session id when ``/jobs`` says 401 and sends it as the header.

Links: ``/files/<key>`` when outputs are local and the file is there (so a link never
404s); with S3 outputs there is nothing this service serves, so a job carries its keys
and ``url`` null, and the page names the key instead of a link.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import re
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
from aiohttp import web

from pipeline.errors import ExportError

DEFAULT_LIMIT = 50
MAX_LIMIT = 200  # bounded: a poll once a second must stay small whatever is asked
SESSION_HEADER = "X-Session-Id"  # where ingress/http.py reads a GET's SessionId
_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)

Denied = Callable[[web.Request], ExportError | None]
# ingress/http.py's servable_file, passed in: this module must not import http.py, which
# imports it (no import cycles, tests/test_layers.py).
Servable = Callable[[Path, str], Path | None]


class StatusPage:
    """The handlers of ``/`` and ``/jobs`` over the ingress's replica rows."""

    def __init__(
        self,
        rows: dict[str, dict[str, Any]],
        denied: Denied,
        *,
        output_root: Path | None,
        servable: Servable,
    ) -> None:
        self.rows = rows  # the replica's dict, read live
        self.denied = denied  # the ingress's read check (EXPORT_SESSION_IDS)
        self.outputs = Outputs(output_root, servable)
        self.html = (resources.files("ingress") / "static" / "index.html").read_bytes()
        self.headers = page_headers(self.html)

    async def index(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self.html, content_type="text/html", charset="utf-8", headers=self.headers
        )

    async def jobs(self, request: web.Request) -> web.Response:
        denied = self.denied(request)
        if denied is not None:
            return _json(
                {"error": denied.message, "field": denied.field},
                status=401,
                headers={"WWW-Authenticate": f'{SESSION_HEADER} realm="jobs"'},
            )
        limit = parse_limit(request.query.get("limit"))
        if limit is None:
            return _json({"error": f"limit must be a whole number 1..{MAX_LIMIT}"}, status=400)
        return _json(
            {
                "jobs": recent_jobs(self.rows, limit, self.outputs),
                "total": len(self.rows),
                "limit": limit,
            }
        )


def page_headers(html: bytes) -> dict[str, str]:
    """A Content-Security-Policy that lets only the page's own inline script run (by its
    hash), so a job field that ever reached the DOM as markup could not execute."""
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(m).digest()).decode()}'"
        for m in _SCRIPT.findall(html)
    )
    csp = (
        f"default-src 'none'; script-src {hashes}; style-src 'unsafe-inline'; "
        "img-src 'self' blob:; connect-src 'self'; form-action 'none'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )
    return {
        "Content-Security-Policy": csp,
        "Cache-Control": "no-cache",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }


def parse_limit(raw: str | None) -> int | None:
    """The ``limit`` query parameter (default DEFAULT_LIMIT), or None when unusable."""
    if raw is None:
        return DEFAULT_LIMIT
    if not raw.isascii() or not raw.isdigit() or len(raw) > 6:
        return None
    value = int(raw)
    return value if 1 <= value <= MAX_LIMIT else None


class Outputs:
    """Which output keys this service can hand out as a ``/files`` link."""

    def __init__(self, root: Path | None, servable: Servable) -> None:
        self.root = root  # None: outputs are in S3
        self.servable = servable

    def view(self, key: object) -> dict[str, str | None] | None:
        if not isinstance(key, str) or not key:
            return None
        url = None
        if self.root is not None and self.servable(self.root, key) is not None:
            url = "/files/" + quote(key)  # names may hold letters of any script
        return {"key": key, "url": url}


def recent_jobs(
    rows: dict[str, dict[str, Any]], limit: int, outputs: Outputs
) -> list[dict[str, Any]]:
    """The ``limit`` newest rows (by creation, then last update) as the page shows them.
    ``nlargest``: a poll costs O(n log limit) however many jobs the replica remembers."""
    newest = heapq.nlargest(limit, rows.items(), key=_age_key)
    return [job_view(job_id, row, outputs) for job_id, row in newest]


def _age_key(item: tuple[str, dict[str, Any]]) -> tuple[int, int, str]:
    job_id, row = item
    return (_int(row.get("created_at_ms")), _int(row.get("updated_at_ms")), job_id)


def job_view(job_id: str, row: dict[str, Any], outputs: Outputs) -> dict[str, Any]:
    """One row for the page.  Changelog rows arrive unvalidated (ingress/replica.py), so
    every field is read defensively: a malformed row shows as what it is, not a 500."""
    request: dict[str, Any] = row["request"] if isinstance(row.get("request"), dict) else {}
    state = _str(row.get("state")) or "accepted"
    return {
        "job_id": job_id,
        "kind": _str(row.get("kind")) or _str(request.get("kind")),
        "state": state,
        "progress": 1.0 if state == "done" else _fraction(row.get("progress")),
        "lack_length_ms": _int(row.get("lack_length_ms")),
        "created_at_ms": _int(row.get("created_at_ms")),
        "updated_at_ms": _int(row.get("updated_at_ms")),
        "live_path": _str(request.get("live_path")),
        "start_time": _str(request.get("start_time")) or None,
        "start_pos_ms": _int(request.get("start_pos_ms")) or None,
        "duration_ms": _int(request.get("duration_ms")),
        "file_name": _str(request.get("file_name")),
        "image": outputs.view(row.get("image_key")),
        "video": outputs.view(row.get("video_key")),
        "error": _error(row.get("error")) if state == "failed" else None,
    }


def _error(error: object) -> dict[str, Any]:
    err = error if isinstance(error, dict) else {}
    code = err.get("code")
    return {
        "code": code if isinstance(code, int) and not isinstance(code, bool) else -9,
        "message": _str(err.get("message")) or "the job failed",
        "field": _str(err.get("field")) or None,
    }


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _fraction(value: object) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or value != value:
        return 0.0
    return round(min(1.0, max(0.0, float(value))), 3)


def _json(
    body: dict[str, Any], *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(body),
        status=status,
        content_type="application/json",
        headers={"Cache-Control": "no-store", **(headers or {})},
    )
