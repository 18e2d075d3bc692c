"""Broker hops of a warm HTTP thumbnail: what each hop costs, and why.

    python bench/hops.py [--jobs 20] [--new-wait-ms 10] [--old-wait-ms 100] [--no-cause]

Starts two `mediaexport up` services side by side, each with its own embedded Tansu broker
and demo recording: A with the fetch waits as they were (faust's hard-coded 1500 ms for the
worker's consumer, aiokafka's default 500 ms for the ingress's status replica), B with the
tuned ones (EXPORT_KAFKA_FETCH_MAX_WAIT_MS: service/app.py and ingress/replica.py).  It then POSTs
thumbnails of distinct GOPs, alternating A B / B A, and prints per hop (from the timings of
each job's export.completed event and the time its HTTP answer came back) and end to end the
median and p90 of A and B and their ratio, plus a plain aiokafka produce→consume probe on
each broker and each service's idle CPU.  Unless ``--no-cause``, it first shows on a bare
broker how long one hop takes with a fetch wait of 1500 ms and with B's, over one partition
and over four, by how long after the consumer's previous receipt the record comes.

Hops: ingress→resolve (the request's submitted_at_ms to resolve's start: includes the acked
send), resolve→frames, frames→upload, upload→answer (the final status through the replica
to the HTTP answer).  Not part of `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

OLD_WORKER_WAIT_MS = 1500  # faust 0.15.3, AIOKafkaConsumerThread._create_worker_consumer
OLD_REPLICA_WAIT_MS = 500  # aiokafka's AIOKafkaConsumer default
LIVE_PATH = "mp4/demo/1/stream.mpd"
GOP_S = 2  # the demo recording: 25 fps, a keyframe every 50 frames
GOPS = 30  # one minute
HOPS = ("ingress→resolve", "resolve→frames", "frames→upload", "upload→answer")
STAGES = ("resolve", "frames", "upload")
CLK_TCK = os.sysconf("SC_CLK_TCK")
IDLE_S = 5.0  # idle window for the CPU figure


def serve(args: argparse.Namespace) -> int:
    """The service with the fetch waits given (the bench's A or B)."""
    import functools

    import ingress.replica
    from service.cli import main

    # The worker's wait is the setting; the replica's is forced apart from it, so the A arm
    # can reproduce the old pair (faust's 1500, aiokafka's default 500).
    os.environ["EXPORT_KAFKA_FETCH_MAX_WAIT_MS"] = str(args.worker_wait_ms)
    init = ingress.replica.StatusReplica.__init__

    @functools.wraps(init)
    def with_replica_wait(self: Any, *a: Any, **kw: Any) -> None:
        kw["fetch_max_wait_ms"] = args.replica_wait_ms
        init(self, *a, **kw)

    ingress.replica.StatusReplica.__init__ = with_replica_wait  # type: ignore[method-assign]
    return main(["up", "--port", str(args.port), "--data-dir", args.data_dir])


@dataclass
class Service:
    name: str
    worker_wait_ms: int
    replica_wait_ms: int
    proc: subprocess.Popen[str]
    url: str = ""
    bootstrap: str = ""
    answers: dict[str, float] = field(default_factory=dict)  # job_id -> answer epoch ms
    e2e_ms: list[float] = field(default_factory=list)
    hops: dict[str, list[float]] = field(default_factory=dict)
    probe_ms: list[float] = field(default_factory=list)
    idle_cpu: tuple[float, float] = (0.0, 0.0)  # share of one core idle: `up`, broker


def start(name: str, worker_wait: int, replica_wait: int, root: Path) -> Service:
    from service.broker import free_port

    env = {k: v for k, v in os.environ.items() if not k.startswith("EXPORT_")}
    env["PYTHONPATH"] = str(ROOT)
    cmd = [sys.executable, __file__, "serve", "--port", str(free_port())]
    cmd += ["--data-dir", str(root / name), "--worker-wait-ms", str(worker_wait)]
    cmd += ["--replica-wait-ms", str(replica_wait)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    return Service(name, worker_wait, replica_wait, proc)


def wait_ready(svc: Service) -> None:
    assert svc.proc.stdout is not None
    line = svc.proc.stdout.readline()  # `ready http://H:P kafka=H:P data=DIR`
    if not line.startswith("ready "):
        raise SystemExit(f"{svc.name}: no ready line (exit {svc.proc.poll()}): {line!r}")
    parts = line.split()
    svc.url, svc.bootstrap = parts[1], parts[2].removeprefix("kafka=")


def post(svc: Service, gop: int) -> tuple[str, float]:
    """POST a thumbnail in the middle of GOP ``gop``; returns (JobId, round trip ms)."""
    second = gop * GOP_S + GOP_S // 2
    body = {
        "LivePath": LIVE_PATH,
        "StartTime": f"00:00:{second:02d}",
        "Duration": 1000,
        "FetchMedia": False,
    }
    data = json.dumps(body).encode()
    started = time.perf_counter()
    with urllib.request.urlopen(svc.url + "/export", data=data, timeout=60) as resp:
        answer = json.loads(resp.read())
    took = (time.perf_counter() - started) * 1000
    if answer.get("ErrorCode") != 0:
        raise SystemExit(f"{svc.name}: GOP {gop} not answered in the response: {answer}")
    svc.answers[answer["JobId"]] = time.time() * 1000
    return answer["JobId"], took


def cpu_s(pid: int) -> tuple[float, float]:
    """CPU seconds of the `up` process ``pid`` and of its children (the broker)."""
    own = children = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks = int(fields[11]) + int(fields[12])  # utime, stime
        if stat.parent.name == str(pid):
            own += ticks
        elif fields[1] == str(pid):
            children += ticks
    return own / CLK_TCK, children / CLK_TCK


async def completed_events(bootstrap: str) -> dict[str, dict[str, Any]]:
    """Every export.completed event on the broker, by job_id."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        await consumer.topics()  # metadata
        parts = consumer.partitions_for_topic("export.completed") or set()
        tps = [TopicPartition("export.completed", p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        events: dict[str, dict[str, Any]] = {}
        positions = [await consumer.position(tp) for tp in tps]
        while any(pos < end[tp] for pos, tp in zip(positions, tps, strict=True)):
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for r in records:
                    if r.value:
                        event = json.loads(r.value)
                        events[event["job_id"]] = event
            positions = [await consumer.position(tp) for tp in tps]
        return events
    finally:
        await consumer.stop()


def hops_of(event: dict[str, Any], answer_ms: float) -> dict[str, float]:
    """The four hops of one thumbnail job and its three stages, in ms."""
    t = event["timings"]
    submitted = event["request"]["submitted_at_ms"]
    hops = {
        "ingress→resolve": t["resolve"]["start_ms"] - submitted,
        "resolve→frames": t["frames"]["start_ms"] - t["resolve"]["end_ms"],
        "frames→upload": t["upload"]["start_ms"] - t["frames"]["end_ms"],
        "upload→answer": answer_ms - t["upload"]["end_ms"],
    }
    for stage in STAGES:
        hops[f"{stage} (stage)"] = t[stage]["end_ms"] - t[stage]["start_ms"]
    return hops


async def round_trips(
    bootstrap: str, topic: str, partitions: int, wait_ms: int, gaps_ms: list[float]
) -> list[float]:
    """Produce one record after each gap and time it until a plain consumer (fetching every
    partition of ``topic`` with ``wait_ms``) has it: one broker hop, without faust."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if topic not in await admin.list_topics():
            await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=1)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, fetch_max_wait_ms=wait_ms
    )
    await producer.start()
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)
        await producer.send_and_wait(topic, b"warm", partition=0)
        await consumer.getone()
        out = []
        for i, gap in enumerate(gaps_ms):
            await asyncio.sleep(gap / 1000)  # like a stage's work between receipt and send
            started = time.perf_counter()
            await producer.send_and_wait(topic, b"x", partition=i % partitions)
            await consumer.getone()
            out.append((time.perf_counter() - started) * 1000)
        return out
    finally:
        await consumer.stop()
        await producer.stop()


