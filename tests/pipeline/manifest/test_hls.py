"""HLS media playlists resolved from hand-written text: timeline, wall clock, gaps, live."""

from __future__ import annotations

import pytest

from pipeline.errors import InvalidRequest, MediaError, RangeNotInArchive
from pipeline.manifest import range_request, resolve
from pipeline.model import ByteRange, Gap
from tests.pipeline.manifest.test_hls_support import (
    EPOCH,
    LOCATION,
    DictReader,
    iso,
    media_playlist,
    resolve_text,
)


def starts(res):
    return [round(s.start, 6) for s in res.video]


def names(res):
    return [s.url.rsplit("/", 1)[-1] for s in res.video]


def test_ts_vod_with_pdt_on_each_segment_maps_wall_clock():
    res = resolve_text(media_playlist(5), start_pos=EPOCH + 3000, duration_ms=4000)
    assert (res.kind, res.clock, res.epoch_ms_at_zero) == ("hls", "wall", EPOCH)
    assert (res.start, res.end) == (3.0, 7.0)
    assert names(res) == ["seg1.ts", "seg2.ts", "seg3.ts"]
    assert starts(res) == [2.0, 4.0, 6.0]
    assert res.video[0].url == "/arc/cam1/seg1.ts"
    assert all(s.duration == 2.0 and s.media_offset is None for s in res.video)
    assert all(s.init_url is None and s.byte_range is None for s in res.video)
    assert not any(s.discontinuity for s in res.video)
    assert (res.is_live, res.live_edge, res.gaps, res.missing) == (False, 10.0, (), 0.0)
    assert res.audio == () and res.audio_muxed


def test_range_ending_on_a_boundary_excludes_the_next_segment():
    res = resolve_text(media_playlist(5), start_pos=EPOCH + 2000, duration_ms=4000)
    assert names(res) == ["seg1.ts", "seg2.ts"]


def test_single_pdt_at_top_dates_the_whole_playlist():
    res = resolve_text(media_playlist(5, pdt="top"), start_pos=EPOCH + 5500, duration_ms=500)
    assert res.epoch_ms_at_zero == EPOCH and names(res) == ["seg2.ts"]
    assert starts(res) == [4.0]


def test_pdt_first_given_on_a_later_segment_dates_the_first():
    text = media_playlist(4, pdt="none", extra={2: [f"#EXT-X-PROGRAM-DATE-TIME:{iso(EPOCH)}"]})
    res = resolve_text(text, start_pos=EPOCH, duration_ms=1000)
    assert res.epoch_ms_at_zero == EPOCH - 4000
    assert res.start == 4.0 and names(res) == ["seg2.ts"]


@pytest.mark.parametrize(
    "stamp",
    ["2019-07-04T17:20:00.000+02:00", "2019-07-04T10:20:00-05:00", "2019-07-04T15:20:00.000"],
)
def test_pdt_offsets_and_zone_less_times_mean_the_same_instant(stamp):
    text = media_playlist(3, pdt="none", extra={0: [f"#EXT-X-PROGRAM-DATE-TIME:{stamp}"]})
    assert resolve_text(text, start_pos=EPOCH, duration_ms=1000).epoch_ms_at_zero == EPOCH


def test_pdt_keeps_milliseconds():
    text = media_playlist(3, pdt="none", extra={0: ["#EXT-X-PROGRAM-DATE-TIME:" + iso(EPOCH + 7)]})
    assert resolve_text(text, start_pos=EPOCH + 7, duration_ms=500).epoch_ms_at_zero == EPOCH + 7


def test_without_pdt_start_time_is_the_offset_from_the_first_segment():
    text = media_playlist(5, pdt="none")
    res = resolve_text(text, start_pos=EPOCH, start_time="00:00:03.5", duration_ms=500)
    assert (res.clock, res.epoch_ms_at_zero, res.start) == ("relative", None, 3.5)
    assert names(res) == ["seg1.ts"]
    with pytest.raises(InvalidRequest) as e:
        resolve_text(text, start_pos=EPOCH, duration_ms=1000)
    assert e.value.field == "StartTime"


