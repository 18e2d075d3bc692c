"""The worker's cache: bounded LRU, segments read once, manifests revalidated, confinement."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from pipeline.archive import ConfinedReader
from pipeline.cache import LRU, MIB, MediaCache
from pipeline.cache_reads import Fresh, FreshBlobs
from pipeline.errors import MediaError
from pipeline.manifest import resolve
from pipeline.model import ByteRange
from pipeline.storage import Blobs
from pipeline.synthetic import ArchiveSpec, GrowingArchive
from tests.fixtures.services import S3Server
from tests.pipeline.media.helpers import request

SPEC = ArchiveSpec(seconds=10.0)


class CountingBlobs(FreshBlobs):
    """Real storage, with a note of every read that brought bytes and every "unchanged"."""

    def __init__(self, endpoint: str | None = None) -> None:
        super().__init__(Blobs(endpoint))
        self.reads: list[str] = []
        self.unchanged: list[str] = []

    def read_fresh(self, location: str, byte_range: ByteRange | None, known: str | None) -> Fresh:
        fresh = super().read_fresh(location, byte_range, known)
        (self.reads if fresh.data is not None else self.unchanged).append(location)
        return fresh


def backdate(folder: Path, stamp: float) -> None:
    """Files written just now are never trusted (racy); the tests' files are made older."""
    for path in folder.rglob("*"):
        if path.is_file():
            os.utime(path, (stamp, stamp))


def test_lru_keeps_within_its_budget_dropping_the_least_recent() -> None:
    lru: LRU[str, bytes] = LRU(10)
    lru.put("a", b"a", 4)
    lru.put("b", b"b", 4)
    assert lru.get("a") == b"a"  # now "b" is the least recent
    lru.put("c", b"c", 4)
    assert (lru.get("b"), lru.get("a"), lru.get("c")) == (None, b"a", b"c")
    assert lru.used == 8 and lru.stats.evictions == 1
    lru.put("huge", b"h", 11)
    assert lru.get("huge") is None and lru.used == 8
    lru.resize("a", 9)  # grew in place: "c" goes
    assert lru.get("c") is None and lru.used == 9


def test_lru_shared_by_threads_stays_consistent() -> None:
    lru: LRU[int, int] = LRU(1000)

    def work(base: int) -> None:
        for i in range(2000):
            lru.put(base + i % 97, i, 1 + i % 13)
            lru.get(base + (i * 7) % 97)

    threads = [threading.Thread(target=work, args=(n * 1000,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert lru.used <= 1000
    assert lru.used == sum(size for _, size in lru._entries.values())


def test_local_segment_is_read_once_and_a_changed_file_again(tmp_path: Path) -> None:
    seg = tmp_path / "seg.m4s"
    seg.write_bytes(b"one")
    backdate(tmp_path, time.time() - 60)
    blobs = CountingBlobs()
    reader = MediaCache(1).reader(blobs, None)
    assert [reader.read(str(seg)) for _ in range(3)] == [b"one"] * 3
    assert len(blobs.reads) == 1 and len(blobs.unchanged) == 2  # one fstat each
    seg.write_bytes(b"two!")
    backdate(tmp_path, time.time() - 30)
    assert reader.read(str(seg)) == b"two!"


def test_a_file_written_just_now_is_never_served_from_memory(tmp_path: Path) -> None:
    manifest = tmp_path / "stream.mpd"
    manifest.write_bytes(b"<MPD a/>")
    blobs = CountingBlobs()
    reader = MediaCache(1).reader(blobs, None)
    reader.read(str(manifest))
    manifest.write_bytes(b"<MPD b/>")  # same size, maybe the same mtime tick
    assert reader.read(str(manifest)) == b"<MPD b/>"
    assert len(blobs.reads) == 2


def test_growing_archive_is_never_served_stale(tmp_path: Path) -> None:
    live = GrowingArchive(tmp_path / "rec", SPEC, kind="dash")
    live.publish_until(4.0)
    backdate(tmp_path, time.time() - 60)
    blobs = CountingBlobs()
    reader = MediaCache(4).reader(blobs, None)
    manifest = str(live.manifest)
    first = resolve(reader, manifest, request(SPEC, 0, 250), now_ms=live.live_edge_ms)
    again = resolve(reader, manifest, request(SPEC, 0, 250), now_ms=live.live_edge_ms)
    assert first == again and blobs.unchanged == [manifest]
    live.publish_until(8.0)
    backdate(tmp_path, time.time() - 30)
    grown = resolve(reader, manifest, request(SPEC, 0, 250), now_ms=live.live_edge_ms)
    assert len(grown.video) > len(first.video)
    assert grown.video[-1].start + grown.video[-1].duration == pytest.approx(8.0)
    assert blobs.reads.count(manifest) == 2


def test_confinement_stays_in_front_of_the_cache(tmp_path: Path) -> None:
    inside, outside = tmp_path / "a", tmp_path / "b"
    inside.mkdir()
    outside.mkdir()
    (outside / "seg.m4s").write_bytes(b"secret")
    backdate(tmp_path, time.time() - 60)
    cached = MediaCache(1).reader(Blobs(), None)
    assert ConfinedReader(cached, str(outside)).read(str(outside / "seg.m4s")) == b"secret"
    with pytest.raises(MediaError, match="outside the archive"):
        ConfinedReader(cached, str(inside)).read(str(outside / "seg.m4s"))


def test_scopes_of_two_regions_never_share_an_entry(tmp_path: Path) -> None:
    seg = tmp_path / "seg.m4s"
    seg.write_bytes(b"x")
    backdate(tmp_path, time.time() - 60)
    cache = MediaCache(1)
    east, west = CountingBlobs(), CountingBlobs()
    cache.reader(east, "us-east-1").read(str(seg))
    cache.reader(west, "us-west-1").read(str(seg))
    assert len(east.reads) == len(west.reads) == 1 and len(cache.objects) == 2


def test_budget_is_split_a_quarter_for_objects() -> None:
    cache = MediaCache(256)
    assert (cache.objects.budget, cache.frames.budget) == (64 * MIB, 192 * MIB)
    assert cache.budget == 256 * MIB


@pytest.mark.integration
def test_s3_segments_need_no_request_and_manifests_a_conditional_one(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    client = s3_server.client()
    bucket = "cache-test"
    client.create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
    client.put_object(Bucket=bucket, Key="a/seg.m4s", Body=b"media")  # type: ignore[attr-defined]
    client.put_object(Bucket=bucket, Key="a/stream.mpd", Body=b"<MPD 1/>")  # type: ignore[attr-defined]
    blobs = CountingBlobs(s3_server.endpoint_url)
    reader = MediaCache(1, s3_server.endpoint_url).reader(blobs, None)
    seg, manifest = f"s3://{bucket}/a/seg.m4s", f"s3://{bucket}/a/stream.mpd"
    assert [reader.read(seg) for _ in range(3)] == [b"media"] * 3
    assert reader.read(seg, ByteRange(1, 3)) == b"edi"
    assert blobs.reads == [seg, seg] and blobs.unchanged == []
    assert [reader.read(manifest) for _ in range(2)] == [b"<MPD 1/>"] * 2
    assert blobs.unchanged == [manifest]  # the 304 of If-None-Match
    client.put_object(Bucket=bucket, Key="a/stream.mpd", Body=b"<MPD 2/>")  # type: ignore[attr-defined]
    assert reader.read(manifest) == b"<MPD 2/>"
