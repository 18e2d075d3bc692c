"""Write synthetic HLS archives: MPEG-TS or fMP4, master playlists, PDT, discontinuities, gaps."""

from __future__ import annotations

import functools
import io
import itertools
import math
from fractions import Fraction
from pathlib import Path

import av

from pipeline.synthetic.dash import Part, encode_parts, in_gap, iso_time, visible, write_atomic
from pipeline.synthetic.encode import Segment, Track
from pipeline.synthetic.spec import ArchiveSpec

TS_OFFSET = 10  # s; MPEG-TS timestamps rarely start at 0, and B-frames need room below
AUDIO_GROUP = "aud"


def discontinuity_cut(spec: ArchiveSpec, seconds: float | None) -> list[int]:
    """Frame index of the first segment boundary at or after ``seconds``."""
    if seconds is None:
        return []
    for a, _ in spec.segment_bounds(spec.first_frame, spec.end_frame)[1:]:
        if a / spec.fps >= seconds - 1e-9:
            return [a]
    raise ValueError(f"discontinuity_at={seconds} is not before the last segment")


@functools.lru_cache(maxsize=512)
def ts_segment(video: Track, audio: Track | None, index: int, zero: Fraction) -> bytes:
    """Remux segment ``index`` of ``video`` (and the matching audio) into MPEG-TS.

    TS time = archive time - ``zero`` + TS_OFFSET, so timestamps run on across segments
    and restart after a discontinuity.
    """
    sources = [(video, video.segments[index])]
    if audio is not None:
        sources.append((audio, audio.segments[index]))
    out_buf = io.BytesIO()
    with av.open(out_buf, "w", format="mpegts") as out:
        inputs = [av.open(io.BytesIO(track.init + seg.data), "r") for track, seg in sources]
        try:
            queued: list[tuple[float, int, av.Packet]] = []
            for n, (container, (track, _)) in enumerate(zip(inputs, sources, strict=True)):
                src = container.streams[0]
                dst = out.add_stream_from_template(src)
                shift = round((track.origin - zero + TS_OFFSET) * track.timescale) - track.pto
                for packet in container.demux(src):
                    if packet.size == 0 or packet.pts is None or packet.dts is None:
                        continue
                    packet.pts += shift
                    packet.dts += shift
                    packet.stream = dst
                    queued.append((float(packet.dts * packet.time_base), n, packet))
            for _, _, packet in sorted(queued, key=lambda q: (q[0], q[1])):
                out.mux(packet)
        finally:
            for container in inputs:
                container.close()
    return out_buf.getvalue()


def _pdt(spec: ArchiveSpec, seconds: float) -> str:
    assert spec.epoch_ms is not None
    return iso_time(spec.epoch_ms + round(seconds * 1000))


def media_playlist(
    spec: ArchiveSpec,
    parts: list[Part],
    rep_id: str,
    *,
    container: str,
    prefix: str,
    pdt: bool,
    gap: tuple[float, float] | None,
    live: bool,
    until: float | None,
    files: dict[str, bytes],
) -> str:
    """One media playlist (video variant ``rep_id``, or "audio"); its files go into ``files``.

    ``prefix`` is where the segments lie relative to the playlist.
    """
    ext = "ts" if container == "ts" else "m4s"
    entries: list[str] = []
    spans: list[float] = []  # TS segments carry the video segment's span; audio its own
    for part in parts:
        track, audio = _part_tracks(part, rep_id, container)
        init = None
        if container == "fmp4":
            init = f"{prefix}init{part.index}.mp4" if len(parts) > 1 else f"{prefix}init.mp4"
            files[init] = track.init
        listed = list(itertools.takewhile(lambda s: visible(s, until), track.segments))
        if listed:
            entries += _part_head(spec, part, listed[0], init, pdt)
        for i, seg in enumerate(listed):
            name = f"{prefix}seg{len(spans)}.{ext}"
            if in_gap(seg, gap):
                entries.append("#EXT-X-GAP")
            elif container == "ts":
                zero = part.start if part.index > 0 else Fraction(0)
                files[name] = ts_segment(track, audio, i, zero)
            else:
                files[name] = seg.data
            spans.append(seg.end - seg.start)
            entries += [f"#EXTINF:{spans[-1]:.6f},", name]
    head = _playlist_head(container, gap, live, max([1.0, *spans]))
    return "\n".join(head + entries + ([] if live else ["#EXT-X-ENDLIST"])) + "\n"


def _part_tracks(part: Part, rep_id: str, container: str) -> tuple[Track, Track | None]:
    """The track listed for ``rep_id`` in ``part``, and the audio muxed into its TS segments."""
    if rep_id == "audio":
        assert part.audio is not None
        return part.audio.track, None
    track = next(r.track for r in part.video if r.id == rep_id)
    return track, part.audio.track if part.audio and container == "ts" else None


