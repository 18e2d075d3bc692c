"""Write synthetic DASH archives: every addressing flavour, periods, gaps, static or live."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

from pipeline.synthetic.boxes import sidx_box
from pipeline.synthetic.encode import Segment, Track, encode_audio, encode_video
from pipeline.synthetic.spec import ArchiveSpec

LAYOUTS = ("timeline-time", "timeline-number", "template-duration", "segment-list", "segment-base")
MPD_NS = "urn:mpeg:dash:schema:mpd:2011"
_CHANNELS_SCHEME = "urn:mpeg:dash:23003:3:audio_channel_configuration:2011"


@dataclass(frozen=True)
class Rep:
    id: str
    track: Track


@dataclass(frozen=True)
class Part:
    """One Period: frames [first_frame, end_frame) encoded with their own timestamps."""

    index: int
    first_frame: int
    end_frame: int
    start: Fraction  # archive time of Period@start
    video: tuple[Rep, ...]  # low resolution first, so "pick the highest" must look
    audio: Rep | None

    def pto(self, track: Track) -> int:
        """Media ticks at the Period start (its presentationTimeOffset)."""
        return track.pto + round((self.start - track.origin) * track.timescale)


def low_size(spec: ArchiveSpec) -> tuple[int, int] | None:
    w, h = (spec.width // 2) & ~1, (spec.height // 2) & ~1
    return (w, h) if w >= 32 and h >= 18 else None


def build_parts(spec: ArchiveSpec, periods: int = 1) -> list[Part]:
    """Encode the archive, split into ``periods`` parts on segment boundaries."""
    bounds = spec.segment_bounds(spec.first_frame, spec.end_frame)
    if not 1 <= periods <= len(bounds):
        raise ValueError(f"periods={periods} needs 1..{len(bounds)} (one segment at least each)")
    return encode_parts(spec, [bounds[len(bounds) * i // periods][0] for i in range(1, periods)])


def encode_parts(spec: ArchiveSpec, cuts: list[int]) -> list[Part]:
    """Encode frames split at the frame indices ``cuts`` (segment boundaries)."""
    edges = [spec.first_frame, *cuts, spec.end_frame]
    low = low_size(spec)
    parts = []
    for i in range(len(edges) - 1):
        a, b = edges[i], edges[i + 1]
        restart = i > 0  # a new Period restarts its media timestamps, as a new encoder would
        video = [Rep("vhigh", encode_video(spec, a, b, spec.width, spec.height, restart))]
        if low is not None:
            video.insert(0, Rep("vlow", encode_video(spec, a, b, low[0], low[1], restart)))
        audio = Rep("audio", encode_audio(spec, a, b, restart)) if spec.audio else None
        parts.append(Part(i, a, b, Fraction(a) / spec.fps, tuple(video), audio))
    return parts


def iso_duration(seconds: float | Fraction) -> str:
    return f"PT{_decimal(seconds)}S"


def _decimal(value: float | Fraction) -> str:
    text = f"{float(value):.6f}".rstrip("0").rstrip(".")
    return text or "0"


def iso_time(epoch_ms: int) -> str:
    dt = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def in_gap(seg: Segment, gap: tuple[float, float] | None) -> bool:
    return gap is not None and gap[0] <= (seg.start + seg.end) / 2 < gap[1]


def visible(seg: Segment, until: float | None) -> bool:
    return until is None or seg.end <= until + 1e-6


class _Writer:
    def __init__(
        self,
        spec: ArchiveSpec,
        parts: list[Part],
        layout: str,
        gap: tuple[float, float] | None,
        until: float | None,
    ) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, not {layout!r}")
        if layout == "segment-base" and gap is not None:
            raise ValueError("segment-base keeps one file per representation: no gap possible")
        if layout in ("template-duration", "segment-list") and (
            spec.first_frame % spec.segment_frames
        ):
            raise ValueError(f"{layout} needs first_frame on a segment boundary")
        self.spec, self.parts, self.layout, self.gap, self.until = spec, parts, layout, gap, until
        self.files: dict[str, bytes] = {}

    def _prefix(self, part: Part) -> str:
        return f"period{part.index}/" if len(self.parts) > 1 else ""

    def _number(self, part: Part, seg: Segment) -> int:
        return round((Fraction(seg.start) - part.start) / self.spec.segment_duration) + 1

    def segment_template(self, parent: ET.Element, part: Part, rep: Rep) -> None:
        track, prefix = rep.track, self._prefix(part)
        attrs = {
            "timescale": str(track.timescale),
            "presentationTimeOffset": str(part.pto(track)),
            "initialization": f"{prefix}$RepresentationID$/init.mp4",
        }
        if self.layout == "timeline-time":
            attrs["media"] = f"{prefix}$RepresentationID$/t$Time$.m4s"
        elif self.layout == "timeline-number":
            attrs["media"] = f"{prefix}$RepresentationID$/n$Number$.m4s"
            attrs["startNumber"] = "1"
        else:
            attrs["media"] = f"{prefix}$RepresentationID$/seg-$Number%05d$.m4s"
            attrs["startNumber"] = "1"
            attrs["duration"] = str(round(self.spec.segment_duration * track.timescale))
        tmpl = ET.SubElement(parent, "SegmentTemplate", attrs)
        self.files[f"{prefix}{rep.id}/init.mp4"] = track.init
        listed = [s for s in track.segments if not in_gap(s, self.gap) and visible(s, self.until)]
        if self.layout == "template-duration":
            for seg in listed:
                self.files[f"{prefix}{rep.id}/seg-{self._number(part, seg):05d}.m4s"] = seg.data
            return
        timeline = ET.SubElement(tmpl, "SegmentTimeline")
        for t, d, r in _runs(listed):
            s_attrs = {"t": str(t), "d": str(d)}
            if r:
                s_attrs["r"] = str(r)
            ET.SubElement(timeline, "S", s_attrs)
        for n, seg in enumerate(listed, start=1):
            name = f"t{seg.media_start}" if self.layout == "timeline-time" else f"n{n}"
            self.files[f"{prefix}{rep.id}/{name}.m4s"] = seg.data

    def segment_list(self, parent: ET.Element, part: Part, rep: Rep) -> None:
        track, prefix = rep.track, self._prefix(part)
        seg_list = ET.SubElement(
            parent,
            "SegmentList",
            {
                "timescale": str(track.timescale),
                "presentationTimeOffset": str(part.pto(track)),
                "duration": str(round(self.spec.segment_duration * track.timescale)),
            },
        )
        ET.SubElement(seg_list, "Initialization", {"sourceURL": f"{prefix}{rep.id}/init.mp4"})
        self.files[f"{prefix}{rep.id}/init.mp4"] = track.init
        for seg in track.segments:
            if not visible(seg, self.until):
                break
            name = f"{prefix}{rep.id}/s{self._number(part, seg)}.m4s"
            ET.SubElement(seg_list, "SegmentURL", {"media": name})
            if not in_gap(seg, self.gap):
                self.files[name] = seg.data

    def segment_base(self, parent: ET.Element, part: Part, rep: Rep) -> None:
        track, prefix = rep.track, self._prefix(part)
        segs = [s for s in track.segments if visible(s, self.until)]
        sidx = sidx_box(
            track.timescale,
            segs[0].media_start if segs else 0,
            [(len(s.data), s.media_duration) for s in segs],
        )
        name = f"{prefix}{rep.id}.mp4"
        self.files[name] = track.init + sidx + b"".join(s.data for s in segs)
        first = len(track.init)
        ET.SubElement(parent, "BaseURL").text = name
        base = ET.SubElement(
            parent,
            "SegmentBase",
            {
                "timescale": str(track.timescale),
                "presentationTimeOffset": str(part.pto(track)),
                "indexRange": f"{first}-{first + len(sidx) - 1}",
                "indexRangeExact": "true",
            },
        )
        ET.SubElement(base, "Initialization", {"range": f"0-{first - 1}"})

    def addressing(self, parent: ET.Element, part: Part, rep: Rep) -> None:
        if self.layout == "segment-list":
            self.segment_list(parent, part, rep)
        elif self.layout == "segment-base":
            self.segment_base(parent, part, rep)
        else:
            self.segment_template(parent, part, rep)

    def period(self, root: ET.Element, part: Part) -> None:
        spec = self.spec
        period = ET.SubElement(
            root, "Period", {"id": f"p{part.index}", "start": iso_duration(part.start)}
        )
        per_rep = self.layout in ("segment-list", "segment-base") or not _same_timing(part.video)
        fps = spec.fps
        rate = str(fps.numerator) if fps.denominator == 1 else f"{fps.numerator}/{fps.denominator}"
        video = ET.SubElement(
            period,
            "AdaptationSet",
            {
                "id": "1",
                "contentType": "video",
                "mimeType": "video/mp4",
                "segmentAlignment": "true",
                "startWithSAP": "1",
                "frameRate": rate,
                "maxWidth": str(spec.width),
                "maxHeight": str(spec.height),
                "par": "16:9",
            },
        )
        if not per_rep:
            self.segment_template(video, part, part.video[0])
        for rep in part.video:
            el = ET.SubElement(
                video,
                "Representation",
                {
                    "id": rep.id,
                    "bandwidth": str(rep.track.bandwidth),
                    "codecs": rep.track.codecs,
                    "width": str(rep.track.width),
                    "height": str(rep.track.height),
                    "sar": "1:1",
                },
            )
            if per_rep:
                self.addressing(el, part, rep)
            elif rep is not part.video[0]:
                # The AdaptationSet's template serves every rep; only their files differ.
                self.segment_template(ET.Element("unused"), part, rep)
        if part.audio is None:
            return
        audio = ET.SubElement(
            period,
            "AdaptationSet",
            {
                "id": "2",
                "contentType": "audio",
                "mimeType": "audio/mp4",
                "lang": "und",
                "segmentAlignment": "true",
                "startWithSAP": "1",
            },
        )
        ET.SubElement(audio, "Role", {"schemeIdUri": "urn:mpeg:dash:role:2011", "value": "main"})
        rep = part.audio
        el = ET.SubElement(
            audio,
            "Representation",
            {
                "id": rep.id,
                "bandwidth": str(rep.track.bandwidth),
                "codecs": rep.track.codecs,
                "audioSamplingRate": str(rep.track.sample_rate),
            },
        )
        ET.SubElement(
            el, "AudioChannelConfiguration", {"schemeIdUri": _CHANNELS_SCHEME, "value": "1"}
        )
        self.addressing(el, part, rep)

    def mpd(self, dynamic: bool, publish_ms: int | None, time_shift_buffer: float) -> str:
        spec = self.spec
        attrs = {
            "xmlns": MPD_NS,
            "profiles": "urn:mpeg:dash:profile:isoff-live:2011",
            "type": "dynamic" if dynamic else "static",
            "minBufferTime": "PT2S",
        }
        if self.layout == "segment-base":
            attrs["profiles"] = "urn:mpeg:dash:profile:isoff-on-demand:2011"
        if spec.epoch_ms is not None:
            attrs["availabilityStartTime"] = iso_time(spec.epoch_ms)
        if dynamic:
            if spec.epoch_ms is None:
                raise ValueError("a dynamic MPD needs epoch_ms (availabilityStartTime)")
            attrs["publishTime"] = iso_time(publish_ms if publish_ms is not None else spec.epoch_ms)
            attrs["minimumUpdatePeriod"] = iso_duration(spec.segment_duration)
            attrs["timeShiftBufferDepth"] = iso_duration(time_shift_buffer)
            attrs["suggestedPresentationDelay"] = "PT4S"
        else:
            attrs["mediaPresentationDuration"] = iso_duration(spec.end_time)
        root = ET.Element("MPD", attrs)
        for part in self.parts:
            if self.until is not None and part.start > self.until + 1e-6 and part.index > 0:
                break
            self.period(root, part)
        ET.indent(root)
        return (
            '<?xml version="1.0" encoding="utf-8"?>\n'
            + ET.tostring(root, encoding="unicode")
            + "\n"
        )


def _same_timing(reps: tuple[Rep, ...]) -> bool:
    first = reps[0].track
    return all(
        r.track.timescale == first.timescale
        and r.track.pto == first.pto
        and [(s.media_start, s.media_duration) for s in r.track.segments]
        == [(s.media_start, s.media_duration) for s in first.segments]
        for r in reps
    )


def _runs(segments: list[Segment]) -> list[tuple[int, int, int]]:
    """SegmentTimeline S entries (t, d, r): equal durations folded into @r."""
    runs: list[list[int]] = []  # [t, d, r]
    for seg in segments:
        t, d, r = runs[-1] if runs else (0, 0, 0)
        if runs and (seg.media_start, seg.media_duration) == (t + d * (r + 1), d):
            runs[-1][2] += 1  # the run's next segment
        else:
            runs.append([seg.media_start, seg.media_duration, 0])
    return [(t, d, r) for t, d, r in runs]


def render_dash(
    spec: ArchiveSpec,
    parts: list[Part],
    *,
    layout: str,
    gap: tuple[float, float] | None = None,
    dynamic: bool = False,
    until: float | None = None,
    publish_ms: int | None = None,
    time_shift_buffer: float = 86_400.0,
) -> tuple[str, dict[str, bytes]]:
    """MPD text plus the files it refers to (relative path -> bytes)."""
    writer = _Writer(spec, parts, layout, gap, until)
    text = writer.mpd(dynamic, publish_ms, time_shift_buffer)
    return text, writer.files


def write_atomic(path: Path, data: bytes) -> None:
    """Readers of a growing archive must never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_dash(
    out_dir: Path,
    spec: ArchiveSpec,
    *,
    layout: str = "timeline-time",
    periods: int = 1,
    gap: tuple[float, float] | None = None,
    dynamic: bool = False,
    name: str = "stream.mpd",
    time_shift_buffer: float = 86_400.0,
) -> Path:
    """Write a DASH archive into ``out_dir``; returns the MPD path.

    ``gap`` (archive seconds): segments whose middle falls inside are left out of the
    timeline (timeline layouts) or their files are not written (duration/list layouts).
    A dynamic MPD lists everything recorded, published at the end of the recording.
    """
    out_dir = Path(out_dir)
    parts = build_parts(spec, periods)
    publish = None
    if dynamic and spec.epoch_ms is not None:
        publish = spec.epoch_ms + round(spec.end_time * 1000)
    text, files = render_dash(
        spec,
        parts,
        layout=layout,
        gap=gap,
        dynamic=dynamic,
        publish_ms=publish,
        time_shift_buffer=time_shift_buffer,
    )
    for rel, data in files.items():
        write_atomic(out_dir / rel, data)
    manifest = out_dir / name
    write_atomic(manifest, text.encode())
    return manifest
