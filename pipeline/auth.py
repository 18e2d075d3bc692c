"""The pluggable SessionId check.

Two implementations, chosen by the settings: :class:`OpenSessions` (no check; the embedded
default when ``EXPORT_SESSION_IDS`` is unset, and start-up must say so) and
:class:`StaticSessions` (a fixed set of ids).  Another check (a call to a session service)
only has to satisfy :class:`SessionCheck`.  A session id is a credential: no error message,
log line or repr here ever contains one.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from pipeline.errors import InvalidRequest, Unauthorized

if TYPE_CHECKING:
    from pipeline.settings import Settings

FIELD = "SessionId"


@runtime_checkable
class SessionCheck(Protocol):
    name: str

    def check(self, session_id: object) -> None:
        """Return if ``session_id`` (the body's raw value, maybe None) may export; else raise
        :class:`Unauthorized` (or :class:`InvalidRequest` for a non-string)."""
        ...

    def startup_message(self) -> str:
        """One line for start-up that says how requests are authenticated."""
        ...


def _require_string(session_id: object) -> str | None:
    if session_id is None or session_id == "":
        return None
    if not isinstance(session_id, str):
        raise InvalidRequest(f"{FIELD} must be a string", field=FIELD)
    return session_id


class OpenSessions:
    """Accepts every request, with or without a SessionId."""

    name = "open"

    def check(self, session_id: object) -> None:
        _require_string(session_id)

    def startup_message(self) -> str:
        return (
            "auth: OPEN - SessionId is not checked (EXPORT_SESSION_IDS is unset); "
            "anyone who can reach the HTTP port can export"
        )

    def __repr__(self) -> str:
        return "OpenSessions()"


class StaticSessions:
    """Accepts the SessionIds of a fixed set; compares digests in constant time."""

    name = "static"

    def __init__(self, session_ids: Iterable[str]) -> None:
        self._digests = [hashlib.sha256(s.encode()).digest() for s in session_ids]
        if not self._digests:
            raise ValueError("StaticSessions needs at least one session id")

    def check(self, session_id: object) -> None:
        value = _require_string(session_id)
        if value is None:
            raise Unauthorized(f"{FIELD} is required", field=FIELD)
        digest = hashlib.sha256(value.encode()).digest()
        # Look at every entry, so the time taken does not say which one nearly matched.
        ok = False
        for known in self._digests:
            ok |= hmac.compare_digest(digest, known)
        if not ok:
            raise Unauthorized(f"{FIELD} is not valid", field=FIELD)

    def startup_message(self) -> str:
        return f"auth: SessionId checked against {len(self._digests)} configured id(s)"

    def __repr__(self) -> str:
        return f"StaticSessions(<{len(self._digests)} ids>)"


def session_check_for(settings: Settings, *, logger: logging.Logger | None = None) -> SessionCheck:
    """The check the settings ask for; with ``logger``, announce it (a warning when open)."""
    check: SessionCheck = (
        OpenSessions() if settings.session_ids is None else StaticSessions(settings.session_ids)
    )
    if logger is not None:
        level = logging.WARNING if isinstance(check, OpenSessions) else logging.INFO
        logger.log(level, check.startup_message())
    return check