def _part_head(
    spec: ArchiveSpec, part: Part, first: Segment, init: str | None, pdt: bool
) -> list[str]:
    """The tags before a part's first segment: discontinuity, its init section, its clock."""
    lines = ["#EXT-X-DISCONTINUITY"] if part.index > 0 else []
    if init is not None:
        lines.append(f'#EXT-X-MAP:URI="{init}"')
    if pdt and spec.epoch_ms is not None:
        lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{_pdt(spec, first.start)}")
    return lines


def _playlist_head(
    container: str, gap: tuple[float, float] | None, live: bool, longest: float
) -> list[str]:
    head = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{8 if gap else (7 if container == 'fmp4' else 3)}",
        f"#EXT-X-TARGETDURATION:{math.floor(longest + 0.5)}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    if not live:
        head.insert(4, "#EXT-X-PLAYLIST-TYPE:VOD")
    return head


def master_playlist(spec: ArchiveSpec, parts: list[Part], container: str) -> str:
    part = parts[0]
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{7 if container == 'fmp4' else 3}"]
    lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
    separate_audio = container == "fmp4" and part.audio is not None
    if separate_audio:
        lines.append(
            f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="{AUDIO_GROUP}",NAME="main",LANGUAGE="und",'
            'DEFAULT=YES,AUTOSELECT=YES,CHANNELS="1",URI="audio/index.m3u8"'
        )
    for rep in part.video:  # low resolution first: the reader must pick, not take the first
        track = rep.track
        codecs = track.codecs + (",mp4a.40.2" if part.audio else "")
        bandwidth = track.bandwidth + (part.audio.track.bandwidth if part.audio else 0)
        attrs = [
            f"BANDWIDTH={int(bandwidth * 1.2)}",
            f"AVERAGE-BANDWIDTH={bandwidth}",
            f'CODECS="{codecs}"',
            f"RESOLUTION={track.width}x{track.height}",
            f"FRAME-RATE={float(spec.fps):.3f}",
        ]
        if separate_audio:
            attrs.append(f'AUDIO="{AUDIO_GROUP}"')
        lines.append("#EXT-X-STREAM-INF:" + ",".join(attrs))
        lines.append(f"{rep.id}/index.m3u8")
    return "\n".join(lines) + "\n"


def render_hls(
    spec: ArchiveSpec,
    parts: list[Part],
    *,
    container: str = "ts",
    master: bool = True,
    pdt: bool = True,
    gap: tuple[float, float] | None = None,
    live: bool = False,
    until: float | None = None,
    name: str = "index.m3u8",
) -> dict[str, bytes]:
    """Every file of the archive (relative path -> bytes), playlists included."""
    if container not in ("ts", "fmp4"):
        raise ValueError(f"container must be 'ts' or 'fmp4', not {container!r}")
    files: dict[str, bytes] = {}

    def playlist(rep_id: str, prefix: str, into: dict[str, bytes]) -> bytes:
        text = media_playlist(
            spec,
            parts,
            rep_id,
            container=container,
            prefix=prefix,
            pdt=pdt,
            gap=gap,
            live=live,
            until=until,
            files=into,
        )
        return text.encode()

    if not master:
        # A lone media playlist: the highest variant, its segments in a subfolder.
        top = parts[0].video[-1].id
        files[name] = playlist(top, f"{top}/", files)
        return files
    renditions = [rep.id for rep in parts[0].video]
    if container == "fmp4" and parts[0].audio is not None:
        renditions.append("audio")
    for rep_id in renditions:
        sub: dict[str, bytes] = {}
        files[f"{rep_id}/index.m3u8"] = playlist(rep_id, "", sub)
        files.update({f"{rep_id}/{k}": v for k, v in sub.items()})
    files[name] = master_playlist(spec, parts, container).encode()
    return files


def write_hls(
    out_dir: Path,
    spec: ArchiveSpec,
    *,
    container: str = "ts",
    master: bool = True,
    pdt: bool = True,
    discontinuity_at: float | None = None,
    gap: tuple[float, float] | None = None,
    live: bool = False,
    name: str = "index.m3u8",
) -> Path:
    """Write an HLS archive into ``out_dir``; returns the master (or media) playlist path.

    TS segments carry audio muxed in; fMP4 variants (EXT-X-MAP) share a separate audio
    rendition, reachable through the master playlist.  ``discontinuity_at`` (archive s):
    from the first segment boundary at or after it, media timestamps restart (new encoder,
    EXT-X-DISCONTINUITY, a new PROGRAM-DATE-TIME).  ``gap``: segments whose middle lies
    inside are listed with EXT-X-GAP and their files are not written.
    """
    parts = encode_parts(spec, discontinuity_cut(spec, discontinuity_at))
    files = render_hls(
        spec, parts, container=container, master=master, pdt=pdt, gap=gap, live=live, name=name
    )
    out_dir = Path(out_dir)
    for rel, data in files.items():
        if rel != name:
            write_atomic(out_dir / rel, data)
    manifest = out_dir / name
    write_atomic(manifest, files[name])  # last, so a reader never sees a list without media
    return manifest
