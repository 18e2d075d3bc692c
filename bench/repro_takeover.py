"""Reproduce issue 6's "job left transcoding after a kill -9 takeover" without media.

A private Tansu; N events on tk-work (P partitions, round-robin); workers a and b
(bench/takeover_app.py: the transcode agent's shape, a sleep for the transcode); once both
work, kill -9 a; after ``--gap`` s start the replacement c; wait until every event is done or
nothing moves for ``--idle`` s.  Prints the events never done, and for each its partition's
committed offset and the log lines about it.

    python bench/repro_takeover.py [--runs 3] [--events 30] [--partitions 4] [--work 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from service.broker import EmbeddedBroker

HERE = Path(__file__).resolve().parent


async def setup(bootstrap: str, partitions: int, events: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic("tk-work", partitions, 1), NewTopic("tk-done", 1, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i in range(events):
            await producer.send_and_wait("tk-work", f"e{i}".encode(), partition=i % partitions)
    finally:
        await producer.stop()


async def done_values(bootstrap: str) -> list[str]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        tp = TopicPartition("tk-done", 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        out: list[str] = []
        while await consumer.position(tp) < end:
            for msgs in (await consumer.getmany(timeout_ms=500)).values():
                out.extend(m.value.decode() for m in msgs)
        return out
    finally:
        await consumer.stop()


async def committed(bootstrap: str, partitions: int) -> dict[int, int | None]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id="tk", enable_auto_commit=False
    )
    await consumer.start()
    try:
        return {
            p: await consumer.committed(TopicPartition("tk-work", p)) for p in range(partitions)
        }
    finally:
        await consumer.stop()


def spawn(
    name: str, bootstrap: str, args: argparse.Namespace, workdir: Path
) -> subprocess.Popen[bytes]:
    env = dict(
        os.environ,
        TK_BROKER=f"kafka://{bootstrap}",
        TK_NAME=name,
        TK_PARTITIONS=str(args.partitions),
        TK_WORK_S=str(args.work),
        TK_FAIL_ONCE=args.fail_once,
        PYTHONPATH=os.pathsep.join([str(HERE), str(HERE.parent)]),
    )
    log = open(workdir / f"{name}.log", "wb")  # noqa: SIM115
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "faust",
            "-A",
            "takeover_app",
            "--datadir",
            str(workdir / name),
            "worker",
            "--loglevel",
            "info",
            "--without-web",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=workdir,
    )


def wait_for_line(path: Path, needle: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and needle in path.read_text(errors="replace"):
            return True
        time.sleep(0.2)
    return False


def one_run(args: argparse.Namespace, run: int) -> list[str]:
    workdir = Path(tempfile.mkdtemp(prefix=f"tk-run{run}-"))
    with EmbeddedBroker(log_path=workdir / "broker.log") as broker:
        bootstrap = broker.bootstrap
        asyncio.run(setup(bootstrap, args.partitions, args.events))
        procs = {n: spawn(n, bootstrap, args, workdir) for n in ("a", "b")}
        try:
            both = all(wait_for_line(workdir / f"{n}.log", " start ", 60) for n in procs)
            print(f"run {run}: both working={both}; logs in {workdir}", flush=True)
            if not args.no_kill:
                time.sleep(args.kill_after)
                procs["a"].send_signal(signal.SIGKILL)
                procs["a"].wait(10)
                time.sleep(args.gap)
                procs["c"] = spawn("c", bootstrap, args, workdir)
            missing = wait_all_done(bootstrap, args)
            offsets = asyncio.run(committed(bootstrap, args.partitions))
            print(f"run {run}: missing {missing}; committed offsets {offsets}", flush=True)
            for value in missing:
                explain(workdir, value)
            return missing
        finally:
            for p in procs.values():
                if p.poll() is None:
                    p.terminate()
                    try:
                        p.wait(20)
                    except subprocess.TimeoutExpired:
                        p.kill()
                        p.wait(5)


def wait_all_done(bootstrap: str, args: argparse.Namespace) -> list[str]:
    want = {f"e{i}" for i in range(args.events)}
    last, last_change = -1, time.monotonic()
    while True:
        done = set(asyncio.run(done_values(bootstrap)))
        if want <= done:
            return []
        if len(done) != last:
            last, last_change = len(done), time.monotonic()
        if time.monotonic() - last_change > args.idle:
            return sorted(want - done, key=lambda v: int(v[1:]))
        time.sleep(1.0)


def explain(workdir: Path, value: str) -> None:
    print(f"--- {value}:")
    for name in ("a", "b", "c"):
        log = workdir / f"{name}.log"
        if not log.exists():
            continue
        for line in log.read_text(errors="replace").splitlines():
            if f" {value} " in line + " " or " revoked" in line or " assigned" in line:
                print(f"  {line[:200]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--events", type=int, default=30)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--work", type=float, default=3.0, help="seconds per event")
    parser.add_argument("--kill-after", type=float, default=2.0)
    parser.add_argument("--gap", type=float, default=3.0, help="kill -> replacement, seconds")
    parser.add_argument("--idle", type=float, default=40.0)
    parser.add_argument("--fail-once", default="", help="event whose handler raises once (e5)")
    parser.add_argument("--no-kill", action="store_true", help="no kill -9, no replacement")
    args = parser.parse_args()
    lost = 0
    for run in range(args.runs):
        lost += bool(one_run(args, run))
    print(f"{lost} of {args.runs} runs lost events")
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
