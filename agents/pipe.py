"""What an agent needs of the service's wiring: the App to attach to, the topics, the tables,
the stage context and the one send path.

The agents depend on this Protocol, not on ``service/``, so the imports point one way (the
service imports the agents and registers them); :class:`service.app.Pipeline` is the one
implementation, and mypy checks it against this where the service calls ``register_all``.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import faust

    from agents.local import LocalDelivery
    from pipeline.settings import Settings
    from pipeline.stages.context import StageContext


class Pipeline(Protocol):
    app: faust.App
    settings: Settings
    status: Any  # faust Table job_id -> JobStatus dict
    seen: Any  # faust Table job_id -> submitted_at_ms
    completed: Any  # faust Table job_id -> its export.completed event
    ctx: StageContext | None
    dead_lettered: int
    held: Counter[str]
    held_since: dict[str, int]
    local: LocalDelivery  # events handed to this process's agents at send time

    def topic(self, name: str) -> faust.TopicT: ...

    async def send(
        self, topic: str, key: str, event: Any, *, acked: bool = False, local: bool = True
    ) -> Any: ...

    async def flush(self) -> None: ...
