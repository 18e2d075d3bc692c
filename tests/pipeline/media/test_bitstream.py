"""Demuxed video is Annex B with its parameter sets on every keyframe; TS AAC is raw.

MP4 samples go through FFmpeg's bitstream filters (``nal.MP4_TO_ANNEXB``), MPEG-TS AAC
through aac_adtstoasc, and ``AnnexBNormalizer`` carries sets a TS segment lacks over from
the segments before.
"""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from pipeline.manifest import RangeRequest, resolve
from pipeline.media.nal import AnnexBNormalizer, join_annexb, nal_type, split_annexb
from pipeline.media.source import SegmentFetcher, SegmentMedia, TrackDemuxer
from pipeline.storage import Blobs
from pipeline.synthetic import read_frame_index
from tests.fixtures.media import MakeArchive

SPS, PPS, IDR, SLICE = b"\x67\x64\x00\x1f\xac", b"\x68\xee\x3c\x80", b"\x65\x88\x84", b"\x41\x9a"
AUD = b"\x09\xf0"
SETS = {"h264": {7, 8}, "hevc": {32, 33, 34}}


def _segments(manifest: Path) -> list[SegmentMedia]:
    """Each segment loaded by a demuxer of its own: nothing learnt from the one before."""
    res = resolve(Blobs(), str(manifest), RangeRequest(None, 0.0, 3_600_000))
    fetcher = SegmentFetcher(Blobs())
    return [
        TrackDemuxer(fetcher, want_video=True, want_audio=res.audio_muxed).load(ref)
        for ref in res.video
    ]


def test_annexb_splits_on_three_and_four_byte_start_codes() -> None:
    data = b"\x00\x00\x00\x01" + SPS + b"\x00\x00\x01" + PPS + b"\x00\x00\x00\x01" + IDR
    assert split_annexb(data) == [SPS, PPS, IDR]
    assert [nal_type("h264", n) for n in split_annexb(data)] == [7, 8, 5]
    assert split_annexb(data, "h264") == [SPS, PPS]  # only the parameter sets


def test_normalizer_gives_remembered_sets_to_a_keyframe_without_them() -> None:
    norm = AnnexBNormalizer("h264", join_annexb([SPS, PPS]))
    key = norm.convert(join_annexb([AUD, IDR]), keyframe=True)
    other = join_annexb([AUD, SLICE])
    assert split_annexb(key) == [AUD, SPS, PPS, IDR]  # after the delimiter
    assert norm.convert(other, keyframe=False) is other  # nothing to do: as it came
    assert norm.extradata() == join_annexb([SPS, PPS])


def test_normalizer_follows_inband_changes() -> None:
    norm = AnnexBNormalizer("h264")
    sps2 = SPS + b"\x01"
    norm.convert(join_annexb([sps2, PPS, IDR]), keyframe=True)
    assert split_annexb(norm.convert(join_annexb([IDR]), keyframe=True)) == [sps2, PPS, IDR]


@pytest.mark.parametrize(
    ("kind", "opts"),
    [
        ("dash", {"open_gop": True, "gop_frames": 25}),  # non-IDR I keyframes, two a segment
        ("dash", {"codec": "hevc", "open_gop": True}),  # fMP4, CRA keyframes
        ("dash", {"periods": 3}),  # a new init segment (avcC) per period
        ("hls", {"container": "ts", "open_gop": True}),
        ("hls", {"container": "fmp4", "codec": "hevc"}),
    ],
)
def test_every_segment_decodes_alone_from_its_first_keyframe(
    make_archive: MakeArchive, kind: str, opts: dict[str, object]
) -> None:
    for seg in _segments(make_archive(kind, **opts)):
        info = seg.video_info
        assert info is not None
        assert {nal_type(info.codec, n) for n in split_annexb(info.extradata)} == SETS[info.codec]
        for p in seg.video:
            if p.key:
                kinds = {nal_type(info.codec, n) for n in split_annexb(p.data)}
                assert SETS[info.codec] <= kinds
        decoder = av.CodecContext.create(info.codec, "r")
        frames = [f for p in seg.video for f in decoder.decode(av.Packet(p.data))]
        frames += decoder.decode(None)
        # Open-GOP leading pictures reference the segment before and cannot decode alone.
        assert len(frames) >= len(seg.video) - 3
        assert all(read_frame_index(f) is not None for f in frames)


def test_ts_aac_comes_out_raw_with_its_audio_specific_config(make_archive: MakeArchive) -> None:
    for seg in _segments(make_archive("hls", container="ts")):
        assert seg.audio_info is not None and seg.audio_info.extradata == b"\x11\x88"  # LC 48k 1ch
        assert seg.audio and not any(p.data[:2] in (b"\xff\xf1", b"\xff\xf9") for p in seg.audio)
        decoder = av.CodecContext.create("aac", "r")
        decoder.extradata = seg.audio_info.extradata
        samples = sum(f.samples for p in seg.audio for f in decoder.decode(av.Packet(p.data)))
        assert samples >= 1024 * (len(seg.audio) - 1)
