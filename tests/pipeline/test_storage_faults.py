"""Storage faults are retried, then reported, never hung (issue 6 item 5).

Against the session's S3 server through the fault proxy: transient faults are retried until
every operation succeeds with the right bytes; persistent ones end in StorageFailure naming
the object after a bounded number of requests, counted at the proxy (never timed).
"""

from __future__ import annotations

import contextlib
import logging
import random
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import SourceNotFound, StorageFailure
from pipeline.model import ByteRange
from pipeline.storage import Blobs, OutputStore, RetryPolicy
from pipeline.storage_retry import Transient, retrying
from tests.fixtures.fault_proxy import FAULTS, FaultMix, FaultProxy
from tests.fixtures.services import S3Server

# Tiny pauses for our own loop.  botocore's own backoff (50 ms, 1 s for throttling) cannot be
# shrunk through its Config, so its tries are kept few: one retry per request.  The budget is
# generous so that the attempt bounds, not the machine's speed, decide every outcome.
FAST = RetryPolicy(
    request_attempts=2, attempts=3, base_delay_s=0.001, max_delay_s=0.005, budget_s=600
)
# 30% faults over ~100 requests: with 6 tries a call fails only if 6 faults come in a row.
PATIENT = RetryPolicy(
    request_attempts=6, attempts=6, base_delay_s=0.001, max_delay_s=0.005, budget_s=600
)
HEAVY = ("slowdown", "internal", "reset", "truncate")  # a failed request for every operation


def _payload(n: int, size: int = 64 * 1024) -> bytes:
    return random.Random(n).randbytes(size)


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    name = f"faults-{uuid.uuid4().hex[:12]}"
    client: Any = s3_server.client()
    client.create_bucket(Bucket=name)
    client.close()
    return name


@contextlib.contextmanager
def _store(proxy: FaultProxy, bucket: str, policy: RetryPolicy) -> Iterator[OutputStore]:
    store = OutputStore(f"s3://{bucket}/out", Blobs(proxy.endpoint_url, retry=policy))
    try:
        yield store
    finally:
        store.blobs.s3.close()


@pytest.fixture
def store(fault_proxy: FaultProxy, bucket: str) -> Iterator[OutputStore]:
    with _store(fault_proxy, bucket, FAST) as store:
        yield store


@pytest.fixture
def patient_store(fault_proxy: FaultProxy, bucket: str) -> Iterator[OutputStore]:
    with _store(fault_proxy, bucket, PATIENT) as store:
        yield store


def _put(store: OutputStore, tmp_path: Path, key: str, data: bytes) -> str:
    path = tmp_path / f"{uuid.uuid4().hex}.bin"
    path.write_bytes(data)
    obj = store.put_file(key, path, "application/octet-stream", {"job-id": "j"})
    assert obj.size == len(data)
    return obj.location