def test_wall_clock_wins_when_request_and_archive_both_have_one():
    res = resolve_text(media_playlist(5), EPOCH + 8000, "00:00:01", 1000)
    assert res.clock == "wall" and names(res) == ["seg4.ts"]


def test_discontinuity_with_a_clock_jump_reanchors_and_leaves_a_gap():
    text = media_playlist(6, extra={3: ["#EXT-X-DISCONTINUITY"]}, jumps={3: 60_000})
    res = resolve_text(text, start_pos=EPOCH + 5000, duration_ms=64_000)
    assert names(res) == ["seg2.ts", "seg3.ts", "seg4.ts"]
    assert starts(res) == [4.0, 66.0, 68.0]
    assert [s.discontinuity for s in res.video] == [False, True, False]
    assert res.gaps == (Gap(6.0, 66.0, "gap"),)
    assert res.live_edge == 72.0
    # the gap is clipped to the range
    res = resolve_text(text, start_pos=EPOCH + 10_000, duration_ms=20_000)
    assert res.video == () and res.gaps == (Gap(10.0, 30.0, "gap"),)


def test_discontinuity_without_pdt_keeps_the_running_time():
    text = media_playlist(4, pdt="none", extra={2: ["#EXT-X-DISCONTINUITY"]})
    res = resolve_text(text, start_time="00:00:00", duration_ms=8000)
    assert starts(res) == [0.0, 2.0, 4.0, 6.0]
    assert [s.discontinuity for s in res.video] == [False, False, True, False]


def test_pdt_a_few_ms_late_is_rounding_not_a_gap():
    text = media_playlist(4, jumps={2: 4})
    res = resolve_text(text, start_pos=EPOCH, duration_ms=8000)
    assert res.gaps == () and starts(res) == [0.0, 2.0, 4.004, 6.004]


def test_pdt_hole_without_discontinuity_is_a_gap():
    res = resolve_text(media_playlist(4, jumps={2: 5000}), start_pos=EPOCH, duration_ms=20_000)
    assert res.gaps == (Gap(4.0, 9.0, "gap"),)
    assert starts(res) == [0.0, 2.0, 9.0, 11.0]


def test_small_backstep_reanchors_big_backstep_keeps_running_time():
    res = resolve_text(media_playlist(4, jumps={2: -200}), start_pos=EPOCH, duration_ms=8000)
    assert starts(res) == [0.0, 2.0, 3.8, 5.8]
    assert not any("steps back" in n for n in res.notes)
    res = resolve_text(media_playlist(4, jumps={2: -3000}), start_pos=EPOCH, duration_ms=8000)
    assert starts(res) == [0.0, 2.0, 4.0, 6.0]
    assert any("steps back" in n for n in res.notes)


def test_gap_segments_are_reported_and_not_listed():
    text = media_playlist(6, extra={2: ["#EXT-X-GAP"], 3: ["#EXT-X-DISCONTINUITY", "#EXT-X-GAP"]})
    res = resolve_text(text, start_pos=EPOCH + 1000, duration_ms=8000)
    assert names(res) == ["seg0.ts", "seg1.ts", "seg4.ts"]
    assert res.gaps == (Gap(4.0, 8.0, "gap"),)  # two touching gap segments are one hole
    # the discontinuity tagged on a skipped gap segment moves to the next listed one
    assert [s.discontinuity for s in res.video] == [False, False, True]
    assert res.missing == pytest.approx(4.0)


def test_fmp4_map_with_byterange_and_a_map_change():
    text = media_playlist(
        4,
        name="v/seg{i}.m4s",
        header=('#EXT-X-MAP:URI="v/init.mp4",BYTERANGE="720@0"',),
        extra={2: ["#EXT-X-DISCONTINUITY", '#EXT-X-MAP:URI="v/init2.mp4"']},
    )
    res = resolve_text(text, start_pos=EPOCH, duration_ms=8000)
    assert [s.init_url for s in res.video] == ["/arc/cam1/v/init.mp4"] * 2 + [
        "/arc/cam1/v/init2.mp4"
    ] * 2
    assert [s.init_range for s in res.video] == [ByteRange(0, 720)] * 2 + [None] * 2
    assert all(s.media_offset is None for s in res.video)
    assert res.video[0].url == "/arc/cam1/v/seg0.m4s"


