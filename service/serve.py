"""``mediaexport up`` (the embedded one-box stack) and ``mediaexport worker`` (agents + ingress
against an existing Kafka cluster).

``up`` starts the embedded Tansu broker unless EXPORT_KAFKA_BOOTSTRAP is set, writes a demo
recording on first start, runs one faust worker with every agent and the HTTP ingress, and
prints exactly one line ``ready http://HOST:PORT kafka=HOST:PORT data=DIR`` once requests are
accepted.  On Ctrl-C/SIGTERM it stops accepting new jobs, lets the accepted ones finish
(bounded by EXPORT_DRAIN_TIMEOUT_MS), then stops the worker and the broker: no orphan process.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.settings import Settings

log = logging.getLogger("mediaexport")

DEMO_LIVE_PATH = "mp4/demo/1/stream.mpd"
RESTORE_WAIT_S = 60.0  # per restored finished job, for the status replica to show it


def add_commands(sub: Any) -> None:
    up = sub.add_parser(
        "up",
        help="one box: embedded broker, every agent, the HTTP ingress, a demo recording",
    )
    up.add_argument("--port", type=int, default=None, help="HTTP port (EXPORT_HTTP_PORT, 8080)")
    up.add_argument("--data-dir", default=None, help="data folder (EXPORT_DATA_DIR, ./var)")
    up.add_argument("--loglevel", default="warning", help="log level (default: warning)")
    up.set_defaults(func=cmd_up)

    worker = sub.add_parser(
        "worker", help="agents + HTTP ingress against EXPORT_KAFKA_BOOTSTRAP (for compose)"
    )
    worker.add_argument("--port", type=int, default=None, help="HTTP port (EXPORT_HTTP_PORT)")
    worker.add_argument("--data-dir", default=None, help="scratch folder (EXPORT_DATA_DIR)")
    worker.add_argument("--loglevel", default="warning", help="log level (default: warning)")
    worker.set_defaults(func=cmd_worker)


def _settings(args: argparse.Namespace) -> Settings | None:
    from pipeline.errors import ExportError
    from pipeline.settings import Settings

    try:
        settings = Settings.from_env(http_port=args.port, data_dir=args.data_dir)
    except ExportError as e:
        print(f"mediaexport: {e}", file=sys.stderr)
        return None
    for warning in Settings.unknown_variables():  # a typo must not pass for a setting
        print(f"mediaexport: warning: {warning}", file=sys.stderr)
    return settings


def cmd_up(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings is None:
        return 2
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    _setup_logging(args.loglevel, settings.log_format)
    broker = None
    bootstrap = settings.kafka_bootstrap
    from pipeline.errors import ExportError
    from service.broker import EmbeddedBroker

    try:
        if bootstrap is None:
            broker = EmbeddedBroker(
                settings.tansu_bin,
                port=settings.kafka_port,
                log_path=settings.data_dir / "broker.log",
            ).start()
            bootstrap = broker.bootstrap
        ensure_demo_archive(settings)
        # Only the memory-only embedded broker needs the journal (pipeline/journal.py).
        journal = settings.data_dir / "journal.jsonl" if broker is not None else None
        return run_worker(settings, bootstrap, loglevel=args.loglevel, journal=journal)
    except ExportError as e:
        print(f"mediaexport: {e}", file=sys.stderr)
        return 1
    finally:
        if broker is not None:
            broker.stop()


def cmd_worker(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings is None:
        return 2
    if settings.kafka_bootstrap is None:
        print(
            "mediaexport: EXPORT_KAFKA_BOOTSTRAP is not set (field EXPORT_KAFKA_BOOTSTRAP); "
            "use `mediaexport up` for the embedded broker",
            file=sys.stderr,
        )
        return 2
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    _setup_logging(args.loglevel, settings.log_format)
    return run_worker(settings, settings.kafka_bootstrap, loglevel=args.loglevel)


# Our loggers: a job's state changes and the service's lifecycle show at the default level.
OWN_LOGGERS = ("mediaexport", "agents", "ingress", "pipeline", "schemas", "service")
# faust prints ~150 lines of tables and banners per start at info: kept for --loglevel debug.
CHATTY_LOGGERS = ("faust", "mode", "aiokafka")
JSON_FIELDS = {"levelname": "level", "name": "logger"}


def _setup_logging(level: str, log_format: str = "text") -> None:
    """One handler on stderr, text or one JSON object per line (EXPORT_LOG_FORMAT).

    ``level`` applies to everything but two groups: our own loggers never hide info (one
    line per job state change is the point of the log), and faust, mode and aiokafka stay
    at warning unless ``level`` is debug."""
    chosen = logging.getLevelNamesMapping().get(level.upper())
    if chosen is None:
        raise SystemExit(f"mediaexport: --loglevel {level!r} is not a log level")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_formatter(log_format))
    logging.basicConfig(level=chosen, handlers=[handler], force=True)
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(min(logging.INFO, chosen))
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(
            chosen if chosen <= logging.DEBUG else max(chosen, logging.WARNING)
        )


def _formatter(log_format: str) -> logging.Formatter:
    if log_format != "json":
        return logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    from pythonjsonlogger.json import JsonFormatter

    # Fields a line passes with ``extra`` (job_id, stage, ms, ...) become keys of its object.
    return JsonFormatter(
        "%(levelname)s %(name)s %(message)s", rename_fields=JSON_FIELDS, timestamp="ts"
    )


def ensure_demo_archive(settings: Settings) -> Path | None:
    """On first start, write the synthetic demo recording into a local default archive."""
    if settings.archive_url.startswith("s3://"):
        return None
    manifest = Path(settings.archive_url) / DEMO_LIVE_PATH
    if manifest.exists():
        return manifest
    from pipeline.synthetic.demo import write_demo_archive

    path = Path(write_demo_archive(manifest.parent))
    log.info("demo recording written: %s (LivePath %s)", path, DEMO_LIVE_PATH)
    return path


def run_worker(
    settings: Settings, bootstrap: str, *, loglevel: str = "warning", journal: Path | None = None
) -> int:
    """Run agents + ingress until a signal; returns the exit status."""
    from pipeline.auth import session_check_for
    from pipeline.cache import return_freed_memory

    return_freed_memory()  # before any picture: the cache's budget is then what RSS holds
    log.warning("%s", session_check_for(settings).startup_message())
    worker = build_worker(settings, bootstrap, loglevel=loglevel, journal=journal)
    try:
        worker.execute_from_commandline()
    except SystemExit as e:
        return int(e.code or 0) if not isinstance(e.code, str) else 1
    return 0


def build_worker(
    settings: Settings, bootstrap: str, *, loglevel: str = "warning", journal: Path | None = None
) -> Any:
    """A faust Worker running every agent, plus the ingress once the worker is ready
    (``journal``: remember jobs across restarts of a memory-only broker)."""
    import faust

    from ingress.http import Ingress
    from ingress.replica import StatusReplica
    from pipeline.journal import Journal
    from schemas import STATUS
    from service.app import create_pipeline
    from service.kafka_auth import client_options

    pipe = create_pipeline(settings, bootstrap)
    replica = StatusReplica(
        bootstrap,
        pipe.status_changelog,
        client_id=settings.worker_id,
        ttl_ms=settings.job_ttl_ms,
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        kafka_options=client_options(settings),
    )
    ingress = Ingress(pipe, replica)
    # A waiting POST learns its job is done as the upload agent sends the final status.
    pipe.local.on_sent(STATUS, replica.fold_sent)

    stopping = _Stopping()
    ready = asyncio.Event()  # the ready line is out (or the worker stops): the watch ends

    class ServiceWorker(faust.Worker):
        async def on_start(self) -> None:
            await super().on_start()
            self.add_future(self._watch_start())

        async def _watch_start(self) -> None:
            from service.startup import STALL_S, watch_start

            what = await watch_start(self.app, ready, stall_s=STALL_S)
            if what and not stopping.draining:
                _give_up_start(self, f"no progress for {STALL_S:.0f} s waiting for {what}")

        async def on_startup_finished(self) -> None:
            await super().on_startup_finished()
            if self._shutdown_immediately:
                ready.set()
                return
            await pipe.declare_topics()
            restored: list[str] = []
            if journal is not None:
                restored = await restore_journal(pipe, Journal(journal), replica, ingress)
            await replica.start()
            # Finished jobs answer as before from the ready line on, not a moment later.
            for job_id in restored:
                await replica.wait_final(job_id, RESTORE_WAIT_S)
            await ingress.start(settings.http_host, settings.http_port)
            data = settings.data_dir.resolve()
            print(
                f"ready http://{settings.http_host}:{settings.http_port} "
                f"kafka={bootstrap} data={data}",
                flush=True,
            )
            ready.set()

        def install_signal_handlers(self) -> None:
            # mode's own SIGINT handler writes a banner to stderr before it schedules the
            # stop; when stderr is a closed pipe (`make run | tee log`, tee gone after
            # Ctrl-C) that write raises, and the service kept serving through every signal.
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.loop.add_signal_handler(sig, self._stop_signal, sig)

        def _stop_signal(self, sig: signal.Signals) -> None:
            if stopping.draining:
                log.warning("signal %s again: stopping without waiting for jobs", sig.name)
                stopping.abort.set()
                return
            log.info("signal %s: no new jobs; draining accepted jobs", sig.name)
            stopping.draining = True
            # Private to faust/mode (pinned faust-streaming <0.16): the flag stops a worker
            # still starting up, and _schedule_shutdown is the one stop path both use.
            self._shutdown_immediately = True
            self._schedule_shutdown(sig)

        async def on_stop(self) -> None:
            # Before the agents stop (mode stops children after on_stop): the accepted jobs
            # still run while the ingress refuses new ones.  Only a signal drains; a worker
            # that stops because it crashed has nobody left to finish them.
            ready.set()
            if stopping.draining:
                await _drain(ingress, settings, stopping.abort)
            await ingress.stop()
            await replica.stop()
            await pipe.local.stop()
            await super().on_stop()

        async def on_shutdown(self) -> None:
            await super().on_shutdown()
            if pipe.ctx is not None:
                pipe.ctx.close()

    worker = ServiceWorker(
        pipe.app, loglevel=loglevel, redirect_stdouts=False, override_logging=False
    )
    worker.spinner = None  # the one line on stdout is the ready line
    return worker


EXIT_GRACE_S = 30.0  # a stalled start's stop may itself hang on the stuck step


def _give_up_start(worker: Any, reason: str) -> None:
    """Stop a worker whose start stalled, exiting 1 with ``reason`` on stderr."""
    import os

    from service.startup import StartupStalled

    log.error("start: %s; exiting", reason)
    worker.crash_reason = StartupStalled(reason)  # re-raised by mode after the stop: exit 1
    worker._shutdown_immediately = True  # private to mode/faust, as in _stop_signal
    worker._schedule_shutdown(signal.SIGTERM)

    def hard_exit() -> None:
        log.error("start: the stop did not finish in %.0f s; exiting now", EXIT_GRACE_S)
        os._exit(1)

    worker.loop.call_later(EXIT_GRACE_S, hard_exit)


@dataclass
class _Stopping:
    draining: bool = False  # a first SIGINT/SIGTERM came: drain, then stop
    abort: asyncio.Event = field(default_factory=asyncio.Event)  # a second one: stop now


async def _drain(ingress: Any, settings: Settings, abort: asyncio.Event) -> None:
    from ingress.http import drain

    accepted = len(ingress.submitted)
    unfinished = await drain(ingress, settings.drain_timeout_ms / 1000, abort=abort)
    if unfinished:
        log.warning(
            "shutdown: %d of %d accepted jobs unfinished: %s",
            len(unfinished),
            accepted,
            ", ".join(unfinished),
        )
    else:
        log.info("shutdown: all %d accepted jobs finished", accepted)


async def restore_journal(pipe: Any, journal: Any, replica: Any, ingress: Any) -> list[str]:
    """Bring back the jobs of the last run, then journal every job of this one; returns the
    ids of the finished ones (the ingress waits to see them final before it answers)."""
    from pipeline.journal import restore_events
    from pipeline.stages.context import now_ms
    from schemas import REQUESTS

    rows = journal.compact(now_ms=now_ms(), ttl_ms=pipe.settings.job_ttl_ms)
    events = restore_events(rows, now_ms=now_ms())
    for topic, key, event in events:
        await pipe.send(topic, key, event, acked=True)
    if rows:
        again = sum(1 for topic, _, _ in events if topic == REQUESTS)
        log.info("journal: %d jobs restored, %d of them run again", len(rows), again)
    replica.listen(lambda job_id, old, new: journal.record(job_id, new))
    ingress.on_accepted.append(journal.record)  # before the caller hears "accepted"
    return [job_id for job_id, row in rows.items() if row.get("state") in ("done", "failed")]
