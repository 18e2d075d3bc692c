"""The output timeline, and hand-built segments for odd inputs."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.errors import MediaError
from pipeline.media import export_clip, grab_thumbnail
from pipeline.media.timeline import Timeline
from pipeline.model import Gap, Resolution, SegmentRef, TrackInfo
from pipeline.storage import Blobs
from pipeline.synthetic import draw_frame, read_frame_index


def test_timeline_closes_holes() -> None:
    tl = Timeline(1.0, 9.0, (Gap(3.0, 5.0, "gap"),))
    tl.add_hole(6.0, 7.0, "corrupt")
    tl.add_hole(0.0, 0.5, "missing")  # outside the range: ignored
    tl.first = 1.04
    assert tl.out_time(2.0) == pytest.approx(0.96)
    assert tl.out_time(5.0) == pytest.approx(1.96)  # continues where 3.0 would have been
    assert tl.out_time(7.5) == pytest.approx(3.46)
    assert tl.in_hole(4.0) and not tl.in_hole(5.0) and not tl.wanted(9.0)
    assert tl.missing_seconds() == pytest.approx(3.0)
    assert [g.reason for g in tl.gaps()] == ["gap", "corrupt"]


def _ts_segment(path: Path, video_codec: str, audio_codec: str | None, frames: int = 50) -> None:
    """One 2 s MPEG-TS segment, 160x90 barcode frames, optional silent s16 audio."""
    with av.open(str(path), "w", format="mpegts") as c:
        vs = c.add_stream(video_codec, rate=25)
        assert isinstance(vs, av.VideoStream)
        vs.width, vs.height, vs.pix_fmt = 160, 90, "yuv420p"
        vs.codec_context.gop_size = 25
        a: av.AudioStream | None = None
        if audio_codec:
            stream = c.add_stream(audio_codec, rate=48000)
            assert isinstance(stream, av.AudioStream)
            stream.layout = "mono"
            a = stream
        for k in range(frames):
            frame = draw_frame(k, 160, 90).reformat(format="yuv420p")
            frame.pts = k
            for p in vs.encode(frame):
                c.mux(p)
        for p in vs.encode(None):
            c.mux(p)
        if a is not None:
            size = a.codec_context.frame_size or 1152
            for i in range(frames * 1920 // size):  # 1920 samples per 25 fps frame
                samples = np.zeros((1, size), dtype=np.int16)
                af = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
                af.sample_rate, af.pts, af.time_base = 48000, i * size, Fraction(1, 48000)
                for p in a.encode(af):
                    c.mux(p)
            for p in a.encode(None):
                c.mux(p)


def _resolution(path: Path, start: float, end: float) -> Resolution:
    ref = SegmentRef(url=str(path), start=0.0, duration=2.0)
    return Resolution(
        manifest=str(path),
        kind="hls",
        clock="relative",
        epoch_ms_at_zero=None,
        start=start,
        end=end,
        video=(ref,),
        audio=(),
        video_track=TrackInfo("video", "avc1"),
        audio_track=None,
        audio_muxed=True,
    )


def test_unsupported_video_codec_is_named(tmp_path: Path) -> None:
    seg = tmp_path / "seg.ts"
    _ts_segment(seg, "mpeg4", None)
    with pytest.raises(MediaError) as err:
        export_clip(Blobs(), _resolution(seg, 0.2, 1.2), tmp_path / "c.mp4", export_type=1)
    assert "mpeg4" in str(err.value) and err.value.obj == str(seg)
    with pytest.raises(MediaError):
        grab_thumbnail(Blobs(), _resolution(seg, 0.2, 1.2), tmp_path / "t.jpg")


@pytest.mark.parametrize("export_type", [0, 1])
def test_non_aac_audio_is_transcoded(tmp_path: Path, export_type: int) -> None:
    seg = tmp_path / "seg.ts"
    _ts_segment(seg, "libx264", "mp2")
    result = export_clip(
        Blobs(), _resolution(seg, 0.2, 1.2), tmp_path / "c.mp4", export_type=export_type
    )
    assert result.audio_codec == "aac"
    with av.open(str(result.path), options={"ignore_editlist": "1"}) as c:
        idx = [read_frame_index(f) for f in c.decode(video=0)]
    assert idx == list(range(5, 30))
    with av.open(str(result.path)) as c:
        samples = sum(f.samples for f in c.decode(audio=0))
    assert abs(samples / 48000 - 1.0) < 0.05
