"""Local folders and S3 behind one small interface, for reading archives and writing outputs.

A *location* is either a filesystem path or ``s3://bucket/key``.  Manifests refer to their
segments relatively; :func:`join_location` resolves those references the same way for both.
boto3's ``ClientError`` is translated here, at the boundary, into the project's errors.
Every S3 call is retried as :mod:`pipeline.storage_retry` describes, then reported as a
StorageFailure naming the object; a missing source stays SourceNotFound.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import posixpath
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import unquote, urlsplit

from pipeline.errors import SourceNotFound, StorageFailure
from pipeline.model import ByteRange
from pipeline.storage_retry import (
    DEFAULT_RETRY,
    KnownSource,
    RetryPolicy,
    read_body,
    require,
    retrying,
    transfer,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from s3transfer.manager import TransferManager


log = logging.getLogger(__name__)
T = TypeVar("T")

_NOT_FOUND = {"NoSuchKey", "NoSuchBucket", "404", "NotFound"}


@contextlib.contextmanager
def s3_errors(
    doing: str, location: str, *, missing: str | None = None, source: bool = True
) -> Iterator[None]:
    """Translate boto3's errors at the boundary: a missing object or bucket we read from
    (``source``) becomes SourceNotFound naming ``missing`` (default ``location``); anything
    else, and a missing output bucket, is a StorageFailure."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as e:
        code = str(e.response.get("Error", {}).get("Code", ""))
        if source and code in _NOT_FOUND:
            raise SourceNotFound("no such object", obj=missing or location) from e
        tries = int(e.response.get("ResponseMetadata", {}).get("RetryAttempts") or 0) + 1
        raise StorageFailure(
            f"S3 {code} {doing} {location} after {tries} attempt(s)", obj=location
        ) from e
    except BotoCoreError as e:
        raise StorageFailure(f"S3 unreachable {doing} {location}: {e}", obj=location) from e


class BlobReader(Protocol):
    """What manifest resolution and the media work need from storage."""

    def read(self, location: str, byte_range: ByteRange | None = None) -> bytes: ...


def is_s3(location: str) -> bool:
    return location.startswith("s3://")


def split_s3(location: str) -> tuple[str, str]:
    parts = urlsplit(location)
    return parts.netloc, parts.path.lstrip("/")


def join_location(base: str, ref: str) -> str:
    """Resolve ``ref`` (as written in a manifest) against the manifest's own location."""
    if "://" in ref:
        if ref.startswith(("s3://", "file://")):
            return unquote(urlsplit(ref).path) if ref.startswith("file://") else ref
        raise SourceNotFound(f"unsupported segment URL scheme in {ref!r}", obj=base)
    if is_s3(base):
        bucket, key = split_s3(base)
        if ref.startswith("/"):
            return f"s3://{bucket}/{ref.lstrip('/')}"
        joined = posixpath.normpath(posixpath.join(posixpath.dirname(key), ref))
        return f"s3://{bucket}/{joined}"
    if os.path.isabs(ref):
        return ref
    return os.path.normpath(os.path.join(os.path.dirname(base), ref))


def s3_client(
    endpoint_url: str | None = None,
    region: str | None = None,
    *,
    retry: RetryPolicy = DEFAULT_RETRY,
) -> S3Client:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        config=retry.botocore_config(),
    )