@pytest.mark.integration
def test_transient_faults_are_retried_until_every_operation_succeeds(
    patient_store: OutputStore, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    store, blobs = patient_store, patient_store.blobs
    fault_proxy.set_mix(FaultMix(rate=0.3, kinds=FAULTS, seed=6))
    for n in range(8):
        data = _payload(n)
        staged = _put(store, tmp_path, f"staging/j{n}/out.bin", data)
        assert blobs.read(staged) == data
        assert blobs.read(staged, ByteRange(1000, 5000)) == data[1000:6000]
        assert store.exists(f"staging/j{n}/out.bin")
        assert not store.exists(f"staging/j{n}/absent.bin")
        copied = store.copy(
            f"staging/j{n}/out.bin",
            f"final/j{n}.bin",
            content_type="video/mp4",
            metadata={"n": "1"},
        )
        assert (copied.size, blobs.read(copied.location)) == (len(data), data)
        store.delete(f"staging/j{n}/out.bin")
        assert not store.exists(f"staging/j{n}/out.bin")
        assert store.discard(f"staging/j{n}/out.bin")  # already gone: fine
    faults = [s.fault for s in fault_proxy.seen() if s.fault != "forward"]
    assert set(faults) == set(FAULTS), "every kind of fault was injected"
    assert len(faults) > 0.2 * len(fault_proxy.seen())


@pytest.mark.integration
def test_multipart_uploads_and_copies_survive_faults_and_answers_without_etag(
    patient_store: OutputStore, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    # Above s3transfer's 8 MB threshold: CreateMultipartUpload, UploadPart(Copy)s whose ETag
    # s3transfer indexes unchecked, CompleteMultipartUpload.
    data = random.Random(9).randbytes(9 * 1024 * 1024)
    fault_proxy.set_mix(
        FaultMix(rate=0.3, kinds=FAULTS, seed=3, dropped=("Content-Length", "ETag"))
    )
    staged = _put(patient_store, tmp_path, "staging/j/big.bin", data)
    copied = patient_store.copy("staging/j/big.bin", "final/big.bin", content_type="video/mp4")
    fault_proxy.set_mix(FaultMix())
    assert patient_store.blobs.read(staged) == data
    assert (copied.size, patient_store.blobs.read(copied.location)) == (len(data), data)


@pytest.mark.integration
def test_a_part_answer_without_etag_restarts_the_upload_instead_of_raising_key_error(
    store: OutputStore, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    data = random.Random(8).randbytes(9 * 1024 * 1024)  # two parts
    fault_proxy.set_mix(
        FaultMix(
            rate=1.0, kinds=("drop_header",), methods=frozenset({"PUT"}), limit=1, dropped=("ETag",)
        )
    )
    staged = _put(store, tmp_path, "staging/j/big.bin", data)
    parts = [s for s in fault_proxy.seen() if s.method == "PUT"]
    assert parts[0].fault == "drop_header" and len(parts) > 2  # the upload ran again
    fault_proxy.set_mix(FaultMix())
    assert store.blobs.read(staged) == data


def _operations(store: OutputStore, tmp_path: Path) -> dict[str, Callable[[], object]]:
    """Each operation on objects put before the faults start, and the object it names."""
    src = store.location("staging/j/out.bin")
    local = tmp_path / "upload.bin"
    local.write_bytes(_payload(1))
    return {
        "read": lambda: store.blobs.read(src),
        "ranged read": lambda: store.blobs.read(src, ByteRange(10, 100)),
        "exists": lambda: store.exists("staging/j/out.bin"),
        "put_file": lambda: store.put_file("staging/j/new.bin", local, "video/mp4"),
        "copy": lambda: store.copy("staging/j/out.bin", "final/j.bin", content_type="video/mp4"),
        "delete": lambda: store.delete("staging/j/out.bin"),
    }


def _named(store: OutputStore, op: str) -> str:
    key = {"put_file": "staging/j/new.bin"}.get(op, "staging/j/out.bin")
    return store.location(key)


# (operation, fault): drop_header only where the answer's Content-Length is needed.
PERSISTENT = [(op, kind) for op in ("read", "ranged read", "exists", "put_file", "copy", "delete")
              for kind in HEAVY] + [("read", "drop_header"), ("ranged read", "drop_header"),
                                    ("copy", "drop_header")]  # fmt: skip


@pytest.mark.integration
@pytest.mark.parametrize(("op", "kind"), PERSISTENT, ids=[f"{o}-{k}" for o, k in PERSISTENT])
def test_a_persistent_fault_ends_in_storage_failure_naming_the_object_after_bounded_requests(
    store: OutputStore, fault_proxy: FaultProxy, tmp_path: Path, op: str, kind: str
) -> None:
    _put(store, tmp_path, "staging/j/out.bin", _payload(0))
    run = _operations(store, tmp_path)[op]
    fault_proxy.set_mix(FaultMix(rate=1.0, kinds=(kind,)))
    with pytest.raises(StorageFailure) as failed:
        run()
    assert failed.value.obj == _named(store, op)
    assert failed.value.code == -6
    sent = len(fault_proxy.seen())
    # botocore's tries of the last request, or ours of the operation, ran out
    assert min(FAST.attempts, FAST.request_attempts) <= sent <= FAST.max_requests


@pytest.mark.integration
@pytest.mark.parametrize("op", ["read", "ranged read", "exists", "put_file", "copy", "delete"])
def test_a_mix_of_every_fault_on_every_request_ends_each_operation_in_storage_failure(
    store: OutputStore, fault_proxy: FaultProxy, tmp_path: Path, op: str
) -> None:
    _put(store, tmp_path, "staging/j/out.bin", _payload(0))
    run = _operations(store, tmp_path)[op]
    fault_proxy.set_mix(FaultMix(rate=1.0, kinds=HEAVY, seed=1))
    with pytest.raises(StorageFailure) as failed:
        run()
    assert failed.value.obj == _named(store, op)
    assert len(fault_proxy.seen()) <= FAST.max_requests


@pytest.mark.integration
def test_a_copy_that_fails_at_the_copy_names_the_destination(
    store: OutputStore, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    _put(store, tmp_path, "staging/j/out.bin", _payload(0))
    fault_proxy.set_mix(FaultMix(rate=1.0, kinds=HEAVY, methods=frozenset({"PUT"})))
    with pytest.raises(StorageFailure) as failed:
        store.copy("staging/j/out.bin", "final/j.bin", content_type="video/mp4")
    assert failed.value.obj == store.location("final/j.bin")
    copies = [s for s in fault_proxy.seen() if s.method == "PUT"]
    assert FAST.request_attempts <= len(copies) <= FAST.max_requests


@pytest.mark.integration
def test_a_copy_whose_head_lacks_content_length_retries_instead_of_raising_key_error(
    store: OutputStore, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    data = _payload(0)
    _put(store, tmp_path, "staging/j/out.bin", data)
    fault_proxy.set_mix(
        FaultMix(rate=1.0, kinds=("drop_header",), methods=frozenset({"HEAD"}), limit=1)
    )
    copied = store.copy("staging/j/out.bin", "final/j.bin", content_type="video/mp4")
    assert (copied.size, store.blobs.read(copied.location)) == (len(data), data)
    heads = [s.fault for s in fault_proxy.seen() if s.method == "HEAD"]
    assert heads == ["drop_header", "forward"]  # ours; s3transfer asks for no HEAD of its own


@pytest.mark.integration
def test_a_copy_whose_head_never_carries_content_length_is_a_storage_failure(
    store: OutputStore, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    _put(store, tmp_path, "staging/j/out.bin", _payload(0))
    fault_proxy.set_mix(FaultMix(rate=1.0, kinds=("drop_header",), methods=frozenset({"HEAD"})))
    with pytest.raises(StorageFailure, match="without ContentLength") as failed:
        store.copy("staging/j/out.bin", "final/j.bin", content_type="video/mp4")
    assert failed.value.obj == store.location("staging/j/out.bin")
    assert len(fault_proxy.seen()) == FAST.attempts  # each HEAD answered; ours to retry


@pytest.mark.integration
@pytest.mark.parametrize("op", ["read", "put_file", "copy", "delete"])
def test_access_denied_is_reported_at_once_not_retried(
    store: OutputStore, fault_proxy: FaultProxy, tmp_path: Path, op: str
) -> None:
    _put(store, tmp_path, "staging/j/out.bin", _payload(0))
    run = _operations(store, tmp_path)[op]
    fault_proxy.set_mix(FaultMix(rate=1.0, kinds=("forbidden",)))
    with pytest.raises(StorageFailure, match=r"AccessDenied|403"):
        run()
    assert len(fault_proxy.seen()) == 1


@pytest.mark.integration
def test_a_missing_output_bucket_is_a_storage_failure_and_a_missing_source_is_not_found(
    fault_proxy: FaultProxy, bucket: str, tmp_path: Path
) -> None:
    with _store(fault_proxy, f"{bucket}-absent", FAST) as store:
        with pytest.raises(StorageFailure) as failed:
            _put(store, tmp_path, "staging/j/out.bin", b"x")
        assert failed.value.obj == store.location("staging/j/out.bin")
        assert len(fault_proxy.seen()) == 1  # NoSuchBucket is final
    with _store(fault_proxy, bucket, FAST) as store:
        with pytest.raises(SourceNotFound):
            store.blobs.read(store.location("nothing/here.bin"))
        with pytest.raises(SourceNotFound):
            store.copy("nothing/here.bin", "final/x.bin", content_type="video/mp4")


@pytest.mark.integration
def test_discard_never_raises_and_names_the_copy_it_left_behind(
    store: OutputStore,
    fault_proxy: FaultProxy,
    s3_server: S3Server,
    bucket: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _put(store, tmp_path, "staging/j/out.bin", _payload(0))
    # faults that never reach the server, so the copy is surely still there
    fault_proxy.set_mix(FaultMix(rate=1.0, kinds=("slowdown", "internal")))
    with caplog.at_level(logging.WARNING, logger="pipeline.storage"):
        assert store.discard("staging/j/out.bin") is False
    assert store.location("staging/j/out.bin") in caplog.text
    client: Any = s3_server.client()
    assert client.head_object(Bucket=bucket, Key="out/staging/j/out.bin")["ContentLength"] > 0
    client.close()
    fault_proxy.set_mix(FaultMix(rate=1.0, kinds=("forbidden",)))
    assert store.discard("staging/j/out.bin") is False
    fault_proxy.set_mix(FaultMix())
    assert store.discard("staging/j/out.bin") is True
    assert not store.exists("staging/j/out.bin")


def test_discard_of_a_local_copy_that_cannot_be_removed_returns_false(tmp_path: Path) -> None:
    store = OutputStore(str(tmp_path), Blobs())
    (tmp_path / "staging" / "j" / "out.mp4").mkdir(parents=True)  # a folder: remove() fails
    assert store.discard("staging/j/out.mp4") is False
    assert store.discard("staging/j/never-there.mp4") is True


def test_retrying_stops_after_its_attempts_with_full_jitter_pauses() -> None:
    policy = RetryPolicy(attempts=4, base_delay_s=0.5, max_delay_s=1.5, budget_s=600)
    calls: list[int] = []
    pauses: list[float] = []

    def attempt() -> None:
        calls.append(1)
        raise Transient("body cut short")

    with pytest.raises(StorageFailure, match="failed 4 times") as failed:
        retrying(policy, "reading", "s3://b/k", attempt, sleep=pauses.append)
    assert failed.value.obj == "s3://b/k"
    assert len(calls) == 4 and len(pauses) == 3
    assert all(0 <= p <= cap for p, cap in zip(pauses, [0.5, 1.0, 1.5], strict=True))


def test_retrying_starts_no_attempt_past_its_budget() -> None:
    calls: list[int] = []

    def attempt() -> None:
        calls.append(1)
        raise Transient("response without ContentLength")

    with pytest.raises(StorageFailure):
        retrying(RetryPolicy(attempts=5, budget_s=0), "reading", "s3://b/k", attempt)
    assert len(calls) == 1


def test_retrying_passes_other_errors_through_untouched() -> None:
    def attempt() -> None:
        raise ValueError("a bug, not a fault")

    with pytest.raises(ValueError):
        retrying(RetryPolicy(), "reading", "s3://b/k", attempt)


@pytest.mark.parametrize(("status", "tries"), [(507, 3), (503, 1), (501, 1), (403, 1)])
def test_retrying_repeats_only_the_server_errors_botocore_leaves_alone(
    status: int, tries: int
) -> None:
    from botocore.exceptions import ClientError

    calls: list[int] = []

    def attempt() -> None:
        calls.append(1)
        error: Any = {
            "Error": {"Code": str(status)},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }
        raise ClientError(error, "PutObject")

    policy = RetryPolicy(attempts=3, base_delay_s=0, budget_s=600)
    with pytest.raises((ClientError, StorageFailure)):
        retrying(policy, "uploading", "s3://b/k", attempt, sleep=lambda _: None)
    assert len(calls) == tries
