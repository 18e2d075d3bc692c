"""The faust App, its topics and tables, built from one Settings object.

Every topic carries raw bytes (JSON written by :func:`schemas.encode` from the topic's one
msgspec definition) and is decoded by the agent with :func:`schemas.decode`, so that an
undecodable event can be dead-lettered with its original bytes instead of being dropped
inside faust's deserializer.

Timeouts are the ones measured against the embedded Tansu broker:
a consumer-group join waits for the rebalance timeout, so 3 s instead of faust's 60 s makes
a worker ready in seconds; a 6 s session timeout lets a surviving worker take over a dead
one's partitions quickly.  Long transcodes run in an executor, so heartbeats keep flowing;
``broker_max_poll_interval`` is raised anyway so a slow event never looks like a dead worker.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import faust
from faust.types import TP

import schemas
from agents import register_all
from agents.local import LocalDelivery
from pipeline.stages.context import StageContext
from service import codec, kafka_auth

if TYPE_CHECKING:
    from pipeline.settings import Settings

APP_ID = "mediaexport"

# seconds (see the module docstring)
REBALANCE_TIMEOUT_S = 3.0
SESSION_TIMEOUT_S = 6.0
HEARTBEAT_INTERVAL_S = 1.0
MAX_POLL_INTERVAL_S = 3600.0


def broker_urls(bootstrap: str) -> list[str]:
    """``host1:9092,host2:9092`` → faust's ``kafka://`` URL list."""
    return [f"kafka://{server.strip()}" for server in bootstrap.split(",") if server.strip()]


@dataclass
class Pipeline:
    """The App with its topics and tables; agents and the ingress are wired onto it."""

    app: faust.App
    settings: Settings
    bootstrap: str
    topics: dict[str, faust.TopicT]
    status: Any  # faust Table job_id -> JobStatus dict (folded from export.status)
    seen: Any  # faust Table job_id -> submitted_at_ms (resolve: one job per job_id)
    completed: Any  # faust Table job_id -> outcome (upload: one export.completed per job)
    ctx: StageContext | None = None
    dead_lettered: int = 0  # events this worker sent to export.deadletter (for /metrics)
    # job_id -> events of it this worker holds (taken off a stream, not handled yet)
    held: Counter[str] = field(default_factory=Counter)
    held_since: dict[str, int] = field(default_factory=dict)  # first beat of each held job
    # events handed to this process's agents as they are sent (agents/local.py)
    local: LocalDelivery = field(default_factory=LocalDelivery)

    def topic(self, name: str) -> faust.TopicT:
        return self.topics[name]

    @property
    def status_changelog(self) -> str:
        return str(self.status.changelog_topic.get_topic_name())

    async def send(
        self, topic: str, key: str, event: Any, *, acked: bool = False, local: bool = True
    ) -> Any:
        """Send one event (Struct or dict, validated against the topic) keyed by job_id.

        Returns once it is buffered, or with ``acked`` once the broker has it (the ingress
        answers "accepted" only for a job the broker holds), with the broker's
        RecordMetadata.  An event for an agent of this process is also handed to that agent
        (agents/local.py), unless ``local`` is False (the caller hands it over later with
        :meth:`hand`).
        """
        value = schemas.encode(topic, event)
        handing = local and self.local.wants(topic)
        pending = await self.topics[topic].send(key=key.encode(), value=value)
        meta = await pending if acked or (handing and self.local.needs_offset(topic)) else None
        if handing:
            if meta is not None:
                self._hand(topic, key, value, meta.partition, meta.offset)
            else:
                # The producer's partitioner, as the send just used it (it waited for the
                # topic's metadata): the partition without waiting for the ack.
                tp = self.app.producer.key_partition(topic, key.encode())
                self._hand(topic, key, value, tp.partition, None)
        self.local.sent(topic, value)
        return meta

    def hand(self, topic: str, key: str, event: Any, meta: Any) -> bool:
        """Hand an event sent with ``local=False`` and ``acked`` (``meta``: what the
        send returned) to this process's agent, when it consumes the event's partition."""
        if not self.local.wants(topic):
            return False
        value = schemas.encode(topic, event)
        return self._hand(topic, key, value, meta.partition, meta.offset)

    def _hand(self, topic: str, key: str, value: bytes, partition: int, offset: int | None) -> bool:
        # Only when this process's consumer owns the partition: else another worker's agent
        # handles the record, and a copy here would run the stage twice.
        if TP(topic, partition) not in self.app.consumer.assignment():
            return False
        return self.local.hand(topic, key.encode(), value, partition, offset)

    async def flush(self) -> None:
        """Wait until every buffered send (table changelog writes too) is with the broker."""
        await self.app.producer.flush()

    async def declare_topics(self) -> None:
        """Create every topic (including produce-only ones such as export.completed)."""
        for t in self.topics.values():
            await t.declare()


