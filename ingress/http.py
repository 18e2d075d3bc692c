"""The HTTP adapter (aiohttp): legacy ``POST /export``, ``GET /export/{job_id}``,
``GET /files/...`` for local outputs, ``GET /healthz``, ``GET /metrics``, and the status
page ``GET /`` with its ``GET /jobs`` (ingress/page.py).  Handlers only
wire: the legacy body is validated by pipeline.legacy.request, answers come from
pipeline.legacy.response.legacy_response, and the job's state from the status replica (see
ingress/replica.py).

Overload: a NEW job is refused with ErrorCode -4 and a TimeWait while ``max_pending``
(EXPORT_MAX_PENDING) jobs or more are unfinished; polls of known jobs answer as usual.

Bad input never answers 5xx: ``/export`` answers HTTP 200 with a legacy error body whatever
the body or id (a bug there is a logged -9, see :func:`legacy_guard`), and ``/files`` answers
404 for any name the file system refuses.  Reads pass the same SessionId check as POST: with
EXPORT_SESSION_IDS set, ``GET /export/{id}`` answers -3 and ``GET /files/...`` 401 without a
valid id in the ``X-Session-Id`` header or the ``SessionId`` query parameter."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from ingress.access import AccessLog
from ingress.metrics import CONTENT_TYPE, IngressMetrics
from ingress.openapi import docs_page, openapi_json
from ingress.page import StatusPage
from pipeline.errors import (
    ExportError,
    InvalidRequest,
    Overloaded,
    SourceNotFound,
    Unauthorized,
)
from pipeline.jobs import FINAL_STATES, JobStatus, accepted_update, advance
from pipeline.legacy.response import legacy_response
from pipeline.stages.context import now_ms
from schemas import REQUESTS, STATUS
from schemas.request import JOB_ID_PATTERN

if TYPE_CHECKING:
    from ingress.pipe import Pipeline
    from ingress.replica import StatusReplica
    from schemas.request import ExportRequest

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
UNKNOWN_GRACE_S = 1.0  # how long GET /export/{id} waits for a job it has not seen yet
SUBMITTED_TTL_MS = 10 * 60 * 1000  # forget local submissions the replica never confirmed
# Where a read (GET) carries its SessionId; a POST carries it in the body.
SESSION_HEADER = "X-Session-Id"
SESSION_QUERY = "SessionId"
# Linux's NAME_MAX and PATH_MAX: a longer name makes the OS raise instead of answer "no".
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4096
_JOB_ID = re.compile(JOB_ID_PATTERN)
# The routes whose every answer is a legacy body (HTTP 200 and an ErrorCode).
_LEGACY_ROUTES = frozenset({"export_post", "export_get"})


class Ingress:
    """One HTTP server in front of the pipeline; any number of them can run."""

    def __init__(self, pipe: Pipeline, replica: StatusReplica) -> None:
        self.pipe = pipe
        self.settings = pipe.settings
        self.replica = replica
        # job_id -> ms: jobs this instance published that the replica has not shown yet, so
        # that a quick second POST is a poll and not a second publication.
        self.submitted: dict[str, int] = {}
        self.accepting = True
        # called with each accepted job's first status row, before the caller hears "accepted"
        # (the one-box journal, pipeline/journal.py)
        self.on_accepted: list[Callable[[str, dict[str, Any]], None]] = []
        self._runner: web.AppRunner | None = None
        from pipeline.auth import session_check_for

        self.sessions = session_check_for(pipe.settings)
        self.metrics = IngressMetrics(pipe, replica.rows)
        replica.listen(self.metrics.on_row)
        replica.listen(self._on_row)
        self.output_root: Path | None = None
        if pipe.ctx is not None and not pipe.ctx.store.root.startswith("s3://"):
            self.output_root = Path(pipe.ctx.store.root).resolve()
        elif not self.settings.output_url.startswith("s3://"):
            self.output_root = Path(self.settings.output_url).resolve()

    # --- server ---------------------------------------------------------------------------

    def web_app(self) -> web.Application:
        # Metrics outermost: they count what legacy_guard answers too.
        middlewares = [self.metrics.middleware, legacy_guard]
        app = web.Application(client_max_size=MAX_BODY, middlewares=middlewares)
        page = StatusPage(
            self.replica.rows,
            self._read_denied,
            output_root=self.output_root,
            servable=servable_file,
        )
        app.add_routes(
            [
                web.get("/", page.index),
                web.get("/jobs", page.jobs),
                web.post("/export", self.post_export, name="export_post"),
                # Any path under /export/ is a poll: a malformed id answers -2, not a bare 404.
                web.get(r"/export/{job_id:[\s\S]+}", self.get_export, name="export_get"),
                web.get("/files/{path:.+}", self.get_file),
                web.get("/healthz", self.healthz),
                web.get("/metrics", self.get_metrics),
                web.get("/openapi.json", openapi_json),
                web.get("/docs", docs_page),
            ]
        )
        return app

    async def start(self, host: str, port: int) -> None:
        await self.metrics.start(
            self.replica.bootstrap,
            client_id=self.replica.client_id,
            kafka_options=self.replica.kafka_options,
        )
        runner = web.AppRunner(self.web_app(), access_log_class=AccessLog, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, host, port, reuse_address=True).start()
        self._runner = runner

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        await self.metrics.stop()

    def pending_jobs(self) -> list[str]:
        """Jobs this instance accepted that are not finished yet (for a clean shutdown)."""
        out = []
        for job_id in self.submitted:
            row = self.replica.get(job_id)
            if row is None or row.get("state") not in FINAL_STATES:
                out.append(job_id)
        return out

    # --- handlers -------------------------------------------------------------------------

    async def post_export(self, request: web.Request) -> web.Response:
        now = now_ms()
        from pipeline.legacy.request import parse_export_body

        try:
            body = await _read_json(request)
            req = parse_export_body(body, self.settings, now_ms=now, sessions=self.sessions)
        except ExportError as e:
            return _json(legacy_response(None, None, error=e, now_ms=now))
        try:
            await self._submit_once(req, now)
        except ExportError as e:
            return _json(legacy_response(req, None, error=e, now_ms=now))
        if req.kind == "thumbnail":
            row = await self.replica.wait_final(req.job_id, self.settings.sync_wait_ms / 1000)
        else:
            row = self.replica.get(req.job_id)
        return _json(legacy_response(req, _status(row), now_ms=now_ms()))

    async def get_export(self, request: web.Request) -> web.Response:
        # Auth first: a caller without a SessionId learns nothing, not even the id's form.
        denied = self._read_denied(request)
        if denied is not None:
            return _error_answer(denied, "")
        raw = request.match_info["job_id"]
        job_id = raw.upper()
        if _JOB_ID.match(job_id) is None:
            # Never echoed: it may be kilobytes long or hold control characters.
            err = InvalidRequest(
                f"JobId must be the 32 hex digits POST /export answered "
                f"(got {len(raw)} characters that are not)",
                field="JobId",
            )
            return _error_answer(err, "")
        row = self.replica.get(job_id)
        if row is None:
            # Accepted a moment ago by another ingress: its first status is one hop away.
            row = await self.replica.wait_for(job_id, _known, UNKNOWN_GRACE_S)
        if row is None:
            return _error_answer(SourceNotFound(f"no job {job_id}", obj=job_id), job_id)
        return _json(legacy_response(None, _status(row), now_ms=now_ms()))

    async def get_file(self, request: web.Request) -> web.StreamResponse:
        denied = self._read_denied(request)
        if denied is not None:
            raise web.HTTPUnauthorized(
                text=f"{denied}\n", headers={"WWW-Authenticate": f'{SESSION_HEADER} realm="files"'}
            )
        if self.output_root is None:
            raise web.HTTPNotFound(text="outputs are in S3, not served here\n")
        target = servable_file(self.output_root, request.match_info["path"])
        if target is None:
            raise web.HTTPNotFound(text="no such file\n")
        return web.FileResponse(target)

    def _read_denied(self, request: web.Request) -> ExportError | None:
        """Why this read may not go ahead, or None.  The same check POST makes on the body's
        SessionId (constant-time; open when EXPORT_SESSION_IDS is unset)."""
        session_id = request.headers.get(SESSION_HEADER) or request.query.get(SESSION_QUERY)
        try:
            self.sessions.check(session_id)
        except ExportError as e:
            return Unauthorized(
                f"{e.message}: send it in the {SESSION_HEADER} header "
                f"or the {SESSION_QUERY} query parameter",
                field=e.field,
            )
        return None

    async def healthz(self, request: web.Request) -> web.Response:
        ok = self.accepting
        return _json(
            {"ok": ok, "jobs_known": len(self.replica.rows), "worker": self.settings.worker_id},
            status=200 if ok else 503,
        )

    async def get_metrics(self, request: web.Request) -> web.Response:
        body = self.metrics.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    def pending_count(self) -> int:
        """Unfinished jobs: the replica's, plus those published here it does not show yet."""
        unseen = sum(1 for job_id in self.submitted if self.replica.get(job_id) is None)
        return self.replica.unfinished_count() + unseen

    def _on_row(self, job_id: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if new is None:
            # Forgotten after EXPORT_JOB_TTL_MS: the same body again starts a new job.
            self.submitted.pop(job_id, None)

    # --- submission -----------------------------------------------------------------------

    async def _submit_once(self, req: ExportRequest, now: int) -> None:
        """Publish the job unless it is known (same body again = a poll of the same job)."""
        if self.replica.get(req.job_id) is not None or req.job_id in self.submitted:
            return
        if not self.accepting:
            self.metrics.rejected.labels(reason="shutting_down").inc()
            raise Overloaded("shutting down: not accepting new jobs", obj="ingress")
        pending = self.pending_count()
        if pending >= self.settings.max_pending:
            self.metrics.rejected.labels(reason="overloaded").inc()
            raise Overloaded(
                f"{pending} jobs are unfinished (the limit is {self.settings.max_pending}); "
                "try again after TimeWait",
                field="EXPORT_MAX_PENDING",
                obj="ingress",
            )
        # The one check worth doing before the job exists: an unknown LivePath answers
        # -1 "not such dir" at once instead of after a trip through the pipeline.
        await self._check_source(req)
        self._forget_old(now)
        self.submitted[req.job_id] = now
        try:
            # Handed to a resolve agent of this process only after "accepted" is sent, so the
            # job's status events keep their order (agents/local.py).
            sent = await self.pipe.send(REQUESTS, req.job_id, req, acked=True, local=False)
            update = accepted_update(req, now_ms=now)
            await self.pipe.send(STATUS, req.job_id, update, acked=True)
            for hook in self.on_accepted:
                hook(req.job_id, advance(None, update).to_dict())
        except Exception:
            self.submitted.pop(req.job_id, None)
            raise
        self.pipe.hand(REQUESTS, req.job_id, req, sent)
        self.metrics.accepted.inc()

    async def _check_source(self, req: ExportRequest) -> None:
        ctx = self.pipe.ctx
        if ctx is None:
            return
        reader, manifest = ctx.archive(req)
        if not await ctx.io(reader.exists, manifest):
            raise SourceNotFound(f"no archive at LivePath {req.live_path}", field="LivePath")

    def _forget_old(self, now: int) -> None:
        for job_id, at in list(self.submitted.items()):
            if now - at > SUBMITTED_TTL_MS:
                del self.submitted[job_id]


def _known(row: dict[str, Any] | None) -> bool:
    return row is not None


def _status(row: dict[str, Any] | None) -> JobStatus | None:
    return JobStatus.from_dict(row) if row is not None else None


@web.middleware
async def legacy_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn an unexpected exception in an /export handler into a logged -9 legacy body: the
    contract promises every caller HTTP 200 and an ErrorCode, so a bug must not be a 500."""
    if request.match_info.route.name not in _LEGACY_ROUTES:
        return await handler(request)
    try:
        return await handler(request)
    except web.HTTPException:
        raise  # deliberate answers
    except Exception:
        # The path only: a read's query may carry a SessionId, which no log line may hold.
        log.exception("unexpected error answering %s %s", request.method, request.path)
        err = ExportError("internal error; its log has the traceback", obj="ingress")
        return _json(legacy_response(None, None, error=err, now_ms=now_ms()))


async def _read_json(request: web.Request) -> Any:
    """The JSON body, or InvalidRequest naming ``body``.  Read as bytes and decoded as UTF-8
    JSON whatever the Content-Type says: legacy callers send text/plain or nothing, and a
    charset Python does not know must not become a 500."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise InvalidRequest(f"the body is over {MAX_BODY} bytes", field="body") from None
    try:
        return orjson.loads(raw)
    except ValueError as e:  # orjson's message says where, never what the bytes were
        raise InvalidRequest(f"the body is not valid JSON: {e}", field="body") from None


def servable_file(root: Path, rel: str) -> Path | None:
    """The regular file under ``root`` that ``rel`` names, or None: outside the root (``..``,
    symlinks out), under staging/, missing, or a name the file system refuses (NUL bytes,
    over NAME_MAX or PATH_MAX, not encodable)."""
    if not _plausible_name(rel):
        return None
    try:
        target = (root / rel).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            return None
    except (OSError, ValueError, RuntimeError):  # RuntimeError: a symlink loop (3.11)
        return None
    if target.relative_to(root).parts[0] == "staging":
        return None
    return target


def _plausible_name(rel: str) -> bool:
    try:
        raw = rel.encode()
    except UnicodeEncodeError:  # a lone surrogate
        return False
    if b"\0" in raw or len(raw) > MAX_PATH_BYTES:
        return False
    return all(len(part) <= MAX_NAME_BYTES for part in raw.split(b"/"))


def _error_answer(err: ExportError, job_id: str) -> web.Response:
    body = legacy_response(None, None, error=err, now_ms=now_ms())
    body["JobId"] = job_id
    return _json(body)


def _json(body: dict[str, Any], status: int = 200) -> web.Response:
    # OPT_NON_STR_KEYS: stage timings and metadata may be keyed by ints in user data.
    body_bytes = orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
    return web.Response(body=body_bytes, status=status, content_type="application/json")


async def drain(
    ingress: Ingress, timeout: float, *, abort: asyncio.Event | None = None
) -> list[str]:
    """Stop accepting new jobs and wait up to ``timeout`` s (or until ``abort``) for
    accepted ones to finish; return the ids still unfinished."""
    ingress.accepting = False
    deadline = time.monotonic() + timeout
    while ingress.pending_jobs() and time.monotonic() < deadline:
        if abort is not None and abort.is_set():
            break
        await asyncio.sleep(0.2)
    return ingress.pending_jobs()
