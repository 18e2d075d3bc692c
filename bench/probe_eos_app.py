"""The faust app bench/probe_transactions.py --faust runs as a child ``faust worker``.

Two agents: probe-f-in -> double -> probe-f-mid -> tag -> probe-f-out, with
``processing_guarantee`` from PROBE_GUARANTEE (default exactly_once).
"""

from __future__ import annotations

import os

import faust

if os.environ.get("PROBE_INIT_PID_V3"):
    from init_pid_v3 import patch_init_producer_id_v3

    patch_init_producer_id_v3()

app = faust.App(
    "probe-eos",
    broker=os.environ["PROBE_BROKER"],
    processing_guarantee=os.environ.get("PROBE_GUARANTEE", "exactly_once"),
    web_enabled=False,
    store="memory://",
    topic_partitions=1,
    topic_replication_factor=1,
    consumer_auto_offset_reset="earliest",
    broker_rebalance_timeout=3.0,
    broker_session_timeout=6.0,
    broker_heartbeat_interval=1.0,
    key_serializer="raw",
    value_serializer="raw",
)
t_in = app.topic("probe-f-in", partitions=1, value_serializer="raw")
t_mid = app.topic("probe-f-mid", partitions=1, value_serializer="raw")
t_out = app.topic("probe-f-out", partitions=1, value_serializer="raw")


@app.agent(t_in)
async def double(stream: faust.StreamT[bytes]) -> None:
    async for value in stream:
        print("double got", value, flush=True)
        await t_mid.send(value=value + b"-double")


@app.agent(t_mid)
async def tag(stream: faust.StreamT[bytes]) -> None:
    async for value in stream:
        print("tag got", value, flush=True)
        await t_out.send(value=value + b"-tag")
