"""Thumbnails through the worker's cache: a picture already decoded costs no read and no
decode, every picture stays frame-exact, and the pictures stay within their budget."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import av
import pytest

import pipeline.media.decoded_gop as decoded_gop
import pipeline.media.thumbnail as thumbnail
from pipeline.archive import ConfinedReader
from pipeline.cache import MediaCache
from pipeline.cache_reads import FreshBlobs
from pipeline.errors import MediaError
from pipeline.media import grab_thumbnail
from pipeline.model import ByteRange
from pipeline.storage import Blobs
from pipeline.synthetic import read_frame_index
from tests.fixtures.media import MakeArchive, archive_spec
from tests.pipeline.media.helpers import resolve_frames


class CountingReader(FreshBlobs):
    def __init__(self) -> None:
        super().__init__(Blobs())
        self.reads: list[str] = []

    def read_fresh(self, location: str, byte_range: ByteRange | None, known: str | None) -> Any:
        fresh = super().read_fresh(location, byte_range, known)
        if fresh.data is not None:
            self.reads.append(location)
        return fresh


def old(manifest: Path) -> Path:
    """The archive's files as a recorder leaves them: older than the racy window."""
    stamp = time.time() - 60
    for path in manifest.parent.rglob("*"):
        if path.is_file():
            os.utime(path, (stamp, stamp))
    return manifest


def index_of(path: Path) -> int | None:
    with av.open(str(path)) as c:
        return read_frame_index(next(c.decode(video=0)))


