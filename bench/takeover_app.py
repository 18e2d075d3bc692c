"""The faust worker bench/repro_takeover.py runs (as ``faust -A takeover_app worker``).

The shape of agents/transcode.py with a sleep standing in for the transcode: one shared
stream, ``concurrency`` = partitions, an asyncio.Lock per partition, the work in an executor;
faust settings as in service/app.py.  Every processed event is sent to tk-done.  Each start,
finish, ack and commit is printed, so the driver can tell an event that was committed past
without being finished.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

import faust
from faust.transport.consumer import Consumer

PARTITIONS = int(os.environ.get("TK_PARTITIONS", "4"))
WORK_S = float(os.environ.get("TK_WORK_S", "3"))
NAME = os.environ.get("TK_NAME", "w")
FAIL_ONCE = os.environ.get("TK_FAIL_ONCE", "")
failed: set[str] = set()


def say(*parts: object) -> None:
    # one string: faust routes stdout through its logger, one record per write
    line = " ".join(str(p) for p in (f"{time.monotonic():.3f}", NAME, *parts))
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


_orig_ack = Consumer.ack
_orig_commit_offsets = Consumer._commit_offsets


def _ack(self: Consumer, message: Any) -> bool:
    accepted = _orig_ack(self, message)
    if message.topic == "tk-work":
        say("ack", message.partition, message.offset, "accepted" if accepted else "ignored")
    return accepted


async def _commit_offsets(self: Consumer, offsets: Any, start_new_transaction: bool = True) -> bool:
    did = await _orig_commit_offsets(self, offsets, start_new_transaction)
    work = {tp.partition: o for tp, o in offsets.items() if tp.topic == "tk-work"}
    if work:
        assigned = sorted(tp.partition for tp in self.assignment() if tp.topic == "tk-work")
        say("commit", work, "did" if did else "not", "assigned", assigned)
    return did


Consumer.ack = _ack  # type: ignore[method-assign]
Consumer._commit_offsets = _commit_offsets  # type: ignore[method-assign]

app = faust.App(
    "tk",
    broker=os.environ["TK_BROKER"],
    web_enabled=False,
    store="memory://",
    topic_partitions=PARTITIONS,
    topic_replication_factor=1,
    consumer_auto_offset_reset="earliest",
    broker_rebalance_timeout=3.0,
    broker_session_timeout=6.0,
    broker_heartbeat_interval=1.0,
    broker_max_poll_interval=3600.0,
    broker_commit_interval=1.0,
    recovery_consistency_check=False,
    key_serializer="raw",
    value_serializer="raw",
)
work_topic = app.topic("tk-work", partitions=PARTITIONS, value_serializer="raw")
done_topic = app.topic("tk-done", partitions=1, value_serializer="raw")
locks: dict[int, asyncio.Lock] = {}
# like StageContext's max_transcodes: at most 2 sleeps at a time per worker
slots = asyncio.Semaphore(int(os.environ.get("TK_SLOTS", "2")))


def work_seconds(value: bytes) -> float:
    # 1x to 2x WORK_S, fixed per event so runs are comparable
    return WORK_S * (1 + (sum(value) % 7) / 6)


@app.agent(work_topic, concurrency=PARTITIONS)
async def work(stream: faust.StreamT[bytes]) -> None:
    async for event in stream.events():
        msg = event.message
        lock = locks.setdefault(msg.partition, asyncio.Lock())
        say("got", msg.partition, msg.offset, event.value.decode(), "gen", msg.generation_id)
        async with lock:
            say("start", msg.partition, msg.offset, event.value.decode())
            async with slots:
                seconds = work_seconds(event.value)
                await asyncio.get_running_loop().run_in_executor(None, time.sleep, seconds)
            if event.value.decode() == FAIL_ONCE and FAIL_ONCE not in failed:
                # stands in for an exception escaping handle() (e.g. a send outside its try)
                failed.add(FAIL_ONCE)
                say("raise", msg.partition, msg.offset, FAIL_ONCE)
                raise RuntimeError(f"handler failed on {FAIL_ONCE}")
            await done_topic.send(value=event.value)
            say("done", msg.partition, msg.offset, event.value.decode())


@app.on_partitions_revoked.connect  # type: ignore[arg-type]
async def on_revoked(app: faust.App, revoked: Any, **kwargs: Any) -> None:
    say("revoked", sorted(tp.partition for tp in revoked if tp.topic == "tk-work"))


@app.on_partitions_assigned.connect  # type: ignore[arg-type]
async def on_assigned(app: faust.App, assigned: Any, **kwargs: Any) -> None:
    say("assigned", sorted(tp.partition for tp in assigned if tp.topic == "tk-work"))
