from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np
import pytest

from pipeline.synthetic import ArchiveSpec, beep_times, draw_frame, find_beeps, read_frame_index
from pipeline.synthetic.frames import MAX_INDEX, _cells, audio_samples, draw_luma, read_luma_index
from pipeline.synthetic.spec import AUDIO_RATE, frame_at, frame_time

INDICES = [0, 1, 2, 25, 49, 50, 77, 1023, 4097, 65_536, 777_777, MAX_INDEX]


@pytest.mark.parametrize("index", INDICES)
def test_barcode_reads_back_uncompressed(index: int) -> None:
    assert read_frame_index(draw_frame(index, 320, 180)) == index
    assert read_luma_index(draw_luma(index, 160, 90)) == index


@pytest.mark.parametrize(
    "picture",
    [
        np.full((180, 320), 128, np.uint8),
        np.zeros((180, 320), np.uint8),
        np.full((180, 320), 255, np.uint8),
    ],
)
def test_blank_picture_is_unreadable(picture: np.ndarray) -> None:
    assert read_luma_index(picture) is None


@pytest.mark.parametrize("cell_index", [0, 7, 19, 23])
def test_one_flipped_cell_is_rejected(cell_index: int) -> None:
    luma = draw_luma(1234, 320, 180)
    x0, y0, x1, y1 = _cells(320, 180)[cell_index]
    cell = luma[y0:y1, x0:x1]
    cell[...] = 235 if cell.mean() < 128 else 16
    assert read_luma_index(luma) is None


def _round_trip(codec: str, width: int, height: int, scale: float) -> list[tuple[int, int | None]]:
    """Encode frames 0..N, decode (optionally scaled), return (expected, read)."""
    indices = [*range(40), 4096, 99_999]
    buf = io.BytesIO()
    tb = Fraction(1, 25)
    with av.open(buf, "w", format="mp4") as out:
        options = {"crf": "30", "preset": "ultrafast", "bf": "2"}
        if codec == "libx265":
            options = {
                "crf": "32",
                "preset": "ultrafast",
                "x265-params": "bframes=2:log-level=error",
            }
        stream = out.add_stream(codec, rate=25, options=options)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = tb
        for pts, index in enumerate(indices):
            frame = draw_frame(index, width, height)
            frame.pts, frame.time_base = pts, tb
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    got = []
    with av.open(io.BytesIO(buf.getvalue()), "r") as container:
        for frame in container.decode(video=0):
            if scale != 1:
                frame = frame.reformat(
                    width=int(width * scale) & ~1, height=int(height * scale) & ~1
                )
            got.append(read_frame_index(frame))
    return list(zip(indices, got, strict=True))


@pytest.mark.parametrize(
    ("codec", "size", "scale"),
    [
        ("libx264", (320, 180), 1.0),
        ("libx264", (320, 180), 0.5),
        ("libx264", (160, 90), 1.0),
        ("libx265", (320, 180), 1.0),
        ("libx265", (320, 180), 0.5),
    ],
)
def test_barcode_survives_encode_and_downscale(
    codec: str, size: tuple[int, int], scale: float
) -> None:
    pairs = _round_trip(codec, size[0], size[1], scale)
    assert [got for _, got in pairs] == [want for want, _ in pairs]


def test_beeps_sit_on_the_frame_grid() -> None:
    spec = ArchiveSpec(fps=Fraction(30000, 1001), beep_every=30)
    start = 12_345
    pcm = audio_samples(spec, start, AUDIO_RATE * 4)
    onsets = [start / AUDIO_RATE + t for t in find_beeps(pcm, AUDIO_RATE)]
    expected = beep_times(spec, start / AUDIO_RATE, start / AUDIO_RATE + 4)
    assert len(onsets) == len(expected) == 4
    assert np.allclose(onsets, expected, atol=1.5 / AUDIO_RATE)
    assert expected[0] == pytest.approx(frame_time(spec, 30))


def test_find_beeps_takes_int16_and_channels_first() -> None:
    spec = ArchiveSpec()
    pcm = audio_samples(spec, 0, AUDIO_RATE * 3)
    stereo = (np.stack([pcm, pcm]) * 32767).astype(np.int16)
    assert np.allclose(find_beeps(stereo, AUDIO_RATE), [0.0, 1.0, 2.0], atol=1e-3)
    assert find_beeps(np.zeros(4800, np.float32), AUDIO_RATE) == []


def test_frame_time_and_frame_at() -> None:
    spec = ArchiveSpec(fps=Fraction(30000, 1001))
    assert frame_time(spec, 30) == pytest.approx(1.001)
    assert frame_at(spec, 1.001) == 30
    assert frame_at(spec, 1.0011) == 31
    assert spec.start_pos_ms(30) == 1_562_253_600_000 + 1001


@pytest.mark.parametrize("fps", [Fraction(25), Fraction(30000, 1001)])
def test_start_pos_asks_for_the_frame_itself(fps: Fraction) -> None:
    spec = ArchiveSpec(fps=fps, gop_frames=60 if fps.denominator > 1 else 50)
    assert spec.epoch_ms is not None
    for k in range(0, 400):
        archive_time = (spec.start_pos_ms(k) - spec.epoch_ms) / 1000
        assert frame_at(spec, archive_time) == k
