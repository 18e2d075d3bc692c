"""What the ingress needs of the service's wiring: settings, the stage context (its output
store and CPU slots), the count of dead-lettered events and the one send path.

The ingress depends on this Protocol, not on ``service/``, so the imports point one way (the
service builds the ingress); :class:`service.app.Pipeline` is the one implementation, and mypy
checks it against this where the service constructs :class:`ingress.http.Ingress`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pipeline.settings import Settings
    from pipeline.stages.context import StageContext


class Pipeline(Protocol):
    settings: Settings
    ctx: StageContext | None
    dead_lettered: int

    async def send(
        self, topic: str, key: str, event: Any, *, acked: bool = False, local: bool = True
    ) -> Any: ...

    def hand(self, topic: str, key: str, event: Any, meta: Any) -> bool: ...
