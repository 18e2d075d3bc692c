from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.synthetic import find_beeps, frame_at, read_frame_index
from tests.fixtures.media import MakeArchive, archive_spec


@dataclass
class Entry:
    uri: str
    duration: float
    tags: list[str]


def parse_media(path: Path) -> tuple[list[str], list[Entry]]:
    """(playlist-level tags, entries with the tags that precede each URI)."""
    lines = path.read_text().splitlines()
    assert lines[0] == "#EXTM3U"
    head: list[str] = []
    entries: list[Entry] = []
    pending: list[str] = []
    for line in lines[1:]:
        if not line:
            continue
        if line.startswith("#EXTINF:"):
            pending.append(line)
        elif line.startswith("#"):
            (pending if entries or pending or _segment_tag(line) else head).append(line)
        else:
            duration = float(next(t for t in pending if t.startswith("#EXTINF:"))[8:].split(",")[0])
            entries.append(Entry(line, duration, pending))
            pending = []
    return head + pending, entries


def _segment_tag(line: str) -> bool:
    return line.startswith(
        ("#EXT-X-PROGRAM-DATE-TIME", "#EXT-X-MAP", "#EXT-X-GAP", "#EXT-X-DISCONTINUITY")
    )


def variants(master: Path) -> list[tuple[str, str]]:
    lines = master.read_text().splitlines()
    return [
        (lines[i], lines[i + 1])
        for i, line in enumerate(lines)
        if line.startswith("#EXT-X-STREAM-INF")
    ]


def test_ts_master_lists_both_variants(hls_ts_archive: Path) -> None:
    found = variants(hls_ts_archive)
    assert [v[1] for v in found] == ["vlow/index.m3u8", "vhigh/index.m3u8"]
    assert "RESOLUTION=320x180" in found[1][0] and 'CODECS="avc1.' in found[1][0]
    head, entries = parse_media(hls_ts_archive.parent / "vhigh/index.m3u8")
    assert "#EXT-X-ENDLIST" in head and "#EXT-X-PLAYLIST-TYPE:VOD" in head
    assert "#EXT-X-TARGETDURATION:2" in head
    assert [e.uri for e in entries] == ["seg0.ts", "seg1.ts", "seg2.ts"]
    assert entries[0].tags[0] == "#EXT-X-PROGRAM-DATE-TIME:2019-07-04T15:20:00.000Z"


def test_ts_segments_carry_video_and_audio_continuously(hls_ts_archive: Path) -> None:
    spec = archive_spec(hls_ts_archive)
    _, entries = parse_media(hls_ts_archive.parent / "vhigh/index.m3u8")
    last_pts = None
    start = 0.0
    for e in entries:
        with av.open(str(hls_ts_archive.parent / "vhigh" / e.uri), "r") as c:
            assert c.format.name == "mpegts"
            assert {s.type for s in c.streams} == {"video", "audio"}
            frames = [(f.time, read_frame_index(f)) for f in c.decode(video=0)]
        assert frames[0][1] == frame_at(spec, start)
        assert [i for _, i in frames] == list(
            range(frames[0][1] or 0, (frames[0][1] or 0) + len(frames))
        )
        if last_pts is not None:
            assert frames[0][0] == pytest.approx(last_pts + 0.04)  # timestamps run on
        last_pts = frames[-1][0]
        start += e.duration


def test_ts_audio_beeps_line_up_with_video(hls_ts_archive: Path) -> None:
    seg = hls_ts_archive.parent / "vhigh/seg1.ts"
    with av.open(str(seg), "r") as c:
        first_video = next(iter(c.decode(video=0)))
    with av.open(str(seg), "r") as c:
        frames = list(c.decode(audio=0))
    pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in frames])
    assert first_video.time is not None and frames[0].time is not None
    onsets = [frames[0].time + t - first_video.time for t in find_beeps(pcm, 48_000)]
    # Frame 50 (2.0 s) is first in this segment; beeps at 3.0 s (and the cut one at 2.0 s).
    assert 1.0 in [round(x, 2) for x in onsets]