def test_byteranges_with_explicit_and_implicit_offsets():
    text = media_playlist(
        4,
        name="all.ts",
        extra={
            0: ["#EXT-X-BYTERANGE:1000@0"],
            1: ["#EXT-X-BYTERANGE:2000"],
            2: ["#EXT-X-BYTERANGE:1500"],
            3: ["#EXT-X-BYTERANGE:500@9000"],
        },
    )
    res = resolve_text(text, start_pos=EPOCH, duration_ms=8000)
    assert [s.byte_range for s in res.video] == [
        ByteRange(0, 1000),
        ByteRange(1000, 2000),
        ByteRange(3000, 1500),
        ByteRange(9000, 500),
    ]
    assert {s.url for s in res.video} == {"/arc/cam1/all.ts"}


def test_media_sequence_is_accepted_and_noted_without_a_clock():
    header = ("#EXT-X-MEDIA-SEQUENCE:1200", "#EXT-X-DISCONTINUITY-SEQUENCE:3")
    text = media_playlist(3, pdt="none", header=header)
    res = resolve_text(text, start_time="00:00:00", duration_ms=1000)
    assert names(res) == ["seg0.ts"] and not res.video[0].discontinuity
    assert any("media sequence 1200" in n for n in res.notes)
    res = resolve_text(media_playlist(3, header=("#EXT-X-MEDIA-SEQUENCE:7",)), EPOCH, None, 1000)
    assert not any("media sequence" in n for n in res.notes)


def test_live_playlist_reports_its_edge_and_what_lies_beyond():
    text = media_playlist(5, endlist=False)
    res = resolve_text(text, start_pos=EPOCH + 7000, duration_ms=6000)
    assert res.is_live and res.live_edge == 10.0
    assert names(res) == ["seg3.ts", "seg4.ts"]
    assert res.missing_after_edge == pytest.approx(3.0)
    # a range wholly beyond the edge waits: no error, nothing to deliver yet
    res = resolve_text(text, start_pos=EPOCH + 30_000, duration_ms=5000)
    assert res.video == () and res.missing_after_edge == pytest.approx(5.0)


def test_playlist_type_vod_without_endlist_is_finished():
    text = media_playlist(3, endlist=False, header=("#EXT-X-PLAYLIST-TYPE:VOD",))
    res = resolve_text(text, start_pos=EPOCH, duration_ms=1000)
    assert not res.is_live
    text = media_playlist(3, endlist=False, header=("#EXT-X-PLAYLIST-TYPE:EVENT",))
    assert resolve_text(text, start_pos=EPOCH, duration_ms=1000).is_live


def test_live_playlist_with_a_segment_still_being_written():
    text = media_playlist(3, endlist=False) + "#EXTINF:2.000,\n"
    res = resolve_text(text, start_pos=EPOCH, duration_ms=8000)
    assert res.live_edge == 6.0 and any("no segment URI" in n for n in res.notes)


@pytest.mark.parametrize(
    ("start_pos", "start_time", "field"),
    [
        (EPOCH + 10_000, None, "StartPos"),
        (EPOCH + 60_000, None, "StartPos"),
        (None, "00:00:10", "StartTime"),
        (EPOCH - 20_000, None, "StartPos"),
    ],
)
def test_finished_playlist_refuses_a_range_outside_it(start_pos, start_time, field):
    pdt = "each" if start_pos else "none"
    with pytest.raises(RangeNotInArchive) as e:
        resolve_text(media_playlist(5, pdt=pdt), start_pos, start_time, 4000)
    assert e.value.field == field
    assert LOCATION in str(e.value)


