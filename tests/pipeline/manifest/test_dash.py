"""DASH MPD resolution on hand-written manifests, one flavour at a time."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from pipeline.errors import InvalidRequest, MediaError, RangeNotInArchive, SourceNotFound
from pipeline.manifest import range_request, resolve
from pipeline.manifest.dash import resolve_dash
from pipeline.model import ByteRange, Resolution
from tests.pipeline.manifest.test_dash_parts import build_sidx

EPOCH = 1_562_253_600_000  # 2019-07-04T15:20:00Z
AST = "2019-07-04T15:20:00Z"
NS = 'xmlns="urn:mpeg:dash:schema:mpd:2011"'
MPD_PATH = "/arch/cam1/stream.mpd"


class DictReader:
    """In-memory BlobReader: location → bytes."""

    def __init__(self, blobs: dict[str, bytes] | None = None) -> None:
        self.blobs = dict(blobs or {})
        self.reads: list[tuple[str, ByteRange | None]] = []

    def read(self, location: str, byte_range: ByteRange | None = None) -> bytes:
        self.reads.append((location, byte_range))
        try:
            data = self.blobs[location]
        except KeyError:
            raise SourceNotFound(f"no such file: {location}", obj=location) from None
        if byte_range is None:
            return data
        return data[byte_range.offset : byte_range.offset + byte_range.length]


def mpd(body: str, *, attrs: str = "") -> str:
    head = attrs or f'type="static" availabilityStartTime="{AST}"'
    return f'<?xml version="1.0" encoding="utf-8"?>\n<MPD {NS} {head}>\n{body}\n</MPD>\n'


def video_set(template: str, extra_reps: str = "") -> str:
    return f"""
  <AdaptationSet contentType="video" mimeType="video/mp4">
    {template}
    <Representation id="lo" bandwidth="900000" width="160" height="90" codecs="avc1.64000b"
      frameRate="25"/>
    <Representation id="hi" bandwidth="500000" width="320" height="180" codecs="avc1.64000d"
      frameRate="25"/>
    {extra_reps}
  </AdaptationSet>"""


def audio_set(template: str, attrs: str = 'contentType="audio"', rep_id: str = "aac") -> str:
    return f"""
  <AdaptationSet {attrs} lang="en">
    {template}
    <Representation id="{rep_id}" bandwidth="128000" codecs="mp4a.40.2"
      audioSamplingRate="48000">
      <AudioChannelConfiguration
        schemeIdUri="urn:mpeg:dash:23003:3:audio_channel_configuration:2011" value="1"/>
    </Representation>
  </AdaptationSet>"""


TIME_TEMPLATE = """<SegmentTemplate timescale="90000" initialization="init-$RepresentationID$.mp4"
      media="chunk-$RepresentationID$-$Time$.m4s">
      <SegmentTimeline><S t="0" d="180000" r="4"/></SegmentTimeline>
    </SegmentTemplate>"""
AUDIO_TIME_TEMPLATE = """<SegmentTemplate timescale="48000"
      initialization="init-$RepresentationID$.mp4" media="chunk-$RepresentationID$-$Time$.m4s">
      <SegmentTimeline><S t="0" d="96000" r="4"/></SegmentTimeline>
    </SegmentTemplate>"""


def run(
    text: str,
    *,
    start_pos: int | None = None,
    start_time: str | None = None,
    duration: int = 3000,
    blobs: dict[str, bytes] | None = None,
    now_ms: int | None = None,
    location: str = MPD_PATH,
    reader: DictReader | None = None,
) -> Resolution:
    reader = reader or DictReader(blobs)
    data = text.encode()
    reader.blobs[location] = data
    return resolve(reader, location, range_request(start_pos, start_time, duration), now_ms=now_ms)


def starts(refs: tuple[object, ...]) -> list[float]:
    return [round(r.start, 6) for r in refs]  # type: ignore[attr-defined]


def names(refs: tuple[object, ...]) -> list[str]:
    return [r.url.rsplit("/", 1)[-1] for r in refs]  # type: ignore[attr-defined]


STATIC_TIME = mpd(
    '<Period id="p0" start="PT0S" duration="PT10S">'
    + video_set(TIME_TEMPLATE)
    + audio_set(AUDIO_TIME_TEMPLATE)
    + "</Period>"
)


def test_timeline_time_picks_segments_holding_start_through_end() -> None:
    res = run(STATIC_TIME, start_pos=EPOCH + 3500, duration=3000)
    assert res.kind == "dash" and res.clock == "wall" and res.epoch_ms_at_zero == EPOCH
    assert (res.start, res.end) == (3.5, 6.5)
    assert starts(res.video) == [2.0, 4.0, 6.0]
    assert names(res.video) == [
        "chunk-hi-180000.m4s",
        "chunk-hi-360000.m4s",
        "chunk-hi-540000.m4s",
    ]
    assert res.video[0].url == "/arch/cam1/chunk-hi-180000.m4s"
    assert res.video[0].init_url == "/arch/cam1/init-hi.mp4"
    assert all(r.duration == 2.0 and r.media_offset == 0.0 for r in res.video)
    assert not any(r.discontinuity for r in res.video)
    assert names(res.audio) == [
        "chunk-aac-96000.m4s",
        "chunk-aac-192000.m4s",
        "chunk-aac-288000.m4s",
    ]
    assert res.video_track.width == 320 and res.video_track.codec == "avc1.64000d"
    assert res.video_track.frame_rate == 25.0
    assert res.audio_track is not None
    assert (res.audio_track.sample_rate, res.audio_track.channels) == (48000, 1)
    assert res.gaps == () and not res.is_live and res.missing == 0.0
    assert (res.archive_start, res.live_edge) == (0.0, 10.0)


def test_start_on_a_segment_boundary_does_not_take_the_previous_segment() -> None:
    res = run(STATIC_TIME, start_pos=EPOCH + 4000, duration=2000)
    assert starts(res.video) == [4.0]
    res = run(STATIC_TIME, start_pos=EPOCH + 3999, duration=2)
    assert starts(res.video) == [2.0, 4.0]


def test_timeline_number_with_padding_and_start_number() -> None:
    template = """<SegmentTemplate timescale="1000" startNumber="7"
        initialization="$RepresentationID$/init.mp4"
        media="$RepresentationID$/seg-$Number%05d$.m4s">
        <SegmentTimeline><S d="2000" r="2"/><S d="1000"/><S d="2000" r="1"/></SegmentTimeline>
      </SegmentTemplate>"""
    text = mpd('<Period id="p0">' + video_set(template) + "</Period>")
    by_offset = run(text, start_time="00:00:04.5", duration=3000)  # 4.5 .. 7.5
    assert by_offset.clock == "relative"  # the archive has an anchor, but no StartPos came
    res = run(text, start_pos=EPOCH + 4500, duration=3000)
    assert res.clock == "wall" and res.video == by_offset.video
    # segments: 0-2 #7, 2-4 #8, 4-6 #9, 6-7 #10, 7-9 #11, 9-11 #12
    assert names(res.video) == ["seg-00009.m4s", "seg-00010.m4s", "seg-00011.m4s"]
    assert res.video[0].url == "/arch/cam1/hi/seg-00009.m4s"
    assert starts(res.video) == [4.0, 6.0, 7.0]
    assert [r.duration for r in res.video] == [2.0, 1.0, 2.0]
    assert res.audio == () and res.audio_track is None


def test_repeat_minus_one_runs_to_the_next_t_and_to_the_period_end() -> None:
    template = """<SegmentTemplate timescale="10" media="s-$Time$.m4s">
        <SegmentTimeline><S t="0" d="20" r="-1"/><S t="60" d="20" r="-1"/></SegmentTimeline>
      </SegmentTemplate>"""
    text = mpd('<Period id="p0" duration="PT10S">' + video_set(template) + "</Period>")
    res = run(text, start_pos=EPOCH, duration=10_000)
    assert names(res.video) == ["s-0.m4s", "s-20.m4s", "s-40.m4s", "s-60.m4s", "s-80.m4s"]
    assert res.live_edge == 10.0 and res.gaps == ()


def test_duration_template_numbering_and_identifiers() -> None:
    template = """<SegmentTemplate timescale="1000" duration="2000" startNumber="5"
        initialization="init-$Bandwidth$.mp4"
        media="v-$RepresentationID$-$Bandwidth$-$Number$.m4s"/>"""
    text = mpd(
        '<Period id="p0">' + video_set(template) + "</Period>",
        attrs=f'type="static" availabilityStartTime="{AST}" mediaPresentationDuration="PT9S"',
    )
    res = run(text, start_pos=EPOCH + 5000, duration=10_000)
    assert names(res.video) == ["v-hi-500000-7.m4s", "v-hi-500000-8.m4s", "v-hi-500000-9.m4s"]
    assert starts(res.video) == [4.0, 6.0, 8.0]
    assert res.video[0].init_url == "/arch/cam1/init-500000.mp4"
    assert res.video[-1].duration == 2.0  # the last slot is nominal ...
    assert res.live_edge == 9.0  # ... but the presentation ends at 9 s
    assert res.missing_after_edge == pytest.approx(6.0)


def test_duration_template_without_any_end_is_an_error() -> None:
    template = '<SegmentTemplate timescale="1000" duration="2000" media="$Number$.m4s"/>'
    text = mpd('<Period id="p0">' + video_set(template) + "</Period>")
    with pytest.raises(MediaError, match="duration") as e:
        run(text, start_pos=EPOCH, duration=1000)
    assert e.value.obj == MPD_PATH


def test_segment_list_with_media_ranges_and_initialization() -> None:
    template = """<SegmentList timescale="1000" duration="2000">
        <Initialization sourceURL="all.mp4" range="0-99"/>
        <SegmentURL media="all.mp4" mediaRange="100-1099"/>
        <SegmentURL media="all.mp4" mediaRange="1100-1999"/>
        <SegmentURL media="all.mp4" mediaRange="2000-3499"/>
      </SegmentList>"""
    text = mpd('<Period id="p0">' + video_set(template) + "</Period>")
    res = run(text, start_pos=EPOCH + 2500, duration=5000)
    assert [r.byte_range for r in res.video] == [ByteRange(1100, 900), ByteRange(2000, 1500)]
    assert res.video[0].url == "/arch/cam1/all.mp4"
    assert res.video[0].init_range == ByteRange(0, 100)
    assert res.live_edge == 6.0 and res.missing_after_edge == pytest.approx(1.5)


def test_segment_list_with_timeline_and_plain_urls() -> None:
    template = """<SegmentList timescale="1000">
        <Initialization sourceURL="init.mp4"/>
        <SegmentTimeline><S t="1000" d="2000" r="2"/></SegmentTimeline>
        <SegmentURL media="a.m4s"/><SegmentURL media="b.m4s"/><SegmentURL media="c.m4s"/>
      </SegmentList>"""
    text = mpd('<Period id="p0">' + video_set(template) + "</Period>")
    res = run(text, start_pos=EPOCH + 3000, duration=1000)
    assert names(res.video) == ["b.m4s"] and res.video[0].byte_range is None
    assert res.video[0].init_url == "/arch/cam1/init.mp4" and res.archive_start == 1.0


@pytest.mark.parametrize("version", [0, 1])
def test_segment_base_reads_the_sidx_through_the_reader(version: int) -> None:
    moov = b"\0\0\0\x10ftypiso6\0\0\0\0" + b"\0\0\0\x20moov" + b"\0" * 24  # 48 bytes
    sizes = [1000, 1200, 800]
    sidx = build_sidx(
        version, timescale=90000, ept=0, first_offset=0, refs=[(s, 180000) for s in sizes]
    )
    media = b"x" * sum(sizes)
    blob = moov + sidx + media
    template = (
        f'<SegmentBase timescale="90000" indexRange="{len(moov)}-{len(moov) + len(sidx) - 1}"/>'
    )
    rep = """<Representation id="hi" bandwidth="500000" width="320" height="180"
        codecs="avc1.64000d"><BaseURL>video.mp4</BaseURL></Representation>"""
    text = mpd(
        f"""<Period id="p0"><AdaptationSet mimeType="video/mp4">{template}{rep}
        </AdaptationSet></Period>"""
    )
    reader = DictReader({"/arch/cam1/video.mp4": blob})
    res = run(text, start_pos=EPOCH + 2500, duration=3000, reader=reader)
    first_media = len(moov) + len(sidx)
    # Only the index range was fetched, not the media.
    assert reader.reads[1:] == [("/arch/cam1/video.mp4", ByteRange(len(moov), len(sidx)))]
    assert [r.byte_range for r in res.video] == [
        ByteRange(first_media + 1000, 1200),
        ByteRange(first_media + 2200, 800),
    ]
    assert starts(res.video) == [2.0, 4.0]
    assert res.video[0].url == "/arch/cam1/video.mp4"
    # No Initialization element: everything before the index is the init segment.
    assert res.video[0].init_range == ByteRange(0, len(moov))
    assert res.live_edge == 6.0


def test_segment_base_initialization_range_and_pto() -> None:
    sidx = build_sidx(1, timescale=1000, ept=50_000, first_offset=16, refs=[(500, 2000)] * 4)
    blob = b"\0" * 200 + sidx + b"\0" * 16 + b"m" * 2000
    index_range = f"200-{200 + len(sidx) - 1}"
    template = f"""<SegmentBase timescale="90000" presentationTimeOffset="4500000"
        indexRange="{index_range}"><Initialization range="0-149"/></SegmentBase>"""
    rep = (
        '<Representation id="hi" bandwidth="1" width="2" height="2">'
        "<BaseURL>v.mp4</BaseURL></Representation>"
    )
    text = mpd(
        f'<Period start="PT100S"><AdaptationSet contentType="video">{template}{rep}'
        "</AdaptationSet></Period>"
    )
    res = run(text, start_pos=EPOCH + 102_000, duration=1000, blobs={"/arch/cam1/v.mp4": blob})
    # EPT 50 s == PTO 50 s: the first subsegment plays at the Period start (100 s).
    assert starts(res.video) == [102.0]
    assert res.video[0].byte_range == ByteRange(200 + len(sidx) + 16 + 500, 500)
    assert res.video[0].init_range == ByteRange(0, 150)
    assert res.video[0].media_offset == pytest.approx(50.0)
    assert res.archive_start == 100.0


def test_segment_base_without_sidx_is_a_media_error() -> None:
    template = '<SegmentBase indexRange="0-15"/>'
    rep = '<Representation id="hi" bandwidth="1"><BaseURL>v.mp4</BaseURL></Representation>'
    text = mpd(
        f'<Period><AdaptationSet contentType="video">{template}{rep}</AdaptationSet></Period>'
    )
    with pytest.raises(MediaError, match="sidx") as e:
        run(
            text,
            start_pos=EPOCH,
            duration=1000,
            blobs={"/arch/cam1/v.mp4": b"\0\0\0\x10free" + b"\0" * 8},
        )
    assert e.value.obj == "/arch/cam1/v.mp4"


def test_base_urls_at_every_level_and_on_s3() -> None:
    template = (
        '<SegmentTemplate timescale="1" duration="2" media="$Number$.m4s" initialization="i.mp4"/>'
    )
    body = f"""<BaseURL>media/</BaseURL>
      <Period id="p0" duration="PT10S"><BaseURL>p0/</BaseURL>
      <AdaptationSet contentType="video"><BaseURL>video/</BaseURL>{template}
        <Representation id="hi" bandwidth="1" width="4" height="4"><BaseURL>hi/</BaseURL>
        </Representation>
      </AdaptationSet></Period>"""
    res = run(mpd(body), start_pos=EPOCH, duration=1000)
    assert res.video[0].url == "/arch/cam1/media/p0/video/hi/1.m4s"
    assert res.video[0].init_url == "/arch/cam1/media/p0/video/hi/i.mp4"
    loc = "s3://bucket/live/cam1/stream.mpd"
    res = run(mpd(body), start_pos=EPOCH, duration=1000, location=loc)
    assert res.video[0].url == "s3://bucket/live/cam1/media/p0/video/hi/1.m4s"
    absolute = body.replace("<BaseURL>media/</BaseURL>", "<BaseURL>s3://other/arch/</BaseURL>")
    res = run(mpd(absolute), start_pos=EPOCH, duration=1000)
    assert res.video[0].url == "s3://other/arch/p0/video/hi/1.m4s"


def test_timescale_and_pto_inherit_from_the_adaptation_set() -> None:
    outer = """<SegmentTemplate timescale="90000" presentationTimeOffset="900000"
        media="$RepresentationID$-$Time$.m4s">
        <SegmentTimeline><S t="900000" d="180000" r="2"/></SegmentTimeline></SegmentTemplate>"""
    inner = '<SegmentTemplate media="r-$Time$.m4s"/>'
    body = f"""<Period start="PT20S"><AdaptationSet contentType="video">{outer}
        <Representation id="hi" bandwidth="1" width="4" height="4">{inner}</Representation>
      </AdaptationSet></Period>"""
    res = run(mpd(body), start_pos=EPOCH + 22_500, duration=1000)
    assert names(res.video) == ["r-1080000.m4s"]
    assert starts(res.video) == [22.0]
    assert res.video[0].media_offset == pytest.approx(10.0)  # 20 s - 900000/90000
    assert (res.archive_start, res.live_edge) == (20.0, 26.0)


def test_static_without_anchor_uses_start_time() -> None:
    text = mpd(
        '<Period id="p0" duration="PT10S">' + video_set(TIME_TEMPLATE) + "</Period>",
        attrs='type="static" mediaPresentationDuration="PT10S"',
    )
    res = run(text, start_pos=EPOCH + 1000, start_time="00:00:05", duration=2000)
    assert res.clock == "relative" and res.epoch_ms_at_zero is None
    assert starts(res.video) == [4.0, 6.0]
    with pytest.raises(InvalidRequest) as e:
        run(text, start_pos=EPOCH + 1000, duration=2000)
    assert e.value.field == "StartTime"


def test_multi_period_boundary_gives_both_periods_with_offsets() -> None:
    p1 = TIME_TEMPLATE  # 10 s of 2 s segments
    p2 = """<SegmentTemplate timescale="90000" presentationTimeOffset="450000"
        media="p2-$Time$.m4s"><SegmentTimeline><S t="450000" d="180000" r="4"/></SegmentTimeline>
      </SegmentTemplate>"""
    a2 = """<SegmentTemplate timescale="48000" media="a2-$Time$.m4s">
        <SegmentTimeline><S t="0" d="96000" r="4"/></SegmentTimeline></SegmentTemplate>"""
    body = (
        '<Period id="one" start="PT0S" duration="PT10S">'
        + video_set(p1)
        + audio_set(AUDIO_TIME_TEMPLATE)
        + '</Period><Period id="two">'  # start implied by the previous duration
        + video_set(p2)
        + audio_set(a2)
        + "</Period>"
    )
    res = run(mpd(body), start_pos=EPOCH + 7000, duration=6000)  # 7 .. 13
    assert starts(res.video) == [6.0, 8.0, 10.0, 12.0]
    assert names(res.video)[2:] == ["p2-450000.m4s", "p2-630000.m4s"]
    assert [r.discontinuity for r in res.video] == [False, False, True, False]
    assert [r.media_offset for r in res.video] == [0.0, 0.0, 5.0, 5.0]
    assert starts(res.audio) == [6.0, 8.0, 10.0, 12.0]
    assert [r.discontinuity for r in res.audio] == [False, False, True, False]
    assert res.gaps == () and res.live_edge == 20.0
    # A clip that starts in the second period is not flagged at its first segment.
    res = run(mpd(body), start_pos=EPOCH + 11_000, duration=1000)
    assert names(res.video) == ["p2-450000.m4s"] and not res.video[0].discontinuity


def test_period_start_attribute_and_hole_between_periods() -> None:
    one = '<SegmentTemplate timescale="1" duration="2" media="a$Number$.m4s"/>'
    two = '<SegmentTemplate timescale="1" duration="2" media="b$Number$.m4s"/>'
    body = (
        '<Period id="one" start="PT0S" duration="PT4S">'
        + video_set(one)
        + '</Period><Period id="two" start="PT10S" duration="PT4S">'
        + video_set(two)
        + "</Period>"
    )
    res = run(mpd(body), start_pos=EPOCH + 3000, duration=9000)  # 3 .. 12
    assert names(res.video) == ["a2.m4s", "b1.m4s"]
    assert starts(res.video) == [2.0, 10.0]
    assert [(g.start, g.end, g.reason) for g in res.gaps] == [(4.0, 10.0, "gap")]
    assert res.missing == pytest.approx(6.0)


def test_gap_inside_a_timeline() -> None:
    template = """<SegmentTemplate timescale="1000" media="$Time$.m4s">
        <SegmentTimeline><S t="0" d="2000" r="1"/><S t="6000" d="2000" r="1"/></SegmentTimeline>
      </SegmentTemplate>"""
    text = mpd('<Period id="p0">' + video_set(template) + "</Period>")
    res = run(text, start_pos=EPOCH + 1000, duration=6000)  # 1 .. 7
    assert names(res.video) == ["0.m4s", "2000.m4s", "6000.m4s"]
    assert [(g.start, g.end, g.reason) for g in res.gaps] == [(4.0, 6.0, "gap")]
    # Starting inside the hole: the first segment is the one after it.
    res = run(text, start_pos=EPOCH + 4500, duration=2000)
    assert names(res.video) == ["6000.m4s"]
    assert [(g.start, g.end) for g in res.gaps] == [(4.5, 6.0)]


def test_range_partly_before_the_archive_counts_as_missing() -> None:
    template = """<SegmentTemplate timescale="1000" media="$Time$.m4s">
        <SegmentTimeline><S t="4000" d="2000" r="2"/></SegmentTimeline></SegmentTemplate>"""
    text = mpd('<Period id="p0">' + video_set(template) + "</Period>")
    res = run(text, start_pos=EPOCH + 3000, duration=2000)
    assert names(res.video) == ["4000.m4s"]
    assert [(g.start, g.end, g.reason) for g in res.gaps] == [(3.0, 4.0, "missing")]
    with pytest.raises(RangeNotInArchive) as e:
        run(text, start_pos=EPOCH + 1000, duration=2000)
    assert e.value.field == "StartPos" and e.value.obj == MPD_PATH


LIVE_ATTRS = (
    f'type="dynamic" availabilityStartTime="{AST}" publishTime="2019-07-04T15:20:10Z"'
    ' minimumUpdatePeriod="PT2S"'
)


def test_dynamic_timeline_live_edge_is_the_end_of_the_last_s() -> None:
    text = mpd(
        '<Period id="p0" start="PT0S">' + video_set(TIME_TEMPLATE) + "</Period>", attrs=LIVE_ATTRS
    )
    res = run(text, start_pos=EPOCH + 7000, duration=6000, now_ms=EPOCH + 60_000)
    assert res.is_live and res.live_edge == 10.0
    assert starts(res.video) == [6.0, 8.0]
    assert res.gaps == () and res.missing_after_edge == pytest.approx(3.0)
    assert any("minimumUpdatePeriod" in n for n in res.notes)
    # Entirely beyond the edge: not an error, nothing yet, all of it missing after the edge.
    res = run(text, start_pos=EPOCH + 15_000, duration=4000, now_ms=EPOCH + 60_000)
    assert res.is_live and res.video == () and res.audio == ()
    assert res.missing_after_edge == pytest.approx(4.0) and res.gaps == ()


def test_dynamic_duration_template_edge_comes_from_now() -> None:
    template = (
        '<SegmentTemplate timescale="1000" duration="2000" startNumber="0" media="$Number$.m4s"/>'
    )
    attrs = LIVE_ATTRS + ' timeShiftBufferDepth="PT30S"'
    text = mpd('<Period id="p0" start="PT0S">' + video_set(template) + "</Period>", attrs=attrs)
    now = EPOCH + 3_600_000 + 900  # one hour and 0.9 s in: 1800 complete segments
    res = run(text, start_pos=now - 5900, duration=8000, now_ms=now)
    assert res.is_live and res.live_edge == 3600.0
    assert names(res.video) == ["1797.m4s", "1798.m4s", "1799.m4s"]
    assert res.missing_after_edge == pytest.approx(3.0)  # 3595 .. 3603 against 3600
    # The time-shift buffer holds 30 s: the segment ending after 3570 s is the first one.
    assert res.archive_start == 3570.0
    with pytest.raises(RangeNotInArchive):
        run(text, start_pos=EPOCH + 3_500_000, duration=10_000, now_ms=now)
    res = run(text, start_pos=EPOCH + 3_565_000, duration=10_000, now_ms=now)
    assert res.video[0].start == 3570.0 and res.gaps[0].reason == "missing"


def test_dynamic_with_repeat_to_now() -> None:
    template = """<SegmentTemplate timescale="1" media="$Time$.m4s">
        <SegmentTimeline><S t="0" d="2" r="-1"/></SegmentTimeline></SegmentTemplate>"""
    text = mpd(
        '<Period id="p0" start="PT0S">' + video_set(template) + "</Period>", attrs=LIVE_ATTRS
    )
    res = run(text, start_pos=EPOCH + 5000, duration=4000, now_ms=EPOCH + 7500)
    assert res.live_edge == 6.0 and names(res.video) == ["4.m4s"]


def test_picks_highest_resolution_then_bandwidth_and_main_audio() -> None:
    template = (
        '<SegmentTemplate timescale="1" duration="2" media="$RepresentationID$-$Number$.m4s"/>'
    )
    twin = (
        '<Representation id="hi2" bandwidth="700000" width="320" height="180"'
        ' codecs="avc1.64000d"/>'
    )
    audio = (
        audio_set(template, 'mimeType="audio/mp4"', rep_id="commentary")
        + """<AdaptationSet mimeType="audio/mp4">
        <Role schemeIdUri="urn:mpeg:dash:role:2011" value="main"/>"""
        + template
        + """
        <Representation id="main-lo" bandwidth="64000" codecs="mp4a.40.2"/>
        <Representation id="main-hi" bandwidth="96000" codecs="mp4a.40.2"/>
      </AdaptationSet>"""
    )
    trick = (
        """<AdaptationSet mimeType="video/mp4">
        <EssentialProperty schemeIdUri="http://dashif.org/guidelines/trickmode" value="1"/>
        """
        + template
        + """
        <Representation id="trick" bandwidth="1" width="3840" height="2160"/></AdaptationSet>"""
    )
    body = '<Period duration="PT10S">' + video_set(template, twin) + trick + audio + "</Period>"
    res = run(mpd(body), start_pos=EPOCH, duration=1000)
    assert names(res.video) == ["hi2-1.m4s"]
    assert names(res.audio) == ["main-hi-1.m4s"]
    assert res.audio_track is not None and res.audio_track.bandwidth == 96000


def test_first_audio_without_a_main_role_and_mime_type_classification() -> None:
    template = '<SegmentTemplate timescale="1" duration="2" media="$RepresentationID$.m4s"/>'
    body = (
        '<Period duration="PT4S">'
        + audio_set(template, 'mimeType="audio/mp4"', rep_id="first")
        + audio_set(template, 'mimeType="audio/mp4"', rep_id="second")
        + '<AdaptationSet><Representation id="v" mimeType="video/mp4" width="8" height="8"'
        + ' bandwidth="1">'
        + template
        + "</Representation></AdaptationSet></Period>"
    )
    res = run(mpd(body), start_pos=EPOCH, duration=1000)
    assert names(res.video) == ["v.m4s"] and names(res.audio) == ["first.m4s"]


# --- bad input -------------------------------------------------------------------------


def test_invalid_xml_names_the_manifest() -> None:
    with pytest.raises(MediaError, match="XML") as e:
        run("<MPD><Period></MPD>", start_pos=EPOCH, duration=1000)
    assert e.value.obj == MPD_PATH
    with pytest.raises(MediaError, match="not <MPD>"):
        resolve_dash(DictReader(), MPD_PATH, b"<foo/>", range_request(EPOCH, None, 1000))


def test_no_video_adaptation_set() -> None:
    body = '<Period id="p0" duration="PT10S">' + audio_set(AUDIO_TIME_TEMPLATE) + "</Period>"
    with pytest.raises(MediaError, match="no video AdaptationSet") as e:
        run(mpd(body), start_pos=EPOCH, duration=1000)
    assert e.value.obj == MPD_PATH and "p0" in str(e.value)


def test_missing_template_media() -> None:
    template = '<SegmentTemplate timescale="1" duration="2"/>'
    body = '<Period duration="PT10S">' + video_set(template) + "</Period>"
    with pytest.raises(MediaError, match=r"SegmentTemplate@media") as e:
        run(mpd(body), start_pos=EPOCH, duration=1000)
    assert e.value.obj == MPD_PATH


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (TIME_TEMPLATE.replace('d="180000"', ""), "S needs integer @d"),
        (TIME_TEMPLATE.replace('timescale="90000"', 'timescale="0"'), "timescale"),
        (TIME_TEMPLATE.replace('t="0"', 't="x"'), "S needs integer"),
        ('<SegmentTemplate media="a"/>', "SegmentTimeline or a positive @duration"),
        ('<SegmentList duration="1"/>', "no SegmentURL"),
        ('<SegmentBase timescale="1"/>', "indexRange"),
        (
            '<SegmentList duration="1"><SegmentURL/><SegmentURL mediaRange="9-1"/></SegmentList>',
            "mediaRange",
        ),
        ("", "no SegmentTemplate, SegmentList or SegmentBase"),
    ],
)
def test_broken_segment_descriptions(body: str, message: str) -> None:
    text = mpd('<Period id="p0" duration="PT10S">' + video_set(body) + "</Period>")
    with pytest.raises(MediaError, match=message) as e:
        run(text, start_pos=EPOCH + 1000, duration=1000)
    assert e.value.obj == MPD_PATH


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        ('type="dynamic"', "availabilityStartTime"),
        ('availabilityStartTime="yesterday"', "availabilityStartTime"),
        (
            f'availabilityStartTime="{AST}" mediaPresentationDuration="10s"',
            "mediaPresentationDuration",
        ),
    ],
)
def test_bad_mpd_attributes(attrs: str, message: str) -> None:
    text = mpd(
        '<Period id="p0" duration="PT10S">' + video_set(TIME_TEMPLATE) + "</Period>", attrs=attrs
    )
    with pytest.raises(MediaError, match=message) as e:
        run(text, start_pos=EPOCH, duration=1000)
    assert e.value.obj == MPD_PATH


def test_range_after_a_static_archive_names_the_anchor_used() -> None:
    with pytest.raises(RangeNotInArchive, match="after the archive ends") as e:
        run(STATIC_TIME, start_pos=EPOCH + 10_000, duration=1000)
    assert e.value.field == "StartPos" and e.value.obj == MPD_PATH
    with pytest.raises(RangeNotInArchive) as e:
        run(STATIC_TIME, start_time="01:00:00", duration=1000)
    assert e.value.field == "StartTime"
    with pytest.raises(RangeNotInArchive):
        run(STATIC_TIME, start_pos=EPOCH - 5000, duration=5000)
    # Overlapping the end: delivered up to the end, the rest counted as missing.
    res = run(STATIC_TIME, start_pos=EPOCH + 9000, duration=3000)
    assert names(res.video) == ["chunk-hi-720000.m4s"] and res.missing == pytest.approx(2.0)


def test_missing_segment_base_file_is_source_not_found() -> None:
    rep = '<Representation id="hi" bandwidth="1"><BaseURL>gone.mp4</BaseURL></Representation>'
    text = mpd(
        f'<Period><AdaptationSet contentType="video"><SegmentBase indexRange="0-9"/>{rep}'
        "</AdaptationSet></Period>"
    )
    with pytest.raises(SourceNotFound):
        run(text, start_pos=EPOCH, duration=1000)


def test_period_start_implied_by_the_previous_periods_segments() -> None:
    one = """<SegmentTemplate timescale="1" media="a$Time$.m4s">
        <SegmentTimeline><S t="0" d="2" r="2"/></SegmentTimeline></SegmentTemplate>"""
    two = """<SegmentTemplate timescale="1" media="b$Time$.m4s">
        <SegmentTimeline><S t="0" d="2" r="2"/></SegmentTimeline></SegmentTemplate>"""
    body = "<Period>" + video_set(one) + "</Period><Period>" + video_set(two) + "</Period>"
    res = run(mpd(body), start_pos=EPOCH + 5000, duration=2000)
    assert names(res.video) == ["a4.m4s", "b0.m4s"]
    assert starts(res.video) == [4.0, 6.0] and res.video[1].discontinuity
    assert res.live_edge == 12.0


def test_period_level_template_is_inherited() -> None:
    template = (
        '<SegmentTemplate timescale="1000" duration="2000"'
        ' media="$RepresentationID$$$$Number$.m4s"/>'
    )
    body = '<Period duration="PT6S">' + template + video_set("") + "</Period>"
    res = run(mpd(body), start_pos=EPOCH + 2000, duration=1000)
    assert names(res.video) == ["hi$2.m4s"]


def test_unknown_template_identifier() -> None:
    template = '<SegmentTemplate timescale="1" duration="2" media="$Foo$-$Number$.m4s"/>'
    body = '<Period duration="PT6S">' + video_set(template) + "</Period>"
    with pytest.raises(MediaError, match=r"\$Foo\$"):
        run(mpd(body), start_pos=EPOCH, duration=1000)


def test_hevc_set_found_by_codecs_alone() -> None:
    template = '<SegmentTemplate timescale="1" duration="2" media="$RepresentationID$.m4s"/>'
    body = f"""<Period duration="PT4S"><AdaptationSet>{template}
        <Representation id="h" bandwidth="1" codecs="hvc1.1.6.L93.B0" width="8" height="8"/>
        </AdaptationSet></Period>"""
    res = run(mpd(body), start_pos=EPOCH, duration=1000)
    assert names(res.video) == ["h.m4s"] and res.video_track.codec.startswith("hvc1")


def test_dynamic_that_has_ended_is_not_live() -> None:
    attrs = f'type="dynamic" availabilityStartTime="{AST}" mediaPresentationDuration="PT10S"'
    text = mpd('<Period start="PT0S">' + video_set(TIME_TEMPLATE) + "</Period>", attrs=attrs)
    res = run(text, start_pos=EPOCH + 9000, duration=2000, now_ms=EPOCH + 20_000)
    assert not res.is_live and res.missing_after_edge == pytest.approx(1.0)
    with pytest.raises(RangeNotInArchive):
        run(text, start_pos=EPOCH + 10_000, duration=2000, now_ms=EPOCH + 20_000)


def test_dynamic_before_its_first_segment_waits() -> None:
    template = '<SegmentTemplate timescale="1" duration="2" media="$Number$.m4s"/>'
    text = mpd('<Period start="PT0S">' + video_set(template) + "</Period>", attrs=LIVE_ATTRS)
    res = run(text, start_pos=EPOCH, duration=3000, now_ms=EPOCH + 1000)
    assert res.is_live and res.video == () and res.live_edge == 0.0
    assert res.missing_after_edge == pytest.approx(3.0)


def test_dynamic_duration_template_uses_the_clock_by_default() -> None:
    ast_ms = int(time.time() * 1000) - 10_500  # the recording started 10.5 s ago
    ast = datetime.fromtimestamp(ast_ms / 1000, UTC).isoformat()
    template = '<SegmentTemplate timescale="1" duration="2" media="$Number$.m4s"/>'
    text = mpd(
        '<Period start="PT0S">' + video_set(template) + "</Period>",
        attrs=f'type="dynamic" availabilityStartTime="{ast}"',
    )
    before_s = (time.time() * 1000 - ast_ms) / 1000
    res = run(text, start_pos=ast_ms + 7000, duration=6000)
    after_s = (time.time() * 1000 - ast_ms) / 1000
    # The edge is where the last complete 2-second segment ends by the clock: 10 s (five
    # segments) unless this machine stalled, so it is checked against the clock read around.
    edge = res.live_edge
    assert res.is_live and edge is not None and edge % 2 == 0
    assert before_s - 2 < edge <= after_s
    last = min(int(edge // 2), 7)  # segment n covers (n-1)*2 .. n*2 s; range 7-13 s
    assert names(res.video) == [f"{n}.m4s" for n in range(4, last + 1)]


def test_relative_manifest_location_with_single_file_segments() -> None:
    template = """<SegmentList timescale="1" duration="2"><Initialization range="0-9"/>
        <SegmentURL mediaRange="10-19"/><SegmentURL mediaRange="20-29"/></SegmentList>"""
    rep = '<Representation id="hi" bandwidth="1"><BaseURL>v.mp4</BaseURL></Representation>'
    text = mpd(
        f'<Period><AdaptationSet contentType="video">{template}{rep}</AdaptationSet></Period>'
    )
    res = run(text, start_pos=EPOCH + 2000, duration=1000, location="cam1/stream.mpd")
    assert [(r.url, r.byte_range) for r in res.video] == [("cam1/v.mp4", ByteRange(20, 10))]
    assert (res.video[0].init_url, res.video[0].init_range) == ("cam1/v.mp4", ByteRange(0, 10))
