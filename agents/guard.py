"""The one loop every stage agent runs: an agent never leaves its loop because of one event.

An exception that escapes a handler (a send that fails, a bug) ends that event's job through
agents/failures.py and the loop takes the next event; a cancellation (shutdown, rebalance)
still stops the agent as faust expects.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from agents.failures import after_crash

if TYPE_CHECKING:
    from agents.pipe import Pipeline

Handler = Callable[["Pipeline", Any], Awaitable[None]]


async def handle_guarded(pipe: Pipeline, event: Any, topic: str, handle: Handler) -> None:
    try:
        await handle(pipe, event)
    except Exception as exc:  # CancelledError is a BaseException: shutdown still stops us
        await after_crash(pipe, event, topic, exc)