def test_fmp4_uses_map_and_separate_audio(hls_fmp4_archive: Path) -> None:
    master = hls_fmp4_archive.read_text()
    assert '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud"' in master and 'AUDIO="aud"' in master
    root = hls_fmp4_archive.parent
    head, entries = parse_media(root / "vhigh/index.m3u8")
    assert "#EXT-X-VERSION:7" in head
    assert entries[0].tags[0] == '#EXT-X-MAP:URI="init.mp4"'
    init = (root / "vhigh/init.mp4").read_bytes()
    spec = archive_spec(hls_fmp4_archive)
    start = 0.0
    for e in entries:
        with av.open(io.BytesIO(init + (root / "vhigh" / e.uri).read_bytes()), "r") as c:
            first = read_frame_index(next(iter(c.decode(video=0))))
        assert first == frame_at(spec, start)
        start += e.duration
    _, audio = parse_media(root / "audio/index.m3u8")
    assert len(audio) == len(entries)


def test_discontinuity_restarts_timestamps(make_archive: MakeArchive) -> None:
    path = make_archive("hls", seconds=8.0, discontinuity_at=4.0)
    _, entries = parse_media(path.parent / "vhigh/index.m3u8")
    assert "#EXT-X-DISCONTINUITY" in entries[2].tags
    assert "#EXT-X-PROGRAM-DATE-TIME:2019-07-04T15:20:04.000Z" in entries[2].tags
    times = []
    for e in entries:
        with av.open(str(path.parent / "vhigh" / e.uri), "r") as c:
            f = next(iter(c.decode(video=0)))
            times.append((f.time, read_frame_index(f)))
    assert [i for _, i in times] == [0, 50, 100, 150]
    assert times[2][0] is not None and times[1][0] is not None and times[2][0] < times[1][0]


def test_fmp4_discontinuity_gets_a_new_map(make_archive: MakeArchive) -> None:
    path = make_archive("hls", container="fmp4", seconds=8.0, discontinuity_at=4.0)
    _, entries = parse_media(path.parent / "vhigh/index.m3u8")
    assert '#EXT-X-MAP:URI="init1.mp4"' in entries[2].tags
    init = (path.parent / "vhigh/init1.mp4").read_bytes()
    with av.open(
        io.BytesIO(init + (path.parent / "vhigh" / entries[2].uri).read_bytes()), "r"
    ) as c:
        assert read_frame_index(next(iter(c.decode(video=0)))) == 100


def test_gap_and_live(make_archive: MakeArchive) -> None:
    path = make_archive("hls", seconds=8.0, gap=(2.0, 4.0), live=True)
    head, entries = parse_media(path.parent / "vhigh/index.m3u8")
    assert "#EXT-X-ENDLIST" not in head and "#EXT-X-PLAYLIST-TYPE:VOD" not in head
    assert ["#EXT-X-GAP" in e.tags for e in entries] == [False, True, False, False]
    assert not (path.parent / "vhigh/seg1.ts").exists()
    assert (path.parent / "vhigh/seg2.ts").exists()


def test_media_playlist_without_master(make_archive: MakeArchive) -> None:
    path = make_archive("hls", master=False, pdt=False, fps=Fraction(30000, 1001), gop_frames=60)
    _, entries = parse_media(path)
    assert not any(t.startswith("#EXT-X-PROGRAM-DATE-TIME") for e in entries for t in e.tags)
    assert [e.duration for e in entries] == pytest.approx([2.002] * 3)  # 180 frames
    assert entries[0].uri == "vhigh/seg0.ts"
    with av.open(str(path.parent / entries[1].uri), "r") as c:
        assert read_frame_index(next(iter(c.decode(video=0)))) == 60


def test_hevc_in_ts(make_archive: MakeArchive) -> None:
    path = make_archive("hls", codec="hevc", seconds=4.0)
    with av.open(str(path.parent / "vhigh/seg1.ts"), "r") as c:
        assert c.streams.video[0].codec_context.name == "hevc"
        assert read_frame_index(next(iter(c.decode(video=0)))) == 50


@pytest.mark.parametrize("container", ["ts", "fmp4"])
def test_without_audio(make_archive: MakeArchive, container: str) -> None:
    path = make_archive("hls", container=container, audio=False, seconds=4.0)
    master = path.read_text()
    assert "mp4a" not in master and "EXT-X-MEDIA" not in master
    assert not (path.parent / "audio").exists()
    seg = path.parent / "vhigh" / ("seg1.ts" if container == "ts" else "seg1.m4s")
    data = seg.read_bytes()
    if container == "fmp4":
        data = (path.parent / "vhigh/init.mp4").read_bytes() + data
    with av.open(io.BytesIO(data), "r") as c:
        assert [s.type for s in c.streams] == ["video"]
        assert read_frame_index(next(iter(c.decode(video=0)))) == 50