def stats(xs: list[float]) -> tuple[float, float]:
    """(median, p90)."""
    s = sorted(xs)
    return statistics.median(s), s[min(len(s) - 1, round(0.9 * (len(s) - 1)))]


def cause(new_wait_ms: int) -> None:
    """How long one hop takes on a bare Tansu, by fetch wait, partition count and the time
    between the consumer's previous receipt and the next record (a stage's work)."""
    from service.broker import EmbeddedBroker

    print("\n== cause: one produce→consume hop on a bare Tansu, plain aiokafka (ms, median of 6)")
    gaps = (0, 30, 137, 400, 800)
    print(f"{'fetch_max_wait_ms':>18} {'partitions':>10} " + " ".join(f"gap {g:>4}" for g in gaps))
    with EmbeddedBroker() as broker:
        for wait in (OLD_WORKER_WAIT_MS, new_wait_ms):
            for parts in (1, 4):
                row = []
                for gap in gaps:
                    rt = asyncio.run(
                        round_trips(broker.bootstrap, f"cause{parts}", parts, wait, [gap] * 6)
                    )
                    row.append(statistics.median(rt))
                print(f"{wait:>18} {parts:>10} " + " ".join(f"{m:8.0f}" for m in row))


def measure(services: list[Service], jobs: int) -> None:
    for svc in services:  # warm: imports, the first container open, the first fetches
        job_id, _ = post(svc, 0)
        del svc.answers[job_id]  # not one of the measured jobs
    time.sleep(2.0)
    before = [cpu_s(svc.proc.pid) for svc in services]
    time.sleep(IDLE_S)
    for svc, (own, broker) in zip(services, before, strict=True):
        own_now, broker_now = cpu_s(svc.proc.pid)
        svc.idle_cpu = ((own_now - own) / IDLE_S, (broker_now - broker) / IDLE_S)
    for i in range(1, jobs + 1):
        order = services if i % 2 else services[::-1]  # A B, then B A: no order bias
        for svc in order:
            _, took = post(svc, i)
            svc.e2e_ms.append(took)
    rng = random.Random(8)
    gaps = [rng.uniform(0, 200) for _ in range(jobs)]
    for svc in services:
        events = asyncio.run(completed_events(svc.bootstrap))
        for job_id, answer_ms in svc.answers.items():
            if job_id in events:
                for name, ms in hops_of(events[job_id], answer_ms).items():
                    svc.hops.setdefault(name, []).append(ms)
        svc.probe_ms = asyncio.run(
            round_trips(svc.bootstrap, "bench.probe", 4, svc.worker_wait_ms, gaps)
        )


