"""The HTTP adapter (aiohttp): legacy ``POST /export``, ``GET /export/{job_id}``,
``GET /files/...`` for local outputs, ``GET /healthz``, ``GET /metrics``.  Handlers only
wire: the legacy body is validated by pipeline.legacy, answers come from
pipeline.jobs.legacy_response, and the job's state from the status replica (see
ingress/replica.py).

Overload: a NEW job is refused with ErrorCode -4 and a TimeWait while ``max_pending``
(EXPORT_MAX_PENDING) jobs or more are unfinished; polls of known jobs answer as usual."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ingress.metrics import CONTENT_TYPE, IngressMetrics
from pipeline.errors import ExportError, InvalidRequest, Overloaded, SourceNotFound
from pipeline.jobs import JobStatus, accepted_update, advance, legacy_response
from pipeline.stages.events import request_event, status_event
from schemas import REQUESTS, STATUS

if TYPE_CHECKING:
    from ingress.replica import StatusReplica
    from pipeline.app import Pipeline
    from schemas.request import ExportRequest

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
UNKNOWN_GRACE_S = 1.0  # how long GET /export/{id} waits for a job it has not seen yet
SUBMITTED_TTL_MS = 10 * 60 * 1000  # forget local submissions the replica never confirmed


def now_ms() -> int:
    return int(time.time() * 1000)


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
        app = web.Application(client_max_size=MAX_BODY)
        app.add_routes(
            [
                web.post("/export", self.post_export),
                web.get("/export/{job_id}", self.get_export),
                web.get("/files/{path:.+}", self.get_file),
                web.get("/healthz", self.healthz),
                web.get("/metrics", self.get_metrics),
            ]
        )
        return app

    async def start(self, host: str, port: int) -> None:
        runner = web.AppRunner(self.web_app(), access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, host, port, reuse_address=True).start()
        self._runner = runner

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    def pending_jobs(self) -> list[str]:
        """Jobs this instance accepted that are not finished yet (for a clean shutdown)."""
        out = []
        for job_id in self.submitted:
            row = self.replica.get(job_id)
            if row is None or row.get("state") not in ("done", "failed"):
                out.append(job_id)
        return out

    # --- handlers -------------------------------------------------------------------------

    async def post_export(self, request: web.Request) -> web.Response:
        now = now_ms()
        try:
            body = await request.json(loads=_loads)
        except (ValueError, UnicodeDecodeError):
            err = InvalidRequest("the body is not valid JSON", field="body")
            return _json(legacy_response(None, None, error=err, now_ms=now))
        except web.HTTPRequestEntityTooLarge:
            err = InvalidRequest(f"the body is over {MAX_BODY} bytes", field="body")
            return _json(legacy_response(None, None, error=err, now_ms=now))
        from pipeline.legacy import parse_export_body

        try:
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
        job_id = request.match_info["job_id"].upper()
        row = self.replica.get(job_id)
        if row is None:
            # Accepted a moment ago by another ingress: its first status is one hop away.
            row = await self.replica.wait_for(job_id, _known, UNKNOWN_GRACE_S)
        if row is None:
            err = SourceNotFound(f"no job {job_id}", obj=job_id)
            body = legacy_response(None, None, error=err, now_ms=now_ms())
            body["JobId"] = job_id
            return _json(body)
        return _json(legacy_response(None, _status(row), now_ms=now_ms()))

    async def get_file(self, request: web.Request) -> web.StreamResponse:
        if self.output_root is None:
            raise web.HTTPNotFound(text="outputs are in S3, not served here\n")
        rel = request.match_info["path"]
        target = (self.output_root / rel).resolve()
        # Never anything outside the output root (../, symlinks), and never staging copies.
        if not target.is_relative_to(self.output_root) or not target.is_file():
            raise web.HTTPNotFound(text="no such file\n")
        if target.relative_to(self.output_root).parts[0] == "staging":
            raise web.HTTPNotFound(text="no such file\n")
        return web.FileResponse(target)

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
            await self.pipe.send(REQUESTS, req.job_id, request_event(req), acked=True)
            update = accepted_update(req, now_ms=now)
            await self.pipe.send(STATUS, req.job_id, status_event(**update.to_dict()), acked=True)
            for hook in self.on_accepted:
                hook(req.job_id, advance(None, update).to_dict())
        except Exception:
            self.submitted.pop(req.job_id, None)
            raise
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


def _loads(text: str) -> Any:
    from schemas import codec

    return codec.loads(text)


def _json(body: dict[str, Any], status: int = 200) -> web.Response:
    from schemas import codec

    return web.Response(body=codec.dumps(body), status=status, content_type="application/json")


async def drain(ingress: Ingress, timeout: float) -> list[str]:
    """Stop accepting new jobs and wait up to ``timeout`` s for accepted ones to finish;
    return the ids still unfinished."""
    ingress.accepting = False
    deadline = time.monotonic() + timeout
    while ingress.pending_jobs() and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    return ingress.pending_jobs()