class Blobs:
    """Reads local files and S3 objects; one boto3 client per instance, created lazily."""

    def __init__(
        self,
        s3_endpoint_url: str | None = None,
        region: str | None = None,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
    ) -> None:
        self._endpoint = s3_endpoint_url
        self._region = region
        self.retry = retry
        self._client: S3Client | None = None

    @property
    def s3(self) -> S3Client:
        if self._client is None:
            self._client = s3_client(self._endpoint, self._region, retry=self.retry)
        return self._client

    def call(
        self,
        doing: str,
        location: str,
        attempt: Callable[[], T],
        *,
        missing: str | None = None,
        source: bool = True,
    ) -> T:
        """One S3 operation on ``location``: retried, then its errors translated."""
        with s3_errors(doing, location, missing=missing, source=source):
            return retrying(self.retry, doing, location, attempt)

    def transfers(self) -> TransferManager:
        """s3transfer's manager itself, not boto3's ``upload_file``/``copy`` wrappers: those
        hide a ClientError inside S3UploadFailedError and HEAD the source without checking
        the answer (the ``KeyError: 'ContentLength'`` of a copy)."""
        from s3transfer.manager import TransferManager

        return TransferManager(self.s3)

    def head(
        self, location: str, *, missing: str | None = None, need: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        """HEAD an S3 object, retried until the answer carries the fields in ``need``;
        SourceNotFound naming ``missing`` (default ``location``) if it is absent."""
        bucket, key = split_s3(location)

        def attempt() -> dict[str, Any]:
            head = dict(self.s3.head_object(Bucket=bucket, Key=key))
            for name in need:
                require(head, name)
            return head

        return self.call("reading", location, attempt, missing=missing)

    def read(self, location: str, byte_range: ByteRange | None = None) -> bytes:
        if is_s3(location):
            return self._read_s3(location, byte_range)
        try:
            with open(location, "rb") as f:
                if byte_range is None:
                    return f.read()
                f.seek(byte_range.offset)
                return f.read(byte_range.length)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as e:
            raise SourceNotFound("no such file", obj=location) from e
        except OSError as e:
            raise StorageFailure(f"cannot read {location}: {e.strerror}", obj=location) from e

    def exists(self, location: str) -> bool:
        if not is_s3(location):
            return os.path.isfile(location)
        # HEAD, not a 1-byte GET: a GET of bytes=0-0 answers 416 for an empty object.
        try:
            self.head(location)
        except SourceNotFound:
            return False
        return True

    def _read_s3(self, location: str, byte_range: ByteRange | None) -> bytes:
        bucket, key = split_s3(location)
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if byte_range is not None:
            kwargs["Range"] = byte_range.header()

        def attempt() -> bytes:
            response = self.s3.get_object(**kwargs)
            return read_body(response, byte_range.length if byte_range else None)

        return self.call("reading", location, attempt)


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str  # relative key under the output root, e.g. "export/<job>/<name>.mp4"
    location: str  # absolute: filesystem path or s3://bucket/prefix/key
    size: int
    sha256: str


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class OutputStore:
    """Where finished outputs go: a local folder or an S3 ``s3://bucket/prefix``.

    Keys are deterministic per job, so a redelivered upload overwrites the same object
    instead of producing a second one.
    """

    def __init__(self, root: str, blobs: Blobs) -> None:
        self.root = root.rstrip("/") if is_s3(root) else str(Path(root).resolve())
        self.blobs = blobs

    def location(self, key: str) -> str:
        key = key.lstrip("/")
        if is_s3(self.root):
            return f"{self.root}/{key}"
        return os.path.join(self.root, key)

    def put_file(
        self,
        key: str,
        path: Path,
        content_type: str,
        metadata: Mapping[str, str] | None = None,
    ) -> StoredObject:
        dest = self.location(key)
        size = path.stat().st_size
        digest = file_sha256(path)
        if is_s3(dest):
            bucket, obj_key = split_s3(dest)
            extra: dict[str, Any] = {"ContentType": content_type}
            if metadata:
                extra["Metadata"] = {k: _ascii(v) for k, v in metadata.items()}
            upload = functools.partial(self._upload, str(path), bucket, obj_key, extra)
            self.blobs.call("uploading", dest, upload, source=False)
        else:
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            tmp = dest + ".part"
            shutil.copyfile(path, tmp)
            os.replace(tmp, dest)  # atomic: a reader never sees half a file
        return StoredObject(key=key.lstrip("/"), location=dest, size=size, sha256=digest)

    # --- staging -> final key, cleanup (the upload stage) ----------------------------------

    def exists(self, key: str) -> bool:
        return self.blobs.exists(self.location(key))

    def copy(
        self,
        src_key: str,
        dst_key: str,
        *,
        content_type: str,
        metadata: Mapping[str, str] | None = None,
    ) -> StoredObject:
        """Copy an object inside the store (server-side on S3), replacing its metadata.

        Locally the metadata goes to a ``<dst>.meta.json`` sidecar, since files have none.
        """
        src, dest = self.location(src_key), self.location(dst_key)
        if is_s3(dest):
            size = self._copy_s3(src, dest, content_type, metadata or {})
            return StoredObject(key=dst_key.lstrip("/"), location=dest, size=size, sha256="")
        try:
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            tmp = dest + ".part"
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)
            if metadata:
                import json

                with open(dest + ".meta.json.part", "w", encoding="utf-8") as f:
                    json.dump(dict(metadata), f, ensure_ascii=False)
                os.replace(dest + ".meta.json.part", dest + ".meta.json")
        except FileNotFoundError as e:
            raise SourceNotFound("no such file", obj=src) from e
        except OSError as e:
            raise StorageFailure(f"cannot copy {src} to {dest}: {e.strerror}", obj=dest) from e
        return StoredObject(
            key=dst_key.lstrip("/"), location=dest, size=os.path.getsize(dest), sha256=""
        )

    def delete(self, key: str) -> None:
        """Remove an object; a missing one is fine (deletes are retried on redelivery)."""

        loc = self.location(key)
        if is_s3(loc):
            bucket, obj_key = split_s3(loc)
            delete = functools.partial(self.blobs.s3.delete_object, Bucket=bucket, Key=obj_key)
            self.blobs.call("deleting", loc, delete, source=False)
            return
        try:
            os.remove(loc)
        except FileNotFoundError:
            return
        except OSError as e:
            raise StorageFailure(f"cannot delete {loc}: {e.strerror}", obj=loc) from e
        # drop the now-empty staging/<job_id>/ folder; keep anything else
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(loc))

    def discard(self, key: str) -> bool:
        """Delete a staging copy as :meth:`delete` does (same retries), but never raise.

        Cleanup must not fail a job whose outputs are already in place.  A copy that could
        not be deleted is logged (a warning naming the key) and left where it is: the
        retention timer removes it with the job's other files, and a redelivered upload of
        the same job finds it under the same deterministic key and copies or deletes it
        again, so a leftover is harmless.  Returns True once a delete was confirmed; False
        says only that it was not (a reset may hide a delete the server did carry out).
        """
        try:
            self.delete(key)
        except Exception as e:  # best effort by contract: no failure of a cleanup escapes
            log.warning("could not delete staging copy %s: %s", self.location(key), e)
            return False
        return True

    # --- S3 transfers, each one attempt for retrying() --------------------------------------

    def _upload(self, path: str, bucket: str, key: str, extra: dict[str, Any]) -> None:
        with self.blobs.transfers() as manager:
            transfer(lambda: manager.upload(path, bucket, key, extra_args=extra))

    def _copy_s3(self, src: str, dest: str, content_type: str, metadata: Mapping[str, str]) -> int:
        """Server-side copy, metadata replaced; returns the size.  The source is HEADed here,
        its answer checked, and handed to s3transfer so that it need not HEAD it again."""
        head = self.blobs.head(src, missing=src, need=("ContentLength", "ETag"))
        size, etag = int(head["ContentLength"]), str(head["ETag"])
        bucket, obj_key = split_s3(dest)
        src_bucket, src_obj = split_s3(src)
        extra = {
            "ContentType": content_type,
            "Metadata": {k: _ascii(v) for k, v in metadata.items()},
            "MetadataDirective": "REPLACE",
        }
        known = KnownSource.of(size, etag)

        def attempt() -> None:
            with self.blobs.transfers() as manager:
                transfer(
                    lambda: manager.copy(
                        {"Bucket": src_bucket, "Key": src_obj},
                        bucket,
                        obj_key,
                        extra_args=extra,
                        subscribers=[known],
                    )
                )

        self.blobs.call("copying to", dest, attempt, missing=src)
        return size


def _ascii(value: str) -> str:
    # S3 user metadata must be ASCII; keep it readable and lossless enough for humans.
    return value.encode("ascii", "backslashreplace").decode("ascii")