def create_app(settings: Settings, bootstrap: str, *, app_id: str = APP_ID) -> faust.App:
    codec.register()
    data_dir = settings.data_dir
    (data_dir / "faust").mkdir(parents=True, exist_ok=True)
    app = faust.App(
        app_id,
        broker=broker_urls(bootstrap),
        broker_credentials=kafka_auth.faust_credentials(settings),
        autodiscover=False,
        web_enabled=False,  # the ingress is our own aiohttp server (ingress/)
        store="memory://",  # tables are rebuilt from their changelog topics
        datadir=str(data_dir / "faust"),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        broker_rebalance_timeout=REBALANCE_TIMEOUT_S,
        broker_session_timeout=SESSION_TIMEOUT_S,
        broker_heartbeat_interval=HEARTBEAT_INTERVAL_S,
        broker_max_poll_interval=MAX_POLL_INTERVAL_S,
        broker_commit_interval=1.0,
        table_standby_replicas=0,
        # The check compares a RocksDB store's persisted offsets with the changelog's end.
        # Tables here live in memory and are rebuilt from the changelog, so there is nothing
        # to be inconsistent with; yet in the rebalance after a kill -9 it was seen to fire
        # against Tansu on a status-changelog partition the survivor already owned ("14 > 13")
        # and stop the surviving worker, leaving every job stuck (tests/ingress/test_crash.py).
        recovery_consistency_check=False,
        key_serializer="raw",
        value_serializer="raw",
        producer_linger_ms=1,
        loghandlers=[],
    )
    use_short_fetch_wait(app, settings.kafka_fetch_max_wait_ms)
    return app


# --- Broker fetch wait (faust-streaming 0.15.3; pyproject pins <0.16) ----------------------
# EXPORT_KAFKA_FETCH_MAX_WAIT_MS: ms a consumer's fetch may wait at the broker for records.  Kafka
# answers a waiting fetch as soon as a record arrives, so there the wait only sets how often an
# idle consumer asks (1/wait).  The embedded Tansu (0.6.0) answered a fetch over several
# partitions only ~850 ms after it began even when the record came 137 ms in, so with faust's
# 1500 every hop cost up to ~0.75 s; with 50 one measured 4-14 ms there (bench/hops.py).
# Shorter costs CPU while idle: an empty 40-partition fetch is ~5 ms of Tansu's CPU and ~2 ms
# of ours, so one idle consumer takes ~45% of a core at 10 ms, ~12% at 50; an idle `up` with
# its broker ~15-20% at 50 (bench/hops.py).  The ingress's status replica uses the same
# setting (ingress/replica.py).