@pytest.fixture
def decoders(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    made: list[str] = []
    real = thumbnail.new_decoder

    def counting(codec: str) -> av.VideoCodecContext:
        made.append(codec)
        return real(codec)

    monkeypatch.setattr(thumbnail, "new_decoder", counting)
    monkeypatch.setattr(decoded_gop, "new_decoder", counting)
    return made


def test_a_second_picture_of_the_segment_is_a_jpeg_encode(
    make_archive: MakeArchive, tmp_path: Path, decoders: list[str]
) -> None:
    manifest = old(make_archive("dash"))
    spec = archive_spec(manifest)
    cache = MediaCache(64)
    storage = CountingReader()
    reader, frames = cache.reader(storage, None), cache.frames_for(None)
    first = grab_thumbnail(
        reader, resolve_frames(manifest, spec, 40, 1), tmp_path / "a.jpg", frames=frames
    )
    assert index_of(first.path) == 40 and len(decoders) == 1
    reads = len(storage.reads)
    # Frame 12 lies before the one served: decoded already, unless it was skipped (a
    # non-reference picture), which the pictures kept say.
    (segment,) = [e for e, _ in cache.frames._entries.values()]
    assert isinstance(segment, decoded_gop.DecodedSegment)
    kept = sorted(round(t * 25 / 90_000) for t in segment.pictures)
    again = next(i for i in kept if i < 40)
    second = grab_thumbnail(
        reader, resolve_frames(manifest, spec, again, 1), tmp_path / "b.jpg", frames=frames
    )
    assert index_of(second.path) == again
    assert len(decoders) == 1 and len(storage.reads) == reads  # no decode, no read
    assert segment.decodes == 1


@pytest.mark.parametrize(("kind", "opts"), [("dash", {}), ("dash", {"codec": "hevc"})])
def test_cached_pictures_are_frame_exact_in_any_order(
    make_archive: MakeArchive, tmp_path: Path, kind: str, opts: dict[str, Any]
) -> None:
    manifest = old(make_archive(kind, **opts))
    spec = archive_spec(manifest)
    cache = MediaCache(64)
    reader, frames = cache.reader(Blobs(), None), cache.frames_for(None)
    for index in (37, 10, 49, 50, 3, 51, 37, 99, 149):
        res = resolve_frames(manifest, spec, index, 1)
        out = grab_thumbnail(reader, res, tmp_path / f"{index}.jpg", frames=frames)
        assert index_of(out.path) == index
        assert out.time == pytest.approx(index / float(spec.fps), abs=1e-6)


def test_open_gop_leading_pictures_through_the_cache(
    make_archive: MakeArchive, tmp_path: Path
) -> None:
    manifest = old(make_archive("dash", codec="hevc", open_gop=True))
    spec = archive_spec(manifest)
    cache = MediaCache(64)
    reader, frames = cache.reader(Blobs(), None), cache.frames_for(None)
    for index in (48, 49, 50, 51, 52):
        res = resolve_frames(manifest, spec, index, 1)
        assert index_of(grab_thumbnail(reader, res, tmp_path / "t.jpg", frames=frames).path) == (
            index
        )


def test_skipping_non_reference_pictures_decodes_fewer(
    make_archive: MakeArchive, tmp_path: Path
) -> None:
    manifest = old(make_archive("dash", bframes=3))
    spec = archive_spec(manifest)
    cache = MediaCache(64)
    frames = cache.frames_for(None)
    res = resolve_frames(manifest, spec, 45, 1)
    out = grab_thumbnail(cache.reader(Blobs(), None), res, tmp_path / "t.jpg", frames=frames)
    assert index_of(out.path) == 45
    ((segment, _),) = cache.frames._entries.values()
    assert isinstance(segment, decoded_gop.DecodedSegment)
    assert len(segment.pictures) < 46  # some of frames 0..45 were never decoded


def test_pictures_stay_within_their_budget(make_archive: MakeArchive, tmp_path: Path) -> None:
    manifest = old(make_archive("dash", seconds=12.0))  # 6 segments of 320x180
    spec = archive_spec(manifest)
    cache = MediaCache(1)  # 768 KiB of pictures, 256 KiB a segment: ~2 pictures each
    reader, frames = cache.reader(Blobs(), None), cache.frames_for(None)
    for index in (49, 99, 149, 199, 249, 299, 48):
        res = resolve_frames(manifest, spec, index, 1)
        out = grab_thumbnail(reader, res, tmp_path / "t.jpg", frames=frames)
        assert index_of(out.path) == index
        assert cache.frames.used <= cache.frames.budget
        for segment, size in cache.frames._entries.values():
            assert size <= cache.frames.budget // decoded_gop.SEGMENTS_KEPT
            assert isinstance(segment, decoded_gop.DecodedSegment) and segment.pictures
    assert cache.frames.stats.evictions > 0  # the first segment's entry went, and came back


def test_cached_pictures_are_not_served_outside_the_readers_archive(
    make_archive: MakeArchive, tmp_path: Path
) -> None:
    manifest = old(make_archive("dash"))
    spec = archive_spec(manifest)
    cache = MediaCache(64)
    frames = cache.frames_for(None)
    res = resolve_frames(manifest, spec, 37, 1)
    allowed = ConfinedReader(cache.reader(Blobs(), None), os.path.realpath(manifest.parent))
    grab_thumbnail(allowed, res, tmp_path / "a.jpg", frames=frames)
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    refused = ConfinedReader(cache.reader(Blobs(), None), os.path.realpath(elsewhere))
    with pytest.raises(MediaError, match="outside the archive"):
        grab_thumbnail(refused, res, tmp_path / "b.jpg", frames=frames)


@pytest.mark.parametrize(
    "opts", [{"bframes": 3}, {"codec": "hevc"}, {"codec": "hevc", "open_gop": True}]
)
def test_frame_threads_with_skipping_stay_frame_exact(
    make_archive: MakeArchive, tmp_path: Path, opts: dict[str, Any]
) -> None:
    manifest = make_archive("dash", **opts)
    spec = archive_spec(manifest)
    for index in (0, 23, 45, 49, 50, 51, 98):
        res = resolve_frames(manifest, spec, index, 1)
        out = grab_thumbnail(Blobs(), res, tmp_path / "t.jpg", frame_threads=True)
        assert index_of(out.path) == index