def report(a: Service, b: Service) -> None:
    print(f"\n== {len(a.e2e_ms)} warm thumbnails each, distinct GOPs, alternating A B / B A")
    print(f"A: worker fetch wait {a.worker_wait_ms} ms, replica {a.replica_wait_ms} ms")
    print(f"B: worker fetch wait {b.worker_wait_ms} ms, replica {b.replica_wait_ms} ms")
    print(f"{'ms':<26}{'A median':>9}{'A p90':>8}{'B median':>10}{'B p90':>8}{'A/B median':>12}")
    names = [*HOPS, *(f"{stage} (stage)" for stage in STAGES)]
    rows = [(name, a.hops.get(name, []), b.hops.get(name, [])) for name in names]
    rows += [("aiokafka probe (4 parts)", a.probe_ms, b.probe_ms)]
    rows += [("end to end (HTTP POST)", a.e2e_ms, b.e2e_ms)]
    for name, xa, xb in rows:
        if not xa or not xb:
            continue
        (ma, pa), (mb, pb) = stats(xa), stats(xb)
        ratio = f"{ma / mb:10.1f}x" if mb > 0 else f"{'-':>11}"
        print(f"{name:<26}{ma:9.0f}{pa:8.0f}{mb:10.0f}{pb:8.0f} {ratio}")
    for svc in (a, b):
        own, broker = svc.idle_cpu
        print(f"idle CPU {svc.name} (share of one core): `up` {own:.1%}, its broker {broker:.1%}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    srv = sub.add_parser("serve", help="(internal) one service with the given fetch waits")
    srv.add_argument("--port", type=int, required=True)
    srv.add_argument("--data-dir", required=True)
    srv.add_argument("--worker-wait-ms", type=int, required=True)
    srv.add_argument("--replica-wait-ms", type=int, required=True)
    parser.add_argument(
        "--jobs", type=int, default=20, help=f"thumbnails per service (≤ {GOPS - 1})"
    )
    parser.add_argument(
        "--new-wait-ms", type=int, default=None, help="B's waits (default: the code's)"
    )
    parser.add_argument(
        "--old-wait-ms", type=int, default=None, help="A's waits (default: 1500 and 500, as before)"
    )
    parser.add_argument("--no-cause", action="store_true", help="skip the bare-broker table")
    args = parser.parse_args()
    if args.command == "serve":
        return serve(args)
    from pipeline.settings import Settings

    jobs = max(1, min(args.jobs, GOPS - 1))
    new_worker = new_replica = args.new_wait_ms or Settings().kafka_fetch_max_wait_ms
    if not args.no_cause:
        cause(new_worker)
    with tempfile.TemporaryDirectory(prefix="hops-") as tmp:
        services = [
            start(
                "A",
                args.old_wait_ms or OLD_WORKER_WAIT_MS,
                args.old_wait_ms or OLD_REPLICA_WAIT_MS,
                Path(tmp),
            ),
            start("B", new_worker, new_replica, Path(tmp)),
        ]
        try:
            for svc in services:
                wait_ready(svc)
            measure(services, jobs)
        finally:
            for svc in services:
                svc.proc.terminate()
            for svc in services:
                svc.proc.wait(90)
    report(*services)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
