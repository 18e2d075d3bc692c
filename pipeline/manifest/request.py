"""The requested range: validated before any manifest is read, then placed on an archive.

:class:`Window` holds what DASH and HLS share once a manifest gave the archive's extent: the
check that the range overlaps it, and the "missing" gap before the archive starts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pipeline.errors import InvalidRequest, RangeNotInArchive
from pipeline.model import Gap

MAX_DURATION_MS = 24 * 3600 * 1000
_HMS = re.compile(r"^(\d{1,3}):([0-5]?\d):([0-5]?\d)(?:\.(\d{1,3}))?$")


@dataclass(frozen=True, slots=True)
class RangeRequest:
    """StartPos (epoch ms), StartTime ("HH:MM:SS" from the recording's start), Duration (ms)."""

    start_pos_ms: int | None
    start_time_s: float | None
    duration_ms: int

    def window(self, epoch_ms_at_zero: int | None) -> Window:
        """Place the request on the archive timeline; the window says which anchor was used.

        Wall clock wins when both the request (StartPos) and the archive have one;
        otherwise StartTime is the offset from the start of the recording.
        """
        if epoch_ms_at_zero is not None and self.start_pos_ms is not None:
            start = (self.start_pos_ms - epoch_ms_at_zero) / 1000.0
            return Window(start, start + self.duration_ms / 1000.0, "wall")
        if self.start_time_s is not None:
            start = self.start_time_s
            return Window(start, start + self.duration_ms / 1000.0, "relative")
        if epoch_ms_at_zero is None:
            raise InvalidRequest(
                "the archive has no wall-clock anchor, so StartTime (HH:MM:SS) is required",
                field="StartTime",
            )
        raise InvalidRequest("StartPos is required", field="StartPos")


@dataclass(frozen=True, slots=True)
class Window:
    """The requested range on an archive's timeline (seconds from the archive's time 0)."""

    start: float
    end: float
    clock: Literal["wall", "relative"]  # which anchor placed it

    @property
    def field(self) -> str:
        """The request field that placed the window, named in errors about the range."""
        return "StartPos" if self.clock == "wall" else "StartTime"

    def check_overlaps(
        self, archive_start: float, edge: float, *, is_live: bool, obj: str, slack: float = 0.0
    ) -> None:
        """Raise :class:`RangeNotInArchive` unless the window meets [archive_start, edge).

        A live archive may still grow, so a window past its edge waits instead.  ``slack``
        absorbs float noise at the archive start (DASH sums ticks; HLS starts at 0.0).
        """
        if self.end <= archive_start + slack:
            raise RangeNotInArchive(
                f"range {self.start:.3f}-{self.end:.3f}s ends before the archive starts "
                f"at {archive_start:.3f}s",
                field=self.field,
                obj=obj,
            )
        if self.start >= edge and not is_live:
            raise RangeNotInArchive(
                f"range {self.start:.3f}-{self.end:.3f}s starts after the archive ends "
                f"at {edge:.3f}s",
                field=self.field,
                obj=obj,
            )

    def with_missing(self, gaps: Iterable[Gap], archive_start: float) -> tuple[Gap, ...]:
        """``gaps``, after the part of the window before the archive starts (if any)."""
        if self.start < archive_start:
            return (Gap(self.start, min(archive_start, self.end), "missing"), *gaps)
        return tuple(gaps)


def parse_start_time(value: str | None) -> float | None:
    if value is None or value == "":
        return None
    m = _HMS.match(value.strip())
    if not m:
        raise InvalidRequest(f"StartTime {value!r} is not HH:MM:SS[.mmm]", field="StartTime")
    h, mi, s, ms = m.groups()
    return int(h) * 3600 + int(mi) * 60 + int(s) + (int(ms.ljust(3, "0")) / 1000 if ms else 0.0)


def range_request(
    start_pos_ms: int | float | None, start_time: str | None, duration_ms: int | float | None
) -> RangeRequest:
    """Validate the three range fields; every error names the field at fault."""
    if duration_ms is None or isinstance(duration_ms, bool):
        raise InvalidRequest("Duration (ms) is required", field="Duration")
    if not isinstance(duration_ms, int | float) or duration_ms != duration_ms:
        raise InvalidRequest(f"Duration {duration_ms!r} is not a number", field="Duration")
    if duration_ms <= 0:
        raise InvalidRequest(f"Duration {duration_ms} ms must be positive", field="Duration")
    if duration_ms > MAX_DURATION_MS:
        raise InvalidRequest(f"Duration {duration_ms} ms is over the 24 h limit", field="Duration")
    if start_pos_ms is not None:
        if isinstance(start_pos_ms, bool) or not isinstance(start_pos_ms, int | float):
            raise InvalidRequest(f"StartPos {start_pos_ms!r} is not a number", field="StartPos")
        if start_pos_ms < 0:
            raise InvalidRequest(f"StartPos {start_pos_ms} must not be negative", field="StartPos")
    start_s = parse_start_time(start_time)
    if start_pos_ms is None and start_s is None:
        raise InvalidRequest("StartPos or StartTime is required", field="StartPos")
    return RangeRequest(
        start_pos_ms=int(start_pos_ms) if start_pos_ms is not None else None,
        start_time_s=start_s,
        duration_ms=int(duration_ms),
    )
