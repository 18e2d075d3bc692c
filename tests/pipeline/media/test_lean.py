"""What keeps thumbnails and cuts cheap: lazy imports, and no decoding past what is needed."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import av
import pytest

import pipeline.media.edge as edge
import pipeline.media.edgequeue as edgequeue
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
        self.index = len(counts)  # edges decode on worker threads, side by side
        counts.append(0)

    def decode(self, packet: av.Packet | None = None) -> list[av.VideoFrame]:
        if packet is not None:
            self.counts[self.index] += 1
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
    # Frames 10..110: head 10-49 re-encoded, 50-99 copied, tail 100-110 re-encoded (B 110
    # is decoded after P 112, so the tail's wanted pictures are no decode-order prefix).
    res = resolve_frames(manifest, spec, 10, 101)
    result = export_clip(Blobs(), res, tmp_path / "c.mp4", export_type=0)
    assert decode(result.path).indices == list(range(10, 111))
    assert (result.copied_frames, result.reencoded_frames) == (50, 51)
    head, tail = counts
    # The GOP 0-49 from its keyframe, less the non-reference pictures shown before frame 10.
    assert 50 - spec.bframes * 10 // 3 <= head < 50
    assert 11 <= tail <= 11 + spec.bframes  # not the whole GOP 100-149


def test_tail_copied_without_b_frames_decodes_nothing(
    make_archive: MakeArchive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = make_archive("dash", bframes=0)
    counts: list[int] = []
    monkeypatch.setattr(edge, "new_decoder", lambda codec: CountingDecoder(codec, counts))
    res = resolve_frames(manifest, archive_spec(manifest), 10, 100)
    result = export_clip(Blobs(), res, tmp_path / "c.mp4", export_type=0)
    assert decode(result.path).indices == list(range(10, 110))
    assert (result.copied_frames, result.reencoded_frames) == (60, 40)
    assert len(counts) == 1  # the head's decoder only: frames 100-109 are copied


@pytest.mark.parametrize(
    "opts",
    [
        {"bframes": 3},  # B-pyramid: reference Bs with non-reference Bs around them
        {"codec": "hevc", "bframes": 4},
        {"open_gop": True, "bframes": 3},  # the next GOP's leading pictures are in the head
    ],
)
def test_non_reference_pictures_before_the_start_are_not_decoded(
    make_archive: MakeArchive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, opts: dict[str, Any]
) -> None:
    manifest = make_archive("dash", **opts)
    spec = archive_spec(manifest)
    res = resolve_frames(manifest, spec, 40, 70)  # head 40-49, copy 50-99, tail 100-109

    def cut(name: str) -> tuple[list[int], bytes]:
        counts: list[int] = []
        monkeypatch.setattr(edge, "new_decoder", lambda codec: CountingDecoder(codec, counts))
        result = export_clip(Blobs(), res, tmp_path / name, export_type=0)
        assert decode(result.path).indices == list(range(40, 110))
        return counts, result.path.read_bytes()

    skipping, output = cut("skipping.mp4")
    monkeypatch.setattr(edge, "h264_disposable", lambda data: False)
    monkeypatch.setattr(edge, "hevc_disposable", lambda data, max_sub_layer: False)
    decoding_all, reference = cut("all.mp4")
    # Nothing references the pictures left out: the re-encoded frames are the same bits.
    assert output == reference
    assert skipping[0] < decoding_all[0]  # the head
    if spec.open_gop:  # the tail decodes the GOP before it for its leading pictures
        assert skipping[1] < decoding_all[1]
    else:  # the tail starts at its keyframe and shows every picture up to the end
        assert skipping[1] == decoding_all[1]


def test_disposable_pictures_by_their_nal_headers() -> None:
    sc = b"\x00\x00\x01"
    # H.264: nal_ref_idc (bits 5-6) 0 on every slice.
    assert edge.h264_disposable(sc + b"\x01\x88" + sc + b"\x01\x99")
    assert not edge.h264_disposable(sc + b"\x01\x88" + sc + b"\x21\x99")
    assert not edge.h264_disposable(sc + b"\x06\x05")  # no slice at all (an SEI)
    # HEVC: TRAIL_N (0) of TemporalId 0 is disposable only when 0 is the highest sub-layer.
    trail_n, trail_r = sc + b"\x00\x01\xaf", sc + b"\x02\x01\xaf"
    assert edge.hevc_disposable(trail_n, 0)
    assert not edge.hevc_disposable(trail_n, 1)  # a TemporalId 1 picture may reference it
    assert not edge.hevc_disposable(trail_n, None)  # no SPS seen yet
    assert not edge.hevc_disposable(trail_r, 0)
    assert not edge.hevc_disposable(sc + b"\x26\x01\xaf", 0)  # IDR_W_RADL (19)
    # sps_max_sub_layers_minus1: bits 1-3 of the byte after the SPS's NAL header.
    assert edge.sps_max_sub_layer(sc + b"\x42\x01\x05\x01", None) == 2
    assert edge.sps_max_sub_layer(trail_n, 3) == 3


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


def test_video_queued_behind_an_edge_reaches_the_file_interleaved_with_the_audio(
    make_archive: MakeArchive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The worst case, made certain: the head edge finishes only when the cut does, so all
    # the copied video waits behind it and is written in one burst at the end.
    manifest = make_archive("hls", container="ts", seconds=30.0)  # past the muxer's 10 s
    spec = archive_spec(manifest)
    release = threading.Event()
    real_feed = edge.EdgeEncoder.feed

    def slow_feed(self: edge.EdgeEncoder, *args: Any) -> Any:
        release.wait(timeout=60)
        return real_feed(self, *args)

    real_finish = edgequeue.EdgeQueue.finish

    def finish(self: edgequeue.EdgeQueue) -> None:
        release.set()
        real_finish(self)

    monkeypatch.setattr(edge.EdgeEncoder, "feed", slow_feed)
    monkeypatch.setattr(edgequeue.EdgeQueue, "finish", finish)
    res = resolve_frames(manifest, spec, 10, 650)
    result = export_clip(Blobs(), res, tmp_path / "c.ts", export_type=0)
    assert result.copied_frames > 550
    # In file order, no audio packet trails the video written before it by more than a
    # segment: a reader probing the start of the file meets both streams.
    video_end, worst = 0.0, 0.0
    with av.open(str(result.path)) as c:
        assert c.streams.audio[0].sample_rate == 48_000
        for pkt in c.demux():
            if pkt.pts is None or pkt.time_base is None:
                continue
            t = float(pkt.pts * pkt.time_base)
            if pkt.stream.type == "video":
                video_end = max(video_end, t)
            else:
                worst = max(worst, video_end - t)
    assert worst < spec.segment_seconds
    assert decode(result.path).indices == list(range(10, 660))
