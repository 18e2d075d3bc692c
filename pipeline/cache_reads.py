"""Reads that tell whether an object changed: what the worker's cache revalidates with.

A local file's version is its inode, mtime (ns) and size, from one ``fstat`` of the open
file; an S3 object's is its ETag, checked by a conditional GET (``If-None-Match``).  Against
moto both a HEAD and a 304 answer cost one round trip (20-35 ms each here, within noise of
each other), but a HEAD costs a second one, the GET, whenever the manifest did change,
which a growing one does every segment: the conditional GET is one round trip either way.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from pipeline.errors import SourceNotFound, StorageFailure
from pipeline.model import ByteRange
from pipeline.storage import BlobReader, Blobs, is_s3, split_s3
from pipeline.storage_retry import read_body

# A local file modified this recently may be modified again within the same mtime tick
# (a jiffy) without its version changing: it is read, never trusted (git's "racy" files).
RACY_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Fresh:
    """The answer of :func:`read_fresh`: the bytes, unless they are unchanged."""

    data: bytes | None  # None: unchanged since the version the caller knew
    version: str | None  # None: changing right now (or short), so not worth keeping


@runtime_checkable
class Confining(Protocol):
    """A reader that refuses some locations (pipeline.archive.ConfinedReader)."""

    def check(self, location: str) -> None: ...


def check_readable(reader: BlobReader, location: str) -> None:
    """Raise as ``reader.read(location)`` would if ``reader`` refuses the location: the
    check a cached result (decoded pictures) needs before it is served without a read."""
    if isinstance(reader, Confining):
        reader.check(location)


@dataclass
class FreshBlobs:
    """Storage as the cache reads it: :func:`read_fresh` on one Blobs (its boto3 client)."""

    blobs: Blobs

    def read_fresh(self, location: str, byte_range: ByteRange | None, known: str | None) -> Fresh:
        return read_fresh(self.blobs, location, byte_range, known)

    def exists(self, location: str) -> bool:
        return self.blobs.exists(location)


def read_fresh(
    blobs: Blobs, location: str, byte_range: ByteRange | None, known: str | None
) -> Fresh:
    """The object's bytes and version, or only "unchanged" when its version is ``known``."""
    if is_s3(location):
        return _fresh_s3(blobs, location, byte_range, known)
    try:
        with open(location, "rb") as f:
            st = os.fstat(f.fileno())
            version: str | None = f"{st.st_ino}:{st.st_mtime_ns}:{st.st_size}"
            if time.time_ns() - st.st_mtime_ns < RACY_NS:
                version = None
            elif version == known:
                return Fresh(None, known)
            if byte_range is None:
                return Fresh(f.read(), version)
            f.seek(byte_range.offset)
            data = f.read(byte_range.length)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as e:
        raise SourceNotFound("no such file", obj=location) from e
    except OSError as e:
        raise StorageFailure(f"cannot read {location}: {e.strerror}", obj=location) from e
    return Fresh(data, version if len(data) == byte_range.length else None)


def _fresh_s3(
    blobs: Blobs, location: str, byte_range: ByteRange | None, known: str | None
) -> Fresh:
    from botocore.exceptions import ClientError

    bucket, key = split_s3(location)
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if byte_range is not None:
        kwargs["Range"] = byte_range.header()
    if known is not None:
        kwargs["IfNoneMatch"] = known

    def attempt() -> Fresh:
        try:
            response = blobs.s3.get_object(**kwargs)
        except ClientError as e:
            if known is not None and _status(e) == 304:
                return Fresh(None, known)
            raise
        data = read_body(response, byte_range.length if byte_range else None)
        etag = str(response.get("ETag") or "") or None
        whole = byte_range is None or len(data) == byte_range.length
        return Fresh(data, etag if whole else None)

    return blobs.call("reading", location, attempt)


def _status(error: Any) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
