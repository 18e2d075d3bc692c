"""One module per stage; each agent is a thin ``async for`` loop around a pipeline function."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agents.pipe import Pipeline


def register_all(pipe: Pipeline) -> None:
    """Attach every agent to the pipeline's App."""
    from agents import (
        frames,
        heartbeat,
        resolve,
        retention,
        status,
        supervisor,
        transcode,
        upload,
    )

    for module in (resolve, frames, transcode, upload, status, retention, supervisor, heartbeat):
        module.register(pipe)
