"""Where a request's archive lives, and a reader that never leaves it.

A request names its archive logically (schemas/request.py ``ArchiveSource``): a bucket and
a prefix, or the service's default archive.  :func:`archive_manifest` turns that and the
LivePath into the manifest's location; :class:`ConfinedReader` reads the manifest and every
segment it refers to, refusing any location outside the archive's root: a manifest may
write ``../../etc/passwd``, ``/etc/passwd``, ``file:///...`` or ``s3://other-bucket/...``,
and none of those is read.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass

from pipeline.errors import MediaError, Unauthorized
from pipeline.model import ByteRange
from pipeline.settings import Settings
from pipeline.storage import BlobReader, is_s3, split_s3
from schemas.request import ArchiveSource


def check_source_allowed(source: ArchiveSource, settings: Settings, *, field: str) -> None:
    """A bucket outside EXPORT_ALLOWED_BUCKETS is refused, whichever door it came through."""
    allowed = settings.allowed_buckets
    if source.bucket is not None and allowed is not None and source.bucket not in allowed:
        raise Unauthorized(
            f"bucket {source.bucket!r} ({field}) is not in EXPORT_ALLOWED_BUCKETS", field=field
        )


def archive_root(source: ArchiveSource, settings: Settings) -> str:
    """The folder or ``s3://bucket/prefix`` nothing of this archive may be read outside of."""
    if source.bucket is not None:
        return f"s3://{source.bucket}/{source.prefix}".rstrip("/")
    base = settings.archive_url
    return base.rstrip("/") if is_s3(base) else os.path.realpath(base)


def archive_manifest(source: ArchiveSource, live_path: str, settings: Settings) -> str:
    """The manifest's location: under the source's bucket and prefix, or under the default
    archive.  ``live_path`` and ``prefix`` are clean relative paths (the request's rules)."""
    if source.bucket is not None:
        key = f"{source.prefix}/{live_path}" if source.prefix else live_path
        return f"s3://{source.bucket}/{key}"
    base = settings.archive_url
    if is_s3(base):
        return f"{base.rstrip('/')}/{live_path}"
    return os.path.join(os.path.abspath(base), *live_path.split("/"))


@dataclass(frozen=True)
class ConfinedReader:
    """A BlobReader that reads only below ``root`` (symlinks resolved for local files)."""

    inner: BlobReader
    root: str

    def read(self, location: str, byte_range: ByteRange | None = None) -> bytes:
        self.check(location)
        return self.inner.read(location, byte_range)

    def exists(self, location: str) -> bool:
        self.check(location)
        exists = getattr(self.inner, "exists", None)
        return bool(exists(location)) if exists is not None else True

    def check(self, location: str) -> None:
        if not inside(location, self.root):
            raise MediaError(
                f"{location} lies outside the archive {self.root}: not read", obj=location
            )


def inside(location: str, root: str) -> bool:
    if is_s3(root):
        if not is_s3(location):
            return False
        bucket, prefix = split_s3(root)
        other, key = split_s3(location)
        key = posixpath.normpath("/" + key).lstrip("/")
        return other == bucket and (not prefix or key.startswith(prefix.rstrip("/") + "/"))
    if is_s3(location) or "://" in location:
        return False
    real = os.path.realpath(location)
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)
