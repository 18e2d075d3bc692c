"""JPEGs on kept MJPEG encoders: the same bytes as a fresh encoder's, one encoder per
picture size, never more kept than the limit, and none shared between threads."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import pytest

import pipeline.media.jpeg as jpeg
from pipeline.media.jpeg import JpegEncoders, write_jpeg


def picture(seed: int, width: int = 320, height: int = 180) -> av.VideoFrame:
    """A limited-range yuv420p picture whose content depends on ``seed``."""
    frame = av.VideoFrame(width, height, "yuv420p")
    for i, plane in enumerate(frame.planes):
        plane.update(
            bytes((seed * 37 + i * 11 + j * 7) % 200 + 16 for j in range(plane.buffer_size))
        )
    frame.pts = seed * 3600
    return frame


@pytest.fixture
def encoders(monkeypatch: pytest.MonkeyPatch) -> Iterator[JpegEncoders]:
    pool = JpegEncoders(jpeg.KEPT_MAX)
    monkeypatch.setattr(jpeg, "ENCODERS", pool)
    yield pool


def fresh_bytes(frame: av.VideoFrame, tmp_path: Path, max_width: int | None = None) -> bytes:
    """What a newly opened encoder writes for ``frame``."""
    jpeg.ENCODERS.clear()
    out = tmp_path / "fresh.jpg"
    write_jpeg(frame, out, max_width)
    jpeg.ENCODERS.clear()
    return out.read_bytes()


def test_kept_encoder_writes_the_bytes_a_fresh_one_writes(
    encoders: JpegEncoders, tmp_path: Path
) -> None:
    frames = [picture(seed) for seed in range(4)]
    expected = [fresh_bytes(f, tmp_path) for f in frames]
    for i, frame in enumerate(frames * 2):
        result = write_jpeg(frame, tmp_path / f"{i}.jpg", None)
        assert (tmp_path / f"{i}.jpg").read_bytes() == expected[i % 4]
        assert len(encoders) == 1  # the one encoder, given back after each picture
        assert result.size == len(expected[i % 4])


def test_result_names_the_file_written(encoders: JpegEncoders, tmp_path: Path) -> None:
    result = write_jpeg(picture(5), tmp_path / "a.jpg", 160)
    data = (tmp_path / "a.jpg").read_bytes()
    assert (result.width, result.height) == (160, 90)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.time == pytest.approx(5 * 3600 / 90000)
    assert not (tmp_path / "a.jpg.part").exists()
    with av.open(str(tmp_path / "a.jpg")) as c:
        decoded = next(c.decode(video=0))
    assert (decoded.width, decoded.height) == (160, 90)


def test_an_encoder_serves_only_its_own_picture_size(
    encoders: JpegEncoders, tmp_path: Path
) -> None:
    small, large = picture(1, 160, 90), picture(2)
    expected = fresh_bytes(large, tmp_path)
    write_jpeg(small, tmp_path / "s.jpg", None)
    write_jpeg(large, tmp_path / "l.jpg", None)
    assert (tmp_path / "l.jpg").read_bytes() == expected
    assert sorted(e.size for e in encoders._free) == [(160, 90), (320, 180)]


def test_no_more_than_the_limit_are_kept() -> None:
    pool = JpegEncoders(2)
    taken = [pool.take(64, 64) for _ in range(3)]
    assert len({id(e) for e in taken}) == 3  # none free: each take opens one
    for encoder in taken:
        pool.give(encoder)
    assert len(pool) == 2
    assert pool.take(64, 64) is taken[2]  # the most recently given back is kept


def test_threads_at_once_each_get_their_own_encoder(encoders: JpegEncoders, tmp_path: Path) -> None:
    frames = [picture(seed) for seed in range(8)]
    expected = [fresh_bytes(f, tmp_path) for f in frames]

    def one(i: int) -> bytes:
        out = tmp_path / f"t{i}.jpg"
        write_jpeg(frames[i % 8], out, None)
        return out.read_bytes()

    with ThreadPoolExecutor(4) as pool:
        written = list(pool.map(one, range(32)))
    assert written == [expected[i % 8] for i in range(32)]
    assert len(encoders) <= jpeg.KEPT_MAX
