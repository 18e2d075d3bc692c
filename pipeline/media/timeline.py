"""The output timeline: archive time minus the first frame's time minus the holes before it.

Holes are what the clip skips: gaps the manifest reports, missing or corrupt segments.
Closing them keeps output timestamps continuous, and video and audio share the mapping,
so they stay in sync on both sides of a hole.
"""

from __future__ import annotations

from typing import Literal

from pipeline.model import Gap

EPS = 1e-4  # float noise in archive times (s); far below any frame duration
HOLE_EPS = 1e-3  # a hole ends where the next segment starts, up to rounding of the manifest

Reason = Literal["gap", "missing", "live_edge", "corrupt"]


class Timeline:
    def __init__(self, start: float, end: float, gaps: tuple[Gap, ...] = ()) -> None:
        self.start = start
        self.end = end
        self.first: float | None = None  # archive time of the first output frame
        self._holes: list[Gap] = []
        for g in gaps:
            self.add_hole(g.start, g.end, g.reason)

    def add_hole(self, start: float, end: float, reason: Reason) -> None:
        start, end = max(start, self.start), min(end, self.end)
        if end - start > EPS:
            self._holes.append(Gap(start, end, reason))
            self._holes.sort(key=lambda g: g.start)

    def in_hole(self, t: float) -> bool:
        return any(h.start - EPS <= t < h.end - HOLE_EPS for h in self._holes)

    def hole_at(self, t: float) -> Gap | None:
        """The hole ``t`` lies in (``in_hole``'s rule), if any."""
        for h in self._holes:
            if h.start - EPS <= t < h.end - HOLE_EPS:
                return h
        return None

    def wanted(self, t: float) -> bool:
        return self.start - EPS <= t < self.end - EPS and not self.in_hole(t)

    def out_time(self, t: float) -> float:
        assert self.first is not None
        skipped = sum(
            h.end - h.start
            for h in self._holes
            if h.start >= self.first - EPS and h.end <= t + HOLE_EPS
        )
        return t - self.first - skipped

    def gaps(self) -> tuple[Gap, ...]:
        merged: list[Gap] = []
        for h in self._holes:
            if merged and h.start <= merged[-1].end + HOLE_EPS:
                last = merged[-1]
                reason = last.reason if last.reason == h.reason else "missing"
                merged[-1] = Gap(last.start, max(last.end, h.end), reason)
            else:
                merged.append(h)
        return tuple(merged)

    def missing_seconds(self) -> float:
        return sum(g.duration for g in self.gaps())
