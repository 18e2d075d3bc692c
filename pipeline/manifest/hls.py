"""HLS: master and media playlists (TS or fMP4) to the segments that cover a range.

A master playlist resolves to its highest-resolution variant (ties: the higher BANDWIDTH)
and, when that variant names an AUDIO group with its own playlist, to that rendition too
(DEFAULT=YES preferred).  Otherwise the audio travels inside the variant's segments.

The archive timeline and the wall-clock anchor come from the video media playlist (see
:mod:`pipeline.manifest.hls_scan`).  ``Resolution.live_edge`` is where the listed media
ends, also for a finished playlist; ``is_live`` says whether waiting can bring more.
``SegmentRef.media_offset`` is always None (TS and fMP4 alike): align each segment's
earliest presentation to its ``start`` (see :func:`pipeline.manifest.hls_scan.scan_media`).
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.errors import MediaError
from pipeline.manifest.hls_scan import MediaScan, scan_media
from pipeline.manifest.hls_tags import (
    STREAM_INF,
    Playlist,
    attributes,
    last_line,
    read_playlist,
    wall_clock_anchor,
)
from pipeline.manifest.request import RangeRequest
from pipeline.model import Resolution, SegmentRef, TrackInfo
from pipeline.storage import BlobReader, join_location

_AUDIO_CODECS = ("mp4a", "ac-3", "ec-3", "ac-4", "opus", "flac", "fLaC", "mp3", "alac", "dts")


@dataclass(frozen=True, slots=True)
class Variant:
    uri: str  # absolute location of the media playlist
    bandwidth: int
    width: int | None
    height: int | None
    codecs: tuple[str, ...]  # empty when the master does not say
    frame_rate: float | None
    audio_group: str | None


@dataclass(frozen=True, slots=True)
class Rendition:
    group: str
    uri: str | None  # None: the rendition is carried in the variant's own segments
    default: bool
    autoselect: bool
    channels: int | None


def parse_master(source: Playlist) -> tuple[list[Variant], list[Rendition]]:
    """Variants (EXT-X-STREAM-INF + URI line) and AUDIO renditions (EXT-X-MEDIA)."""
    where = source.location
    variants: list[Variant] = []
    renditions: list[Rendition] = []
    pending: tuple[int, dict[str, str]] | None = None
    for n, line in enumerate(source.lines, 1):
        if line.startswith(STREAM_INF):
            if pending is not None:
                break  # the previous EXT-X-STREAM-INF has no URI
            pending = (n, attributes(line[len(STREAM_INF) :]))
        elif line.startswith("#EXT-X-MEDIA:"):
            attrs = attributes(line[len("#EXT-X-MEDIA:") :])
            if attrs.get("TYPE") == "AUDIO":
                renditions.append(
                    Rendition(
                        group=attrs.get("GROUP-ID", ""),
                        uri=join_location(where, attrs["URI"]) if attrs.get("URI") else None,
                        default=attrs.get("DEFAULT") == "YES",
                        autoselect=attrs.get("AUTOSELECT") == "YES",
                        channels=_channels(attrs.get("CHANNELS")),
                    )
                )
        elif line.strip() and not line.startswith("#"):
            if pending is None:
                continue  # a URI not announced by EXT-X-STREAM-INF is not a variant
            variants.append(_variant(where, pending[0], pending[1], line.strip()))
            pending = None
    if pending is not None:
        raise MediaError(f"line {pending[0]}: EXT-X-STREAM-INF without a URI", obj=where)
    if not variants:
        raise MediaError(f"line {last_line(source)}: master playlist lists no variants", obj=where)
    return variants, renditions


def best_variant(variants: list[Variant]) -> Variant:
    """Highest resolution (pixels); ties and variants without RESOLUTION by BANDWIDTH."""
    return max(variants, key=lambda v: ((v.width or 0) * (v.height or 0), v.bandwidth))


def audio_rendition(variant: Variant, renditions: list[Rendition]) -> Rendition | None:
    group = [r for r in renditions if variant.audio_group and r.group == variant.audio_group]
    if not group:
        return None
    return max(group, key=lambda r: (r.default, r.autoselect))  # max keeps the first on ties


def resolve_hls(
    reader: BlobReader, manifest: str, data: bytes, request: RangeRequest
) -> Resolution:
    """Resolve ``request`` against the HLS playlist at ``manifest`` (its bytes: ``data``)."""
    top = read_playlist(data, manifest)
    variant: Variant | None = None
    rendition: Rendition | None = None
    if top.master:
        variants, renditions = parse_master(top)
        variant = best_variant(variants)
        rendition = audio_rendition(variant, renditions)
        media = read_playlist(reader.read(variant.uri), variant.uri)
        if media.master:
            raise MediaError("line 1: variant is itself a master playlist", obj=variant.uri)
    else:
        media = top

    epoch0 = wall_clock_anchor(media)
    window = request.window(epoch0)
    start, end = window.start, window.end
    video = scan_media(media, start, end, epoch0)
    notes = list(video.notes)
    if video.finished and not video.has_segments:
        raise MediaError(
            f"line {last_line(media)}: finished playlist lists no segments", obj=media.location
        )
    window.check_overlaps(0.0, video.end, is_live=not video.finished, obj=manifest)

    audio_segments: tuple[SegmentRef, ...] = ()
    live_edge = video.end
    video_track, audio_track = _tracks(variant, rendition)
    if rendition is not None and rendition.uri is not None:
        audio = _scan_audio(reader, rendition.uri, start, end, epoch0)
        audio_segments = audio.segments
        audio_muxed = False
        audio_track = audio_track or TrackInfo("audio", "", channels=rendition.channels)
        live_edge = min(live_edge, audio.end)
        notes.extend(audio.notes)
        notes.extend(
            f"audio playlist gap [{g.start:.3f}, {g.end:.3f}) s (video continues)"
            for g in audio.gaps
        )
    elif variant is not None and variant.codecs:
        audio_muxed = audio_track is not None  # CODECS names every codec in the variant
    else:
        audio_muxed = True  # TS (and ffmpeg's fMP4) carry audio beside the video
        notes.append("audio codec not declared (no CODECS); probe the segments for audio")

    return Resolution(
        manifest=manifest,
        kind="hls",
        clock=window.clock,
        epoch_ms_at_zero=epoch0,
        start=start,
        end=end,
        video=video.segments,
        audio=audio_segments,
        video_track=video_track,
        audio_track=audio_track,
        audio_muxed=audio_muxed,
        gaps=window.with_missing(video.gaps, 0.0),  # HLS archive time 0 is the first segment
        is_live=not video.finished,
        live_edge=live_edge,
        archive_start=0.0,
        notes=tuple(notes),
        preroll=video.preroll,
        postroll=video.postroll,
    )


def _scan_audio(
    reader: BlobReader, uri: str, start: float, end: float, epoch0: int | None
) -> MediaScan:
    playlist = read_playlist(reader.read(uri), uri)
    if playlist.master:
        raise MediaError("line 1: audio rendition is a master playlist", obj=uri)
    own = wall_clock_anchor(playlist)
    if epoch0 is not None and own is not None:
        return scan_media(playlist, start, end, epoch0, origin=(own - epoch0) / 1000.0)
    # without a shared wall clock, both playlists are taken to start together
    return scan_media(playlist, start, end, None)


def _tracks(
    variant: Variant | None, rendition: Rendition | None
) -> tuple[TrackInfo, TrackInfo | None]:
    if variant is None:  # a bare media playlist says nothing about its streams
        return TrackInfo("video", ""), None
    video_codecs = [c for c in variant.codecs if not c.startswith(_AUDIO_CODECS)]
    audio_codecs = [c for c in variant.codecs if c.startswith(_AUDIO_CODECS)]
    video = TrackInfo(
        "video",
        video_codecs[0] if video_codecs else "",
        bandwidth=variant.bandwidth or None,
        width=variant.width,
        height=variant.height,
        frame_rate=variant.frame_rate,
    )
    audio = None
    if audio_codecs:
        audio = TrackInfo(
            "audio", audio_codecs[0], channels=rendition.channels if rendition else None
        )
    return video, audio


def _variant(where: str, n: int, attrs: dict[str, str], uri: str) -> Variant:
    width = height = None
    if "RESOLUTION" in attrs:
        w, _, h = attrs["RESOLUTION"].lower().partition("x")
        if not (w.isdigit() and h.isdigit()):
            raise MediaError(f"line {n}: bad RESOLUTION {attrs['RESOLUTION']!r}", obj=where)
        width, height = int(w), int(h)
    try:
        bandwidth = int(attrs.get("BANDWIDTH", "0"))
        frame_rate = float(attrs["FRAME-RATE"]) if "FRAME-RATE" in attrs else None
    except ValueError as e:
        raise MediaError(f"line {n}: bad BANDWIDTH or FRAME-RATE", obj=where) from e
    codecs = tuple(c.strip() for c in attrs.get("CODECS", "").split(",") if c.strip())
    return Variant(
        uri=join_location(where, uri),
        bandwidth=bandwidth,
        width=width,
        height=height,
        codecs=codecs,
        frame_rate=frame_rate,
        audio_group=attrs.get("AUDIO"),
    )


def _channels(value: str | None) -> int | None:
    head = (value or "").split("/")[0]
    return int(head) if head.isdigit() else None
