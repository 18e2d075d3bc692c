"""HLS master playlists: variant choice, audio renditions, stream facts."""

from __future__ import annotations

import pytest

from pipeline.errors import MediaError, SourceNotFound
from pipeline.manifest.hls import resolve_hls
from pipeline.manifest.request import range_request
from tests.pipeline.manifest.test_hls_support import (
    EPOCH,
    LOCATION,
    DictReader,
    iso,
    media_playlist,
)

BASE = "/arc/cam1/"
CODECS = 'CODECS="avc1.64001f,mp4a.40.2"'

VARIANTS = f"""#EXTM3U
#EXT-X-VERSION:6
#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,{CODECS}
low/index.m3u8
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=9000000,RESOLUTION=3840x2160,URI="iframes.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=2000000,RESOLUTION=1280x720,{CODECS},FRAME-RATE=25.000
mid/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=3000000,RESOLUTION=1280x720,{CODECS},FRAME-RATE=29.970
hi/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=9900000,CODECS="mp4a.40.2"
audio-only/index.m3u8
"""


def _resolve(master: str, files: dict[str, str], start_pos: int = EPOCH + 2500, dur: int = 1000):
    reader = DictReader(files)
    res = resolve_hls(reader, LOCATION, master.encode(), range_request(start_pos, None, dur))
    return res, reader


def test_highest_resolution_variant_ties_broken_by_bandwidth():
    files = {BASE + "hi/index.m3u8": media_playlist(3)}
    res, reader = _resolve(VARIANTS, files)
    assert reader.reads == [BASE + "hi/index.m3u8"]  # no other variant is fetched
    assert [s.url for s in res.video] == [BASE + "hi/seg1.ts"]
    track = res.video_track
    assert (track.codec, track.width, track.height) == ("avc1.64001f", 1280, 720)
    assert (track.bandwidth, track.frame_rate) == (3_000_000, 29.97)
    assert res.manifest == LOCATION and res.epoch_ms_at_zero == EPOCH


def test_muxed_audio_is_decided_from_codecs():
    files = {BASE + "hi/index.m3u8": media_playlist(3)}
    res, _ = _resolve(VARIANTS, files)
    assert res.audio_muxed and res.audio == ()
    assert res.audio_track is not None and res.audio_track.codec == "mp4a.40.2"

    video_only = VARIANTS.replace(CODECS, 'CODECS="hvc1.1.6.L93.B0"')
    res, _ = _resolve(video_only, files)
    assert not res.audio_muxed and res.audio_track is None
    assert res.video_track.codec == "hvc1.1.6.L93.B0"

    undeclared = VARIANTS.replace("," + CODECS, "")
    res, _ = _resolve(undeclared, files)
    assert res.audio_muxed and res.audio_track is None
    assert any("probe" in n for n in res.notes)


AUDIO_MASTER = f"""#EXTM3U
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="Other",LANGUAGE="de",DEFAULT=NO,URI="a/de.m3u8"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="Main, st",DEFAULT=YES,CHANNELS="2",URI="a/main.m3u8"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="other",NAME="x",DEFAULT=YES,URI="a/x.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=2000000,RESOLUTION=1920x1080,{CODECS},AUDIO="aud"
v/index.m3u8
"""


def test_audio_rendition_default_yes_is_resolved_on_the_video_timeline():
    audio = media_playlist(
        3, name="a{i}.m4s", epoch_ms=EPOCH - 20, header=('#EXT-X-MAP:URI="ainit.mp4"',)
    )
    files = {
        BASE + "v/index.m3u8": media_playlist(3, name="v{i}.m4s"),
        BASE + "a/main.m3u8": audio,
    }
    res, reader = _resolve(AUDIO_MASTER, files)
    assert reader.reads == [BASE + "v/index.m3u8", BASE + "a/main.m3u8"]
    assert not res.audio_muxed
    assert [s.url for s in res.audio] == [BASE + "a/a1.m4s"]
    assert res.audio[0].start == pytest.approx(1.98)  # its own PDT, on the video's clock
    assert res.audio[0].init_url == BASE + "a/ainit.mp4"
    assert res.audio_track is not None
    assert (res.audio_track.codec, res.audio_track.channels) == ("mp4a.40.2", 2)
    assert res.live_edge == pytest.approx(5.98)  # the shorter of the two


def test_audio_rendition_without_pdt_starts_with_the_video():
    files = {
        BASE + "v/index.m3u8": media_playlist(3),
        BASE + "a/main.m3u8": media_playlist(3, pdt="none", name="a{i}.aac"),
    }
    res, _ = _resolve(AUDIO_MASTER, files)
    assert [(s.url, s.start) for s in res.audio] == [(BASE + "a/a1.aac", 2.0)]


def test_audio_group_without_uri_means_muxed():
    master = AUDIO_MASTER.replace(',URI="a/main.m3u8"', "").replace(',URI="a/de.m3u8"', "")
    res, reader = _resolve(master, {BASE + "v/index.m3u8": media_playlist(3)})
    assert res.audio_muxed and res.audio == () and len(reader.reads) == 1


def test_missing_variant_playlist_is_source_not_found():
    with pytest.raises(SourceNotFound) as e:
        _resolve(VARIANTS, {})
    assert e.value.obj == BASE + "hi/index.m3u8"


@pytest.mark.parametrize(
    ("master", "line", "words"),
    [
        ("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n", 2, "without a URI"),
        (
            '#EXTM3U\n#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=1,URI="i.m3u8"\n'
            "#EXT-X-STREAM-INF:BANDWIDTH=1\n\n",
            3,
            "without a URI",
        ),
        ("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,RESOLUTION=big\nv.m3u8\n", 2, "RESOLUTION"),
        ("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=lots\nv.m3u8\n", 2, "BANDWIDTH"),
    ],
)
def test_malformed_master(master, line, words):
    with pytest.raises(MediaError) as e:
        _resolve(master, {})
    assert e.value.obj == LOCATION
    assert f"line {line}:" in e.value.message and words in e.value.message


@pytest.mark.parametrize(
    "master",
    [
        '#EXTM3U\n#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=1,URI="i.m3u8"\n',
        '#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="a",URI="a.m3u8"\n\n',
    ],
)
def test_master_without_variants(master):
    with pytest.raises(MediaError) as e:
        _resolve(master, {})
    assert e.value.obj == LOCATION
    assert "line 2: master playlist lists no variants" in e.value.message


def test_stream_inf_followed_by_another_stream_inf():
    master = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n#EXT-X-STREAM-INF:BANDWIDTH=2\nv.m3u8\n"
    with pytest.raises(MediaError) as e:
        _resolve(master, {})
    assert "line 2: EXT-X-STREAM-INF without a URI" in e.value.message


def test_variant_that_is_itself_a_master_is_refused():
    files = {BASE + "hi/index.m3u8": VARIANTS}
    with pytest.raises(MediaError) as e:
        _resolve(VARIANTS, files)
    assert e.value.obj == BASE + "hi/index.m3u8"


def test_master_with_crlf_and_pdt_in_variant_with_offset():
    media = media_playlist(3).replace(iso(EPOCH), "2019-07-04T17:20:00.000+02:00")
    res, _ = _resolve(VARIANTS.replace("\n", "\r\n"), {BASE + "hi/index.m3u8": media})
    assert res.epoch_ms_at_zero == EPOCH
