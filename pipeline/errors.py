"""The one exception root and its field-carrying subclasses.

Every error names the offending field or object (``field``/``obj``) so that a caller,
a log line or a dead-letter event can say exactly what was wrong.  ``code`` is the
legacy ``ErrorCode`` the ``/export`` contract answers with (HTTP stays 200).
"""

from __future__ import annotations


class ExportError(Exception):
    """Root of every error mediaexport raises on purpose."""

    code: int = -9
    legacy_message: str | None = None  # fixed text some legacy callers match on

    def __init__(self, message: str, *, field: str | None = None, obj: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.obj = obj

    def __str__(self) -> str:
        where = []
        if self.field:
            where.append(f"field {self.field}")
        if self.obj:
            where.append(self.obj)
        return f"{self.message} ({', '.join(where)})" if where else self.message

    def to_dict(self) -> dict[str, object]:
        return {
            "type": type(self).__name__,
            "code": self.code,
            "message": str(self),
            "field": self.field,
            "object": self.obj,
        }


class SourceNotFound(ExportError):
    """The archive, manifest or segment does not exist."""

    code = -1
    legacy_message = "not such dir"


class InvalidRequest(ExportError):
    """A request field is missing, malformed or out of range."""

    code = -2


class Unauthorized(ExportError):
    """The SessionId is missing or unknown, or the request names a bucket it may not read."""

    code = -3


class Overloaded(ExportError):
    """Too many unfinished jobs, or shutting down: try again after TimeWait."""

    code = -4


class MediaError(ExportError):
    """A manifest or segment cannot be parsed or decoded, or its codec is unsupported."""

    code = -5


class StorageFailure(ExportError):
    """Reading or writing object storage failed for a reason other than 'not found'."""

    code = -6


class RangeNotInArchive(InvalidRequest):
    """The requested range lies entirely outside what the (finished) archive holds."""


class StageStalled(ExportError):
    """A job's stage made no progress within EXPORT_STAGE_TIMEOUT_MS, even after re-drives."""

    code = -9
