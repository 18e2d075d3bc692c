"""Segment timing as runs of equal-duration segments, located by arithmetic.

A 24-hour archive of 2-second segments is 43,200 segments, but as runs (SegmentTimeline
``S@r`` repeats, ``@duration`` numbering, or 43,200 contiguous ``<S>`` elements coalesced)
it is usually one to a few hundred runs.  Lookups bisect over the run starts; per-segment
values are computed on demand, so nothing per segment is built for the whole timeline.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Mapping


class Timeline:
    """Segments ``0..len-1`` with media times in timescale units.

    Runs are ``(start, duration, count)``; consecutive runs may leave holes between them
    (gaps in the recording); segment starts strictly increase.
    """

    __slots__ = ("_counts", "_durs", "_first", "_starts", "_total", "start_number")

    def __init__(self, runs: Iterable[tuple[int, int, int]], start_number: int = 1) -> None:
        self._starts: list[int] = []
        self._durs: list[int] = []
        self._counts: list[int] = []
        self._first: list[int] = []  # index of each run's first segment
        self.start_number = start_number
        total = 0
        for t, d, n in runs:
            if n <= 0:
                continue
            if d <= 0:
                raise ValueError(f"segment duration {d} is not positive")
            prev_end = self._starts[-1] + self._durs[-1] * self._counts[-1] if self._starts else t
            # A run may overlap the previous run's last segment (S@r=-1 rounds up to the
            # next S@t), but segment starts must strictly increase for the bisection.
            if self._starts and t <= prev_end - self._durs[-1]:
                raise ValueError(f"segment time {t} goes back before {prev_end - self._durs[-1]}")
            if self._starts and self._durs[-1] == d and prev_end == t:
                self._counts[-1] += n  # contiguous, same duration: one run
            else:
                self._starts.append(t)
                self._durs.append(d)
                self._counts.append(n)
                self._first.append(total)
            total += n
        self._total = total

    def __len__(self) -> int:
        return self._total

    @property
    def runs(self) -> int:
        return len(self._starts)

    def _run_of(self, i: int) -> int:
        if not 0 <= i < self._total:
            raise IndexError(i)
        return bisect_right(self._first, i) - 1

    def start(self, i: int) -> int:
        k = self._run_of(i)
        return self._starts[k] + (i - self._first[k]) * self._durs[k]

    def duration(self, i: int) -> int:
        return self._durs[self._run_of(i)]

    def end(self, i: int) -> int:
        return self.start(i) + self.duration(i)

    def number(self, i: int) -> int:
        return self.start_number + i

    @property
    def end_time(self) -> int | None:
        return self.end(self._total - 1) if self._total else None

    @property
    def start_time(self) -> int | None:
        return self._starts[0] if self._total else None

    def at_or_before(self, t: float) -> int:
        """Largest index whose start is <= t; -1 when t precedes every segment."""
        k = bisect_right(self._starts, t) - 1
        if k < 0:
            return -1
        j = min(int((t - self._starts[k]) // self._durs[k]), self._counts[k] - 1)
        return self._first[k] + j

    def before(self, t: float) -> int:
        """Largest index whose start is < t; -1 when none."""
        i = self.at_or_before(t)
        if i >= 0 and self.start(i) >= t:
            i -= 1
        return i

    def containing_or_after(self, t: float) -> int:
        """Index of the segment holding t, else the first one after t (len when none)."""
        i = self.at_or_before(t)
        if i < 0:
            return 0
        return i if self.end(i) > t else i + 1


def timeline_from_s(
    entries: Iterable[Mapping[str, str]],
    *,
    start_number: int,
    first_t: int,
    open_end: float | None,
    open_end_is_now: bool,
) -> Timeline:
    """Runs from SegmentTimeline ``S`` attributes (t, d, r), resolving ``r=-1``.

    A negative repeat lasts until the next ``S@t``, else until ``open_end`` (media ticks): the
    Period end (a partial last segment counts) or, for a live MPD, now (only complete
    segments exist yet).  Contiguous equal-duration S elements are merged as they are read,
    which keeps a timeline of tens of thousands of single ``<S>`` elements cheap.
    """
    runs: list[tuple[int, int, int]] = []
    pending: tuple[int, int] | None = None  # an r=-1 run waiting for its end
    run_t, run_d, run_n = first_t, 0, 0  # the run being merged
    for attrs in entries:
        get = attrs.get
        t_text, d_text, r_text = get("t"), get("d"), get("r")
        try:
            d = int(d_text)  # type: ignore[arg-type]
            t = None if t_text is None else int(t_text)
            r = 0 if r_text is None else int(r_text)
        except (TypeError, ValueError):
            raise ValueError(f"S needs integer @d (and @t/@r): {dict(attrs)}") from None
        if pending is not None:
            if t is None:
                raise ValueError("S@r=-1 must be followed by an S with @t or end the timeline")
            p_t, p_d = pending
            runs.append((p_t, p_d, max(0, math.ceil((t - p_t) / p_d))))
            pending = None
            run_t, run_n = t, 0
        cursor = run_t + run_d * run_n
        if r >= 0 and d == run_d and (t is None or t == cursor):
            run_n += r + 1
            continue
        if run_n:
            runs.append((run_t, run_d, run_n))
        run_t = cursor if t is None else t
        if r < 0:
            pending = (run_t, d)
            run_n = 0
        else:
            run_d, run_n = d, r + 1
    if run_n:
        runs.append((run_t, run_d, run_n))
    if pending is not None:
        p_t, p_d = pending
        if open_end is None:
            raise ValueError("S@r=-1 at the end of an open Period has no end")
        span = (open_end - p_t) / p_d
        runs.append((p_t, p_d, max(0, math.floor(span) if open_end_is_now else math.ceil(span))))
    return Timeline(runs, start_number)
