"""How storage retries S3 faults: botocore's retries per request, ours per operation.

Also the two places where s3transfer would otherwise index a response unchecked.

Two layers, so that nothing is retried twice:

* **botocore** (standard mode) retries each HTTP request it can judge by itself: throttling
  (SlowDown, RequestLimitExceeded, 429...), 500/502/503/504, S3's "200 with an error body" on
  copies, connection resets and closed connections, connect/read timeouts, and a response
  cut short before botocore handed it over.  Its backoff is full jitter,
  ``rand() * min(scale * 2**i, 20 s)`` with scale 1 s for throttling and 50 ms otherwise.
* **this module** retries the whole operation when botocore returned a response we cannot
  use: a body truncated *while we read it* (botocore has already returned by then), a
  response without a field S3 always sends (e.g. ``ContentLength``; s3transfer indexes such
  fields and would raise ``KeyError``), and the 5xx codes botocore leaves alone (507, ...).

Everything else (403, a missing bucket, botocore's retries exhausted) is final at once.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

from pipeline.errors import StorageFailure

if TYPE_CHECKING:
    from botocore.config import Config
    from s3transfer.subscribers import BaseSubscriber

log = logging.getLogger(__name__)
T = TypeVar("T")

# The 5xx statuses botocore's standard mode already retries; 501 (NotImplemented) is a
# permanent answer.  Any other 5xx is ours to retry.
_BOTOCORE_RETRIES_STATUS = frozenset({500, 502, 503, 504})
_PERMANENT_5XX = frozenset({501})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard one storage operation tries before it reports a StorageFailure.

    ``request_attempts`` bounds botocore's tries of one HTTP request; ``attempts`` bounds our
    tries of the whole operation, so one operation makes at most :attr:`max_requests`
    requests.  No new attempt of ours starts once ``budget_s`` has passed.
    """

    request_attempts: int = 4
    attempts: int = 4
    base_delay_s: float = 0.2
    max_delay_s: float = 5.0
    budget_s: float = 60.0
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0

    @property
    def max_requests(self) -> int:
        return self.attempts * self.request_attempts

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Full jitter (AWS architecture blog, "Exponential Backoff and Jitter"): spreads
        the retries of many workers that failed at the same moment."""
        return rand() * min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))

    def botocore_config(self) -> Config:
        from botocore.config import Config

        return Config(
            retries={"mode": "standard", "total_max_attempts": self.request_attempts},
            connect_timeout=self.connect_timeout_s,
            read_timeout=self.read_timeout_s,
        )


DEFAULT_RETRY = RetryPolicy()


class Transient(Exception):
    """A fault botocore handed back to us instead of retrying; worth another attempt."""


def require(response: Mapping[str, Any], name: str) -> Any:
    """A field S3 always sends; its absence is a malformed answer, not a ``KeyError``."""
    value = response.get(name)
    if value is None:
        raise Transient(f"response without {name}")
    return value


def read_body(response: Mapping[str, Any], at_most: int | None = None) -> bytes:
    """Read a GetObject body in full (at most ``at_most`` bytes for a ranged GET), or raise
    Transient if it ends early or is not what was asked for.  The body is always closed,
    so that its connection is never left behind half read."""
    from botocore.exceptions import BotoCoreError
    from urllib3.exceptions import ProtocolError

    body = response["Body"]
    try:
        # Without ContentLength a body that ends early could not be told from a whole one.
        expected = int(require(response, "ContentLength"))
        if at_most is not None and expected > at_most:
            raise Transient(f"{expected} bytes for a {at_most}-byte range")
        data: bytes = body.read()
    # IncompleteReadError, ResponseStreamingError and ReadTimeoutError are BotoCoreErrors;
    # ProtocolError and OSError (a reset) are what may escape from urllib3 underneath.
    except (BotoCoreError, ProtocolError, OSError) as e:
        raise Transient(f"body cut short: {e}") from e
    finally:
        body.close()
    if len(data) != expected:
        raise Transient(f"body of {len(data)} bytes, ContentLength {expected}")
    return data


def transfer(start: Callable[[], Any]) -> None:
    """Wait for an s3transfer future; a response it indexed and found lacking is Transient."""
    try:
        start().result()
    except KeyError as e:
        # s3transfer reads UploadId, ETag, ContentLength... with ``response[...]``.
        raise Transient(f"response without {e}") from e


class KnownSource:
    """Tells s3transfer a copy source's size and ETag, which it would otherwise HEAD for
    (and index without checking).  The ETag also pins a multipart copy to that version."""

    def __init__(self, size: int, etag: str) -> None:
        self.size, self.etag = size, etag

    @classmethod
    def of(cls, size: int, etag: str) -> BaseSubscriber:
        # Duck-typed (s3transfer calls whichever on_* a subscriber has) so that importing
        # storage does not import s3transfer.
        return cast("BaseSubscriber", cls(size, etag))

    def on_queued(self, future: Any, **kwargs: Any) -> None:
        future.meta.provide_transfer_size(self.size)
        future.meta.provide_object_etag(self.etag)


def _ours_to_retry(exc: Exception) -> bool:
    if isinstance(exc, Transient):
        return True
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return False
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return status >= 500 and status not in _BOTOCORE_RETRIES_STATUS | _PERMANENT_5XX


def retrying(
    policy: RetryPolicy,
    doing: str,
    location: str,
    attempt: Callable[[], T],
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``attempt`` until it returns; retry only what botocore did not (see module doc).

    Other errors propagate unchanged for :func:`pipeline.storage.s3_errors` to translate.
    Raises StorageFailure naming ``location`` when the attempts or the budget run out.
    """
    deadline = time.monotonic() + policy.budget_s
    last: Exception | None = None
    tries = 0
    while tries < policy.attempts:
        tries += 1
        try:
            return attempt()
        except Exception as e:  # classified right below; anything else is re-raised
            if not _ours_to_retry(e):
                raise
            last = e
        pause = policy.delay(tries)
        if tries == policy.attempts or time.monotonic() + pause >= deadline:
            break
        log.info("S3 %s %s: %s; retry %d in %.2fs", doing, location, last, tries, pause)
        sleep(pause)
    raise StorageFailure(
        f"S3 {doing} {location} failed {tries} times, last: {last}", obj=location
    ) from last
