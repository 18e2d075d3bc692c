"""Local delivery (agents/local.py): an event handed over at send time is handled once, and
its Kafka copy is acknowledged only after that handling ended."""

from __future__ import annotations

import asyncio
from typing import Any

from agents.local import LocalDelivery
from tests.agents.fakes import Event, Message

TOPIC = "export.frames"


class Recorder:
    """A deliver() that records what it handled, and can be held until released."""

    def __init__(self) -> None:
        self.handled: list[tuple[str, Any]] = []
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self, event: Any) -> None:
        await self.release.wait()
        self.handled.append((type(event).__name__, event.message.offset))


def kafka_copy(value: bytes, partition: int = 1, offset: int = 7) -> Event:
    return Event(b"job", value, Message(TOPIC, partition, offset))


def test_a_handed_event_is_handled_once_and_its_kafka_copy_only_acknowledged() -> None:
    async def scenario() -> tuple[list[Any], int]:
        local, deliver = LocalDelivery(), Recorder()
        local.consumer(TOPIC, deliver)
        assert local.hand(TOPIC, b"job", b"v1", 1, None)
        await local.from_kafka(kafka_copy(b"v1"), deliver)
        return deliver.handled, local.acknowledged

    handled, acknowledged = asyncio.run(scenario())
    assert handled == [("LocalEvent", None)] and acknowledged == 1


def test_the_kafka_copy_waits_for_the_local_handling_to_end() -> None:
    async def scenario() -> list[str]:
        local, deliver = LocalDelivery(), Recorder()
        local.consumer(TOPIC, deliver)
        deliver.release.clear()
        local.hand(TOPIC, b"job", b"v1", 1, None)
        order: list[str] = []

        async def agent_loop() -> None:
            await local.from_kafka(kafka_copy(b"v1"), deliver)
            order.append(f"acknowledged after {len(deliver.handled)} handled")

        loop_task = asyncio.create_task(agent_loop())
        for _ in range(20):  # the loop gets every chance to move on early
            await asyncio.sleep(0)
        order.append("released")
        deliver.release.set()
        await loop_task
        return order

    assert asyncio.run(scenario()) == ["released", "acknowledged after 1 handled"]


def test_a_kafka_copy_that_comes_first_is_handled_and_not_handed_over_again() -> None:
    async def scenario() -> tuple[bool, list[Any]]:
        local, deliver = LocalDelivery(), Recorder()
        local.consumer(TOPIC, deliver)
        await local.from_kafka(kafka_copy(b"v1"), deliver)
        handed = local.hand(TOPIC, b"job", b"v1", 1, None)
        await asyncio.sleep(0)
        return handed, deliver.handled

    handed, handled = asyncio.run(scenario())
    assert not handed and handled == [("Event", 7)]


def test_a_cancelled_local_handling_is_done_again_from_kafka() -> None:
    async def scenario() -> list[Any]:
        local, deliver = LocalDelivery(), Recorder()
        local.consumer(TOPIC, deliver)
        deliver.release.clear()
        local.hand(TOPIC, b"job", b"v1", 1, None)
        await asyncio.sleep(0)
        await local.stop()  # cancels the local handling
        deliver.release.set()
        await local.from_kafka(kafka_copy(b"v1"), deliver)
        return deliver.handled

    assert asyncio.run(scenario()) == [("Event", 7)]


def test_another_value_on_the_same_partition_is_not_taken_for_the_handed_one() -> None:
    async def scenario() -> list[Any]:
        local, deliver = LocalDelivery(), Recorder()
        local.consumer(TOPIC, deliver)
        local.hand(TOPIC, b"job", b"v1", 1, None)
        await local.from_kafka(kafka_copy(b"v2", offset=8), deliver)
        await local.from_kafka(kafka_copy(b"v1", partition=2), deliver)  # another partition
        await local.from_kafka(kafka_copy(b"v1"), deliver)
        return deliver.handled

    # v2, and v1 of partition 2, from Kafka; v1 of partition 1 once, handed over
    assert sorted(asyncio.run(scenario()), key=str) == [
        ("Event", 7),
        ("Event", 8),
        ("LocalEvent", None),
    ]


def test_nothing_is_handed_over_when_off_unconsumed_or_without_a_needed_offset() -> None:
    async def scenario() -> list[bool]:
        deliver = Recorder()
        off = LocalDelivery(enabled=False)
        off.consumer(TOPIC, deliver)
        on = LocalDelivery()
        on.consumer("export.requests", deliver, needs_offset=True)
        return [
            off.wants(TOPIC),
            off.hand(TOPIC, b"job", b"v", 0, 1),
            on.hand(TOPIC, b"job", b"v", 0, 1),  # no agent here consumes it
            on.hand("export.requests", b"job", b"v", 0, None),
            on.hand("export.requests", b"job", b"v", 0, 5),
        ]

    assert asyncio.run(scenario()) == [False, False, False, False, True]


def test_claims_are_bounded_and_a_forgotten_one_is_handled_again() -> None:
    async def scenario() -> list[Any]:
        local, deliver = LocalDelivery(max_claims=2), Recorder()
        local.consumer(TOPIC, deliver)
        for value in (b"a", b"b", b"c"):
            local.hand(TOPIC, b"job", value, 1, None)
        await asyncio.sleep(0)
        deliver.handled.clear()
        await local.from_kafka(kafka_copy(b"a"), deliver)  # forgotten: handled again
        await local.from_kafka(kafka_copy(b"c"), deliver)  # remembered: acknowledged
        return deliver.handled

    assert asyncio.run(scenario()) == [("Event", 7)]


def test_revoking_a_partition_waits_for_what_is_handled_here_of_it_only() -> None:
    async def scenario() -> list[str]:
        local, deliver = LocalDelivery(), Recorder()
        local.consumer(TOPIC, deliver)
        deliver.release.clear()
        local.hand(TOPIC, b"job", b"v1", 1, None)
        order: list[str] = []
        await local.finish([(TOPIC, 2)], timeout=60)  # nothing of partition 2 here
        order.append("partition 2 revoked")

        async def revoke() -> None:
            await local.finish([(TOPIC, 1)], timeout=60)
            order.append(f"partition 1 revoked after {len(deliver.handled)} handled")

        revoking = asyncio.create_task(revoke())
        for _ in range(20):
            await asyncio.sleep(0)
        order.append("released")
        deliver.release.set()
        await revoking
        return order

    assert asyncio.run(scenario()) == [
        "partition 2 revoked",
        "released",
        "partition 1 revoked after 1 handled",
    ]