def test_live_playlist_refuses_a_range_before_its_start():
    with pytest.raises(RangeNotInArchive):
        resolve_text(media_playlist(5, endlist=False), EPOCH - 20_000, None, 4000)


def test_range_starting_before_the_recording_reports_the_missing_head():
    res = resolve_text(media_playlist(5), start_pos=EPOCH - 1500, duration_ms=3000)
    assert res.gaps == (Gap(-1.5, 0.0, "missing"),)
    assert names(res) == ["seg0.ts"] and res.missing == pytest.approx(1.5)


def test_crlf_and_bom_are_accepted():
    text = "\ufeff" + media_playlist(3).replace("\n", "\r\n")
    res = resolve_text(text, start_pos=EPOCH, duration_ms=1000)
    assert names(res) == ["seg0.ts"]


def test_dispatch_through_resolve_reads_the_manifest():
    reader = DictReader({LOCATION: media_playlist(3)})
    res = resolve(reader, LOCATION, range_request(EPOCH + 2500, None, 1000))
    assert res.kind == "hls" and names(res) == ["seg1.ts"] and reader.reads == [LOCATION]


def test_s3_locations_are_joined_against_the_playlist():
    res = resolve_text(
        media_playlist(2, name="../seg{i}.ts"),
        start_pos=EPOCH,
        duration_ms=1000,
        location="s3://bucket/live/cam1/v/index.m3u8",
    )
    assert res.video[0].url == "s3://bucket/live/cam1/seg0.ts"


# ---- malformed playlists: MediaError naming the playlist and the line --------------------


def _error(text: str | bytes) -> MediaError:
    data = text.encode() if isinstance(text, str) else text
    with pytest.raises(MediaError) as e:
        from pipeline.manifest.hls import resolve_hls

        resolve_hls(DictReader(), LOCATION, data, range_request(EPOCH, "00:00:00", 1000))
    assert e.value.obj == LOCATION
    return e.value


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("#EXTINF:2,\nseg0.ts\n", 1, "no #EXTM3U"),
        ("", 1, "no #EXTM3U"),
        ("#EXTM3U\n#EXTINF:abc,\nseg0.ts\n", 2, "EXTINF duration 'abc'"),
        ("#EXTM3U\n#EXTINF:-2,\nseg0.ts\n", 2, "EXTINF"),
        ("#EXTM3U\n#EXTINF:nan,\nseg0.ts\n", 2, "EXTINF"),
        ("#EXTM3U\n#EXTINF:2,\nseg0.ts\nseg1.ts\n", 4, "no EXTINF"),
        ("#EXTM3U\n#EXT-X-PROGRAM-DATE-TIME:yesterday\n#EXTINF:2,\ns.ts\n", 2, "ISO 8601"),
        ("#EXTM3U\n#EXT-X-BYTERANGE:12@x\n#EXTINF:2,\ns.ts\n", 2, "BYTERANGE"),
        ('#EXTM3U\n#EXT-X-MAP:BYTERANGE="1@0"\n#EXTINF:2,\ns.m4s\n', 2, "without URI"),
        ("#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:-1\n#EXTINF:2,\ns.ts\n", 2, "MEDIA-SEQUENCE"),
        ('#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI="k"\n#EXTINF:2,\ns.ts\n', 2, "encrypted"),
    ],
)
def test_malformed_media_playlists(text, line, words):
    error = _error(text)
    assert f"line {line}:" in error.message and words in error.message


def test_finished_playlist_without_segments():
    error = _error("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-ENDLIST\n\n")
    assert "line 3: finished playlist lists no segments" in error.message


def test_live_playlist_without_segments_yet_waits():
    res = resolve_text("#EXTM3U\n#EXT-X-TARGETDURATION:2\n", None, "00:00:01", 2000)
    assert res.is_live and res.video == () and res.live_edge == 0.0
    assert res.missing_after_edge == pytest.approx(2.0)


def test_not_utf8():
    assert "line 1" in _error(b"#EXTM3U\n\xff\xfe\n").message
