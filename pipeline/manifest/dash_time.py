"""ISO 8601 durations and date-times as DASH MPDs write them (xs:duration, xs:dateTime)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from pipeline.errors import MediaError

_DURATION = re.compile(
    r"^(?P<sign>-)?P(?:(?P<y>\d+(?:\.\d+)?)Y)?(?:(?P<mo>\d+(?:\.\d+)?)M)?(?:(?P<d>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<mi>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)
# xs:duration years and months have no fixed length; MPDs practically never use them, and
# when they do, these are the lengths every DASH player assumes.
_UNIT_SECONDS = {"y": 365 * 86400, "mo": 30 * 86400, "d": 86400, "h": 3600, "mi": 60, "s": 1}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_duration(value: str, *, obj: str, what: str) -> float:
    """``PT1H2M3.5S`` → 3723.5 seconds; ``what`` names the attribute in the error."""
    m = _DURATION.match(value.strip())
    if not m or value.strip() in ("P", "PT") or value.strip().endswith("T"):
        raise MediaError(f"{what} {value!r} is not an ISO 8601 duration", obj=obj)
    total = sum(float(m.group(k)) * mult for k, mult in _UNIT_SECONDS.items() if m.group(k))
    return -total if m.group("sign") else total


def parse_datetime_ms(value: str, *, obj: str, what: str) -> int:
    """xs:dateTime → epoch milliseconds; a time without a zone is taken as UTC."""
    text = value.strip()
    try:
        dt = datetime.fromisoformat(text)
    except ValueError as e:
        raise MediaError(f"{what} {value!r} is not an ISO 8601 date-time", obj=obj) from e
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // timedelta(milliseconds=1)
