"""The requested range, validated, before any manifest is read."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.errors import InvalidRequest

MAX_DURATION_MS = 24 * 3600 * 1000
_HMS = re.compile(r"^(\d{1,3}):([0-5]?\d):([0-5]?\d)(?:\.(\d{1,3}))?$")


@dataclass(frozen=True, slots=True)
class RangeRequest:
    """StartPos (epoch ms), StartTime ("HH:MM:SS" from the recording's start), Duration (ms)."""

    start_pos_ms: int | None
    start_time_s: float | None
    duration_ms: int

    def archive_start(self, epoch_ms_at_zero: int | None) -> tuple[float, str]:
        """Map the request onto the archive timeline; say which anchor was used.

        Wall clock wins when both the request (StartPos) and the archive have one;
        otherwise StartTime is the offset from the start of the recording.
        """
        if epoch_ms_at_zero is not None and self.start_pos_ms is not None:
            return (self.start_pos_ms - epoch_ms_at_zero) / 1000.0, "wall"
        if self.start_time_s is not None:
            return self.start_time_s, "relative"
        if epoch_ms_at_zero is None:
            raise InvalidRequest(
                "the archive has no wall-clock anchor, so StartTime (HH:MM:SS) is required",
                field="StartTime",
            )
        raise InvalidRequest("StartPos is required", field="StartPos")


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