def use_short_fetch_wait(app: faust.App, wait_ms: int) -> None:
    """Make the worker's consumer fetch with ``wait_ms`` instead of the 1500 ms that
    faust 0.15.3 hard-codes in ``AIOKafkaConsumerThread._create_worker_consumer`` (no setting
    reaches it).  The smallest override: the same driver classes, the consumer they build
    changed before it starts; aiokafka's consumer reads ``_fetch_max_wait_ms`` in ``start``
    when it builds its fetcher.  Fails at start-up, not silently, if aiokafka renames it."""
    from faust.transport.drivers import aiokafka as driver

    class ShortWaitConsumerThread(driver.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: driver.Transport) -> Any:
            consumer = super()._create_worker_consumer(transport)
            if not hasattr(consumer, "_fetch_max_wait_ms"):
                raise RuntimeError("aiokafka has no AIOKafkaConsumer._fetch_max_wait_ms")
            consumer._fetch_max_wait_ms = wait_ms
            return consumer

    class ShortWaitConsumer(driver.Consumer):
        def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
            return ShortWaitConsumerThread(self, loop=self.loop, beacon=self.beacon)

    class ShortWaitTransport(driver.Transport):
        Consumer = ShortWaitConsumer

    app.transport = ShortWaitTransport(app.conf.broker_consumer, app)


# --- end of the broker fetch wait ---------------------------------------------------------


def _table(app: faust.App, name: str, **options: Any) -> Any:
    """A table whose changelog keys are the raw job_id, like every event's key.

    faust sends a table's changelog with serializers it derives from ``key_type`` (json for
    str), ignoring the schema's: keys went out as '"<job_id>"', which (1) hash to another
    partition than the job's events, so after a takeover the worker handling a job's events
    need not hold its row, and (2) came back from recovery as '"<job_id>"', so no lookup
    found them and a taken-over job ran again.  faust 0.15 has no option for it, hence the
    attribute (load-bearing with faust-streaming <0.16, the version pin)."""
    table: Any = app.Table(name, **options)
    table.key_serializer = "raw"
    table.value_serializer = codec.NAME
    return table


def create_pipeline(
    settings: Settings,
    bootstrap: str,
    *,
    app_id: str = APP_ID,
    agents: bool = True,
) -> Pipeline:
    """The App, every topic with ``settings.partitions`` partitions, the tables and (by
    default) every agent registered."""
    app = create_app(settings, bootstrap, app_id=app_id)
    topics = {
        name: app.topic(
            name,
            partitions=settings.partitions,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
        )
        for name in schemas.TOPICS
    }
    table_opts: dict[str, Any] = {
        "partitions": settings.partitions,
        # A key's changelog partition comes from hashing the key (the job_id, which keys
        # every event too, so it is the partition of the event being processed), not from
        # the current event: the retention timer deletes keys outside any stream.
        "use_partitioner": True,
        # raw UTF-8 job_id keys on the changelog (str in Python), orjson dict values
        "schema": faust.Schema(key_type=str, key_serializer="raw", value_serializer=codec.NAME),
    }
    # export.completed is the completed table's changelog: recording a job as completed and
    # publishing its one completed event are one write (agents/failures.py, `complete`).
    topics[schemas.COMPLETED] = app.topic(
        schemas.COMPLETED,
        partitions=settings.partitions,
        compacting=True,
        deleting=False,
        schema=table_opts["schema"],
    )
    pipe = Pipeline(
        app=app,
        settings=settings,
        bootstrap=bootstrap,
        topics=topics,
        local=LocalDelivery(enabled=settings.local_delivery == "on"),
        status=_table(app, "status", help="job_id -> JobStatus", **table_opts),
        seen=_table(app, "seen", help="job_id -> first submission (ms)", **table_opts),
        completed=_table(
            app,
            "completed",
            help="job_id -> its export.completed event",
            changelog_topic=topics[schemas.COMPLETED],
            **table_opts,
        ),
    )
    if agents:
        pipe.ctx = StageContext.from_settings(settings)
        register_all(pipe)

        @app.on_partitions_revoked.connect
        async def finish_local(sender: Any, /, *args: Any, signal: Any, **_: Any) -> None:
            (revoked,) = args  # the revoked TPs (faust sends them positionally)
            # Before the new owner starts: events handed over here end first (agents/local.py).
            await pipe.local.finish(revoked, REBALANCE_TIMEOUT_S)

    return pipe
