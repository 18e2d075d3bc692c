from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.synthetic import LAYOUTS, ArchiveSpec, find_beeps, frame_at, read_frame_index
from tests.fixtures.media import MakeArchive, archive_spec
from tests.pipeline.synthetic.mpd_reader import NS, SegmentBytes, segments


def _decode(seg: SegmentBytes) -> list[tuple[float, int | None]]:
    assert seg.data is not None
    with av.open(io.BytesIO(seg.init + seg.data), "r") as container:
        return [(float(f.time), read_frame_index(f)) for f in container.decode(video=0)]


def _check_video(spec: ArchiveSpec, segs: list[SegmentBytes], pto_s: float = 0.0) -> None:
    """Every present segment decodes on its own; its first frame is the one at its MPD time."""
    for seg in segs:
        if seg.data is None:
            continue
        frames = _decode(seg)
        assert frames, seg.start
        assert all(index is not None for _, index in frames)
        expected = frame_at(spec, seg.start - 1e-6)
        assert frames[0][1] == expected
        # Indices ascend by one within a segment (presentation order).
        indices = [index for _, index in frames]
        assert indices == list(range(expected, expected + len(indices)))


def test_default_fixture_is_well_formed(dash_archive: Path) -> None:
    root = ET.parse(dash_archive).getroot()
    assert root.tag == "{urn:mpeg:dash:schema:mpd:2011}MPD"
    assert root.get("type") == "static"
    assert root.get("availabilityStartTime") == "2019-07-04T15:20:00.000Z"
    sets = root.findall("d:Period/d:AdaptationSet", NS)
    assert [a.get("contentType") for a in sets] == ["video", "audio"]
    reps = sets[0].findall("d:Representation", NS)
    assert [(r.get("width"), r.get("height")) for r in reps] == [("160", "90"), ("320", "180")]
    assert reps[1].get("codecs", "").startswith("avc1.")
    spec = archive_spec(dash_archive)
    segs = segments(dash_archive, "vhigh")
    assert [s.start for s in segs] == [0.0, 2.0, 4.0]
    _check_video(spec, segs)


def test_tfdt_agrees_with_timeline(dash_archive: Path) -> None:
    """PyAV's pts of a segment, mapped through PTO, equals the MPD time of its first frame."""
    root = ET.parse(dash_archive).getroot()
    tmpl = root.find("d:Period/d:AdaptationSet/d:SegmentTemplate", NS)
    assert tmpl is not None
    ts, pto = int(tmpl.get("timescale", "")), int(tmpl.get("presentationTimeOffset", ""))
    for seg in segments(dash_archive, "vhigh"):
        assert seg.data is not None
        with av.open(io.BytesIO(seg.init + seg.data), "r") as c:
            first = next(iter(c.decode(video=0)))
            assert first.pts is not None
            assert (first.pts - pto) / ts == pytest.approx(seg.start)
            assert c.streams.video[0].time_base == Fraction(1, ts)


def test_audio_beeps_on_the_archive_timeline(dash_archive: Path) -> None:
    segs = segments(dash_archive, "audio")
    assert len(segs) == 3
    # Audio segments join without holes: each starts where the previous one's samples end.
    data = segs[0].init + b"".join(s.data or b"" for s in segs)
    with av.open(io.BytesIO(data), "r") as c:
        frames = list(c.decode(audio=0))
    assert frames[0].pts == 0
    starts = {round(seg.start * 48_000) for seg in segs}
    first = round(segs[0].start * 48_000)
    assert {first + (f.pts or 0) for f in frames} >= starts
    pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in frames])
    onsets = [segs[0].start + t for t in find_beeps(pcm, 48_000)]
    assert onsets == pytest.approx([0.0, 1.0, 2.0, 3.0, 4.0, 5.0], abs=0.003)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_decodes_with_expected_first_frames(
    make_archive: MakeArchive, layout: str
) -> None:
    mpd = make_archive("dash", layout=layout)
    spec = archive_spec(mpd)
    for rep in ("vhigh", "vlow"):
        segs = segments(mpd, rep)
        assert [s.start for s in segs] == pytest.approx([0.0, 2.0, 4.0])
        _check_video(spec, segs)


