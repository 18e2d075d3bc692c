"""What keeps thumbnails and cuts cheap: lazy imports, and no decoding past what is needed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import av
import pytest

import pipeline.media.edge as edge
import pipeline.media.source as source
import pipeline.media.thumbnail as thumbnail
from pipeline.media import export_clip, grab_thumbnail
from pipeline.media.source import SegmentFetcher, TrackDemuxer
from pipeline.storage import Blobs
from pipeline.synthetic import read_frame_index
from tests.fixtures.media import MakeArchive, archive_spec
from tests.pipeline.media.helpers import decode, resolve_frames


def test_importing_for_a_thumbnail_loads_neither_numpy_nor_the_clip_code() -> None:
    code = (
        "import sys\n"
        "import pipeline.settings\n"
        "from pipeline.media import grab_thumbnail, EncodeOptions\n"
        "print(sorted(m for m in ('numpy', 'pipeline.media.clip', 'pipeline.media.audio')"
        " if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_package_still_exports_everything() -> None:
    import pipeline.media as media

    assert media.export_clip is export_clip
    assert {"ClipResult", "EncodeOptions", "ThumbnailResult"} <= set(dir(media))
    with pytest.raises(AttributeError):
        _ = media.no_such_name


class CountingDecoder:
    """Wraps a decoder and counts the packets it is given."""

    def __init__(self, codec: str, counts: list[int]) -> None:
        inner = av.CodecContext.create(codec, "r")
        assert isinstance(inner, av.VideoCodecContext)
        self.inner = inner
        self.counts = counts
        counts.append(0)

    def decode(self, packet: av.Packet | None = None) -> list[av.VideoFrame]:
        if packet is not None:
            self.counts[-1] += 1
        return self.inner.decode(packet)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize("index", [3, 37])
def test_thumbnail_decodes_only_up_to_the_wanted_frame(
    make_archive: MakeArchive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, index: int
) -> None:
    manifest = make_archive("dash")  # B-frames, 50-frame GOPs and segments
    spec = archive_spec(manifest)
    counts: list[int] = []
    monkeypatch.setattr(thumbnail, "new_decoder", lambda codec: CountingDecoder(codec, counts))
    result = grab_thumbnail(Blobs(), resolve_frames(manifest, spec, index, 1), tmp_path / "t.jpg")
    with av.open(str(result.path)) as c:
        assert read_frame_index(next(c.decode(video=0))) == index
    # From the keyframe to the wanted picture in decode order (a B-frame comes after the
    # picture it precedes, so at most ``bframes`` more), never the rest of the 50 frames.
    assert len(counts) == 1
    assert counts[0] <= index + 1 + spec.bframes


def test_tail_reencode_decodes_only_up_to_the_end(
    make_archive: MakeArchive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = make_archive("dash")
    spec = archive_spec(manifest)
    counts: list[int] = []
    monkeypatch.setattr(edge, "new_decoder", lambda codec: CountingDecoder(codec, counts))
    # Frames 10..109: head 10-49 re-encoded, 50-99 copied, tail 100-109 re-encoded.
    res = resolve_frames(manifest, spec, 10, 100)
    result = export_clip(Blobs(), res, tmp_path / "c.mp4", export_type=0)
    assert decode(result.path).indices == list(range(10, 110))
    assert (result.copied_frames, result.reencoded_frames) == (50, 50)
    head, tail = counts
    assert head == 50  # the GOP 0-49, from its keyframe
    assert 10 <= tail <= 10 + spec.bframes  # not the whole GOP 100-149


def test_segments_sharing_an_init_skip_the_probe_decode_and_demux_the_same(
    make_archive: MakeArchive, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = make_archive("dash")
    res = resolve_frames(manifest, archive_spec(manifest), 0, 150)
    first, second = res.video[0], res.video[1]
    assert first.init_url == second.init_url

    probes: list[object] = []
    real_open = av.open

    def spy(*args: Any, **kwargs: Any) -> Any:
        probes.append(kwargs.get("stream_options"))
        return real_open(*args, **kwargs)

    warm = TrackDemuxer(SegmentFetcher(Blobs()), want_video=True, want_audio=False)
    warm.load(first)
    monkeypatch.setattr(source.av, "open", spy)
    light = warm.load(second)
    monkeypatch.undo()
    assert probes == [[{"skip_frame": "all"}]]

    full = TrackDemuxer(SegmentFetcher(Blobs()), want_video=True, want_audio=False).load(second)
    assert light.video_info == full.video_info
    assert [(p.data, p.pts, p.dts, p.duration, p.key) for p in light.video] == [
        (p.data, p.pts, p.dts, p.duration, p.key) for p in full.video
    ]
