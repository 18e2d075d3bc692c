"""The decoded-GOP cache's parked decoder: a later picture of a GOP continues where the last
one stopped, earlier ones and failures decode from the keyframe, and every picture is the
one a fresh decode of the segment gives."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import av
import pytest

import pipeline.media.decoded_gop as decoded_gop
import pipeline.media.thumbnail as thumbnail
from pipeline.cache import MediaCache, Shelf
from pipeline.media import grab_thumbnail
from pipeline.media.encode import TICKS
from pipeline.storage import Blobs
from pipeline.synthetic import ArchiveSpec, read_frame_index
from tests.fixtures.media import MakeArchive, archive_spec
from tests.pipeline.media.helpers import resolve_frames
from tests.pipeline.media.test_thumbnail_cache import index_of, old


@pytest.fixture(autouse=True)
def no_parked_decoders() -> Iterator[None]:
    decoded_gop.PARKED.clear()  # another test's segments must not count against the limit
    yield
    decoded_gop.PARKED.clear()


def grab(manifest: Path, frames: Shelf[object], index: int, out: Path) -> int | None:
    spec = archive_spec(manifest)
    res = resolve_frames(manifest, spec, index, 1)
    result = grab_thumbnail(Blobs(), res, out / f"{index}.jpg", frames=frames)
    return index_of(result.path)


def only_segment(cache: MediaCache) -> decoded_gop.DecodedSegment:
    (segment,) = [e for e, _ in cache.frames._entries.values()]
    assert isinstance(segment, decoded_gop.DecodedSegment)
    return segment


def fresh_pictures(segment: decoded_gop.DecodedSegment) -> dict[int, av.VideoFrame]:
    """Every picture of the segment by pts, decoded whole by a decoder of its own."""
    decoded = thumbnail._decoded(segment.packets, segment.codec, segment.ref, skip=False)
    return {f.pts: f for f in decoded if f.pts is not None}


def same_picture(a: av.VideoFrame, b: av.VideoFrame) -> bool:
    return all(bytes(pa) == bytes(pb) for pa, pb in zip(a.planes, b.planes, strict=True))


def assert_like_a_fresh_decode(segment: decoded_gop.DecodedSegment, spec: ArchiveSpec) -> None:
    fresh = fresh_pictures(segment)
    for pts, picture in segment.pictures.items():
        assert read_frame_index(picture) == round(pts / TICKS * float(spec.fps))
        assert same_picture(picture, fresh[pts]), f"picture at {pts} differs from a fresh decode"


@pytest.mark.parametrize(
    "opts", [{}, {"bframes": 3}, {"codec": "hevc"}, {"codec": "hevc", "bframes": 3}]
)
def test_later_pictures_of_the_gop_continue_on_the_parked_decoder(
    make_archive: MakeArchive, tmp_path: Path, opts: dict[str, Any]
) -> None:
    manifest = old(make_archive("dash", **opts))
    cache = MediaCache(64)
    frames = cache.frames_for(None)
    steps = (10, 11, 12, 17, 30, 31, 45, 49)
    for index in steps:
        assert grab(manifest, frames, index, tmp_path) == index
    segment = only_segment(cache)
    # One decoder from the keyframe; each later step went on from it (a step whose picture
    # the reorder delay had already brought out needed no decoding at all).
    assert segment.decodes == 1 and 1 <= segment.continued <= len(steps) - 1
    assert_like_a_fresh_decode(segment, archive_spec(manifest))


def test_a_picture_before_the_parked_position_decodes_from_the_keyframe(
    make_archive: MakeArchive, tmp_path: Path
) -> None:
    manifest = old(make_archive("dash", bframes=3))
    cache = MediaCache(64)
    frames = cache.frames_for(None)
    assert grab(manifest, frames, 45, tmp_path) == 45
    segment = only_segment(cache)
    skipped = next(i for i in range(45) if round(i * TICKS / 25) not in segment.pictures)
    assert grab(manifest, frames, skipped, tmp_path) == skipped
    assert segment.decodes == 2 and segment.continued == 0
    assert_like_a_fresh_decode(segment, archive_spec(manifest))


class FailingDecoder:
    def __init__(self) -> None:
        self.skip_frame = "DEFAULT"

    def decode(self, _packet: object) -> list[av.VideoFrame]:
        raise av.error.InvalidDataError(1094995529, "broken parked decoder")


def test_a_failing_parked_decoder_falls_back_to_the_keyframe(
    make_archive: MakeArchive, tmp_path: Path
) -> None:
    manifest = old(make_archive("dash"))
    cache = MediaCache(64)
    frames = cache.frames_for(None)
    assert grab(manifest, frames, 10, tmp_path) == 10
    segment = only_segment(cache)
    assert segment.parked is not None
    segment.parked.decoder = FailingDecoder()  # type: ignore[assignment]
    assert grab(manifest, frames, 20, tmp_path) == 20
    assert segment.decodes == 2 and segment.continued == 1
    assert segment.parked is not None and not isinstance(segment.parked.decoder, FailingDecoder)


def test_at_most_two_decoders_stay_parked(make_archive: MakeArchive, tmp_path: Path) -> None:
    manifest = old(make_archive("dash", seconds=8.0))  # 4 segments
    cache = MediaCache(64)
    frames = cache.frames_for(None)
    for index in (10, 60, 110, 160):
        assert grab(manifest, frames, index, tmp_path) == index
        assert len(decoded_gop.PARKED) <= decoded_gop.PARKED_MAX
    segments = sorted(
        (e for e, _ in cache.frames._entries.values() if isinstance(e, decoded_gop.DecodedSegment)),
        key=lambda s: s.packets[0].pts,
    )
    assert [s.parked is not None for s in segments] == [False, False, True, True]
    # The first segment's decoder went: its next picture starts one from the keyframe.
    assert grab(manifest, frames, 20, tmp_path) == 20
    assert segments[0].decodes == 2 and segments[0].continued == 0


def test_threads_stepping_through_one_gop_stay_frame_exact(
    make_archive: MakeArchive, tmp_path: Path
) -> None:
    manifest = old(make_archive("dash", bframes=3))
    cache = MediaCache(64)
    frames = cache.frames_for(None)
    indices = [3, 40, 7, 8, 25, 9, 44, 12, 30, 49, 1, 33] * 2
    outs = [tmp_path / str(n) for n in range(len(indices))]
    for out in outs:
        out.mkdir()
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda i, out: grab(manifest, frames, i, out), indices, outs))
    assert got == indices
    assert_like_a_fresh_decode(only_segment(cache), archive_spec(manifest))
