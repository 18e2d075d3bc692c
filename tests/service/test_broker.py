"""The embedded Tansu broker: starts on a free loopback port, speaks Kafka, faust's admin
calls work against it, and it stops (or dies with its parent) without an orphan."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from service.broker import BrokerError, EmbeddedBroker, find_tansu, kafka_api_versions_ok

pytestmark = pytest.mark.integration


def test_start_answer_stop() -> None:
    with EmbeddedBroker() as broker:  # start() itself bounds how long it waits for the broker
        assert broker.proc is not None
        pid = broker.proc.pid
        assert kafka_api_versions_ok(broker.host, broker.port)
        asyncio.run(_create_and_list(broker.bootstrap))
    assert not Path(f"/proc/{pid}").exists() or _zombie(pid)
    assert not kafka_api_versions_ok(broker.host, broker.port, timeout=0.3)


async def _create_and_list(bootstrap: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic("probe", num_partitions=3, replication_factor=1)])
        assert "probe" in await admin.list_topics()
    finally:
        await admin.close()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_broker_dies_with_its_parent(tmp_path: Path) -> None:
    code = (
        "from service.broker import EmbeddedBroker; import sys, time;"
        "b = EmbeddedBroker().start(); print(b.proc.pid, flush=True); time.sleep(60)"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())
    parent.kill()  # SIGKILL: no cleanup code runs in the parent
    parent.wait(5)
    parent.stdout.close()
    deadline = time.monotonic() + 120  # a bound, not a budget: ends when the broker is gone
    while not _zombie(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _zombie(pid), "the broker outlived the process that started it"


def test_explicit_binary_must_be_executable(tmp_path: Path) -> None:
    not_exe = tmp_path / "tansu"
    not_exe.write_text("")
    with pytest.raises(BrokerError) as info:
        find_tansu(str(not_exe))
    assert info.value.field == "EXPORT_TANSU_BIN"
    assert os.access(find_tansu(None), os.X_OK)
