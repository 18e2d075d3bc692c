"""The frame-placement rule: which frames belong in the output, and at which output time.

A frame belongs when it presents inside the wanted range (``Timeline.wanted``: in
[start, end), outside every hole), before the caller's limit, and after the last frame
already placed (edges decode pictures the copy or an earlier edge already wrote, and a
decoder may emit a frame twice across a restart).  Its output time is
``Timeline.out_time``: archive time minus the first output frame's time minus the holes
closed before it.  The smart cut's edges, the transcoder and the thumbnail use this one
rule; copied GOPs keep their source spacing and only report what they wrote.
"""

from __future__ import annotations

from pipeline.media.encode import TICKS
from pipeline.media.timeline import EPS, Timeline


class Placement:
    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.last_time: float | None = None  # archive time of the last frame placed
        self._last_pts: int | None = None  # its output time, ticks

    def out_seconds(self, t: float) -> float:
        """Output time of archive time ``t``; the first call fixes the output's origin."""
        tl = self.timeline
        if tl.first is None:
            tl.first = t
        return tl.out_time(t)

    def place(self, t: float, *, before: float) -> int | None:
        """Output pts (ticks) of a decoded frame at archive time ``t`` presented before
        ``before``, or None when it does not belong in the output."""
        if t >= before - EPS or not self.timeline.wanted(t):
            return None
        if self.last_time is not None and t <= self.last_time + EPS:
            return None
        pts = round(self.out_seconds(t) * TICKS)
        if self._last_pts is not None and pts <= self._last_pts:
            return None
        self.last_time, self._last_pts = t, pts
        return pts

    def copied(self, t: float, pts: int) -> None:
        """A copied frame at archive time ``t`` went out at ``pts``."""
        if self.last_time is None or t > self.last_time:
            self.last_time = t
        if self._last_pts is None or pts > self._last_pts:
            self._last_pts = pts
