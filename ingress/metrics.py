"""``GET /metrics``: Prometheus text format (prometheus_client, one registry per ingress).

What one process exposes:

- ``mediaexport_jobs{state}``: jobs by state in this ingress's replica of the status table
  (cluster-wide; every ingress holds all rows, so do not sum it across instances);
- ``mediaexport_jobs_accepted_total``: new jobs this ingress published;
- ``mediaexport_jobs_rejected_total{reason}``: new jobs this ingress refused (overloaded,
  shutting down);
- ``mediaexport_jobs_completed_total`` / ``mediaexport_jobs_failed_total{error_code}``: jobs
  the replica saw reach ``done`` / ``failed`` since this process started (cluster-wide; the
  replica reads the table from the beginning at start-up, so a restart counts finished jobs
  again);
- ``mediaexport_stage_duration_seconds{stage}``: a histogram of the ``timings`` of the jobs
  completed since this process started, under the stages' names (resolve, waiting_live,
  frames, transcode, upload), read from export.completed (ingress/completions.py);
- ``mediaexport_consumer_lag{group,topic,partition}``: what each consumer group has not
  committed yet (ingress/lag.py);
- ``mediaexport_http_requests_total{route,method,status}`` and
  ``mediaexport_http_request_duration_seconds{route,method}``: this ingress's requests;
- ``mediaexport_transcodes_in_flight`` / ``mediaexport_frame_grabs_in_flight`` and their
  ``..._limit``: what this worker runs now behind its semaphores;
- ``mediaexport_deadletter_events_total``: events this worker sent to export.deadletter.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ingress.completions import CompletedTimings
from ingress.lag import ConsumerLag
from pipeline import errors
from pipeline.jobs import FINAL_STATES, STATES

if TYPE_CHECKING:
    from ingress.pipe import Pipeline
    from pipeline.stages.context import SlotKind

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# seconds: frame grabs and uploads take tenths, transcodes and live waits minutes
STAGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
# seconds: most answers take milliseconds, a thumbnail's POST waits up to EXPORT_SYNC_WAIT_MS
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
REJECT_REASONS = ("overloaded", "shutting_down")
# Every ErrorCode a job can fail with, shown as 0 before the first failure so that a rate()
# alert has a series to start from.
ERROR_CODES = sorted(
    {
        cls.code
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.ExportError)
    }
)
UNMATCHED_ROUTE = "unmatched"  # any path no route matched: one label, not one per path

# No ``*_created`` series: a scrape shows the counters, not when this process made them.
disable_created_metrics()


class IngressMetrics:
    """Counters fed by the ingress and the replica; gauges read at scrape time."""

    def __init__(self, pipe: Pipeline, rows: dict[str, dict[str, Any]]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.accepted = Counter(
            "mediaexport_jobs_accepted",
            "New jobs this ingress published to export.requests.",
            registry=self.registry,
        )
        self.rejected = Counter(
            "mediaexport_jobs_rejected",
            "New jobs this ingress refused with ErrorCode -4.",
            ["reason"],
            registry=self.registry,
        )
        for reason in REJECT_REASONS:
            self.rejected.labels(reason=reason)  # shown as 0 before the first refusal
        self.completed = Counter(
            "mediaexport_jobs_completed",
            "Jobs the status replica saw reach done since this process started.",
            registry=self.registry,
        )
        self.failed = Counter(
            "mediaexport_jobs_failed",
            "Jobs the status replica saw reach failed since this process started, by ErrorCode.",
            ["error_code"],
            registry=self.registry,
        )
        for code in ERROR_CODES:
            self.failed.labels(error_code=str(code))
        self.stage_seconds = Histogram(
            "mediaexport_stage_duration_seconds",
            "Stage timings (export.completed timings) of jobs completed since this process "
            "started.",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        self.http_requests = Counter(
            "mediaexport_http_requests",
            "HTTP requests this ingress answered, by route, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.http_seconds = Histogram(
            "mediaexport_http_request_duration_seconds",
            "Time this ingress took to answer HTTP requests, by route and method.",
            ["route", "method"],
            buckets=HTTP_BUCKETS,
            registry=self.registry,
        )
        self.lag = ConsumerLag(self.registry)
        self.timings = CompletedTimings(self.stage_seconds)
        self.registry.register(_LiveGauges(pipe, rows))

    async def start(
        self, bootstrap: str, *, client_id: str, kafka_options: Mapping[str, Any] | None = None
    ) -> None:
        """Start reading the broker: consumer lag and export.completed's timings (connected
        like every other client, ``kafka_options`` from service/kafka_auth.py)."""
        options = dict(kafka_options or {})
        await self.lag.start(bootstrap, client_id=f"{client_id}-lag", kafka_options=options)
        await self.timings.start(bootstrap, client_id=f"{client_id}-timings", kafka_options=options)

    async def stop(self) -> None:
        await self.timings.stop()
        await self.lag.stop()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Count and time every request by its route's pattern (``/export/{job_id}``), so
        the label stays one per route whatever the paths."""
        started = time.perf_counter()
        status = 500  # what aiohttp answers for an exception that escapes every handler
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as e:
            status = e.status
            raise
        finally:
            route = _route(request)
            self.http_requests.labels(route=route, method=request.method, status=str(status)).inc()
            self.http_seconds.labels(route=route, method=request.method).observe(
                time.perf_counter() - started
            )

    def on_row(self, job_id: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        """Replica listener: count a job once, when it first reaches a final state."""
        if new is None or new.get("state") not in FINAL_STATES:
            return
        if old is not None and old.get("state") in FINAL_STATES:
            return
        if new["state"] == "failed":
            code = (new.get("error") or {}).get("code", errors.ExportError.code)
            self.failed.labels(error_code=str(code)).inc()
            return
        self.completed.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED_ROUTE


class _LiveGauges(Collector):
    """Gauges whose values are read when scraped: replica rows, CPU slots, dead letters."""

    def __init__(self, pipe: Pipeline, rows: dict[str, dict[str, Any]]) -> None:
        self.pipe = pipe
        self.rows = rows

    def collect(self) -> Iterable[Metric]:
        return list(self._collect())

    def _collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily(
            "mediaexport_jobs", "Jobs by state in the status replica.", labels=["state"]
        )
        counts = dict.fromkeys(STATES, 0)
        for row in list(self.rows.values()):
            state = row.get("state")
            if state in counts:
                counts[state] += 1
        for state, n in counts.items():
            jobs.add_metric([state], n)
        yield jobs

        ctx = self.pipe.ctx
        settings = self.pipe.settings
        slots: tuple[tuple[SlotKind, str, int], ...] = (
            ("transcode", "transcodes", settings.max_transcodes),
            ("frame", "frame_grabs", settings.max_frame_grabs),
        )
        for kind, name, limit in slots:
            busy = ctx.in_flight(kind) if ctx is not None else 0
            yield GaugeMetricFamily(
                f"mediaexport_{name}_in_flight",
                f"{name.replace('_', ' ').capitalize()} running on this worker now.",
                value=busy,
            )
            yield GaugeMetricFamily(
                f"mediaexport_{name}_limit",
                f"Most {name.replace('_', ' ')} this worker runs at once.",
                value=limit,
            )
        yield CounterMetricFamily(
            "mediaexport_deadletter_events",
            "Events this worker sent to export.deadletter.",
            value=self.pipe.dead_lettered,
        )