def test_two_periods_restart_timestamps(make_archive: MakeArchive) -> None:
    mpd = make_archive("dash", periods=2, seconds=8.0)
    root = ET.parse(mpd).getroot()
    periods = root.findall("d:Period", NS)
    assert [p.get("start") for p in periods] == ["PT0S", "PT4S"]
    segs = segments(mpd, "vhigh")
    assert [s.start for s in segs] == [0.0, 2.0, 4.0, 6.0]
    _check_video(archive_spec(mpd), segs)
    with av.open(io.BytesIO(segs[2].init + (segs[2].data or b"")), "r") as c:
        first = next(iter(c.decode(video=0)))
        assert first.time is not None and first.time < 0.5  # media time restarted


@pytest.mark.parametrize(
    "layout", ["timeline-time", "timeline-number", "template-duration", "segment-list"]
)
def test_gap_leaves_segments_out(make_archive: MakeArchive, layout: str) -> None:
    mpd = make_archive("dash", layout=layout, seconds=8.0, gap=(2.0, 4.0))
    segs = segments(mpd, "vhigh")
    present = [s.start for s in segs if s.data is not None]
    assert present == [0.0, 4.0, 6.0]
    _check_video(archive_spec(mpd), segs)


def test_dynamic_mpd_attributes(make_archive: MakeArchive) -> None:
    mpd = make_archive("dash", dynamic=True)
    root = ET.parse(mpd).getroot()
    assert root.get("type") == "dynamic"
    assert root.get("availabilityStartTime") == "2019-07-04T15:20:00.000Z"
    assert root.get("publishTime") == "2019-07-04T15:20:06.000Z"
    assert root.get("timeShiftBufferDepth") == "PT86400S"
    assert root.get("mediaPresentationDuration") is None


@pytest.mark.parametrize(
    "opts",
    [
        {"codec": "hevc"},
        {"fps": Fraction(30000, 1001), "gop_frames": 60, "beep_every": 30},
        {"open_gop": True},
        {"bframes": 0},
        {"first_frame": 500, "epoch_ms": 1_700_000_000_000},
    ],
    ids=["hevc", "29.97", "open-gop", "no-bframes", "first-frame"],
)
def test_variants_decode(make_archive: MakeArchive, opts: dict[str, object]) -> None:
    mpd = make_archive("dash", **opts)
    spec = archive_spec(mpd)
    segs = segments(mpd, "vhigh")
    assert len(segs) == 3
    assert segs[0].start == pytest.approx(spec.start_time)
    if spec.open_gop:
        # Leading pictures of an open GOP need the previous segment: decode the stream whole.
        data = segs[0].init + b"".join(s.data or b"" for s in segs)
        frames = _decode(SegmentBytes(b"", data, 0.0))
        assert [i for _, i in frames] == list(range(spec.first_frame, spec.end_frame))
        # Frame 49 is a leading picture of the GOP that starts with the I frame 50.
        assert segs[1].start == pytest.approx(49 / 25)
    else:
        _check_video(spec, segs)
    if spec.codec == "hevc":
        root = ET.parse(mpd).getroot()
        codecs = [r.get("codecs") for r in root.iter(f"{{{NS['d']}}}Representation")]
        assert codecs[1] is not None and codecs[1].startswith("hvc1.")
        assert b"hvc1" in segs[0].init


def test_segment_base_has_sidx_and_ranges(make_archive: MakeArchive) -> None:
    mpd = make_archive("dash", layout="segment-base")
    root = ET.parse(mpd).getroot()
    rep = root.find("d:Period/d:AdaptationSet/d:Representation[@id='vhigh']", NS)
    assert rep is not None
    sb, url = rep.find("d:SegmentBase", NS), rep.find("d:BaseURL", NS)
    assert sb is not None and sb.get("indexRange") and url is not None and url.text
    data = (mpd.parent / url.text).read_bytes()
    a, b = (int(x) for x in (sb.get("indexRange") or "").split("-"))
    assert data[a + 4 : a + 8] == b"sidx"
    assert data[b + 5 : b + 9] == b"moof"


def test_bad_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="layout"):
        from pipeline.synthetic import write_dash

        write_dash(tmp_path, ArchiveSpec(seconds=2), layout="nope")
    with pytest.raises(ValueError, match="first_frame"):
        ArchiveSpec(first_frame=7)


def test_dash_without_audio(make_archive: MakeArchive) -> None:
    mpd = make_archive("dash", audio=False, seconds=4.0)
    root = ET.parse(mpd).getroot()
    assert [a.get("contentType") for a in root.findall("d:Period/d:AdaptationSet", NS)] == ["video"]
    _check_video(archive_spec(mpd), segments(mpd, "vhigh"))
