"""Fetching segments and mapping their packets onto the archive timeline.

A segment's bytes are its init segment (fMP4) followed by the media segment, opened with
``av.open(BytesIO)``.  Packet times become archive seconds:
``archive_time = pts_seconds + offset`` (``clock.TrackClock``).  When the manifest does not
tie media time to the archive (``media_offset is None``: HLS), the run's head segment
(``SegmentRef.run_head``) is read narrowly and its first keyframe aligned to its start: the
one picture whose playlist time every packager agrees on.  Without a head, the segment's own
earliest presentation is aligned to ``SegmentRef.start``.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

import av
from av.bitstream import BitStreamFilterContext

from pipeline.errors import MediaError, SourceNotFound
from pipeline.media.clock import FixedClock, TrackClock
from pipeline.media.demux import RawTrack, collect, probe_options, repair_keyframe_pts
from pipeline.media.nal import MP4_TO_ANNEXB, AnnexBNormalizer
from pipeline.media.timeline import EPS
from pipeline.model import ByteRange, SegmentRef
from pipeline.storage import BlobReader

HEAD_BYTES = 64 * 1024


class SegmentUnusable(Exception):
    """A segment is missing or cannot be demuxed; the caller decides gap or error."""

    def __init__(self, ref: SegmentRef, reason: str, detail: str) -> None:
        super().__init__(f"{reason} segment {ref.url}: {detail}")
        self.ref = ref
        self.reason = reason  # "missing" | "corrupt"
        self.detail = detail


@dataclass(frozen=True)
class VideoInfo:
    codec: Literal["h264", "hevc"]
    width: int
    height: int
    pix_fmt: str
    fps: Fraction
    profile: str | None
    level: int | None
    extradata: bytes  # Annex B parameter sets


@dataclass(frozen=True)
class AudioInfo:
    codec: str
    sample_rate: int
    channels: int
    layout: str
    frame_size: int  # samples per packet (1024 for AAC-LC)
    extradata: bytes | None  # AudioSpecificConfig for AAC


@dataclass
class TimedPacket:
    data: bytes
    pts: float  # archive seconds
    dts: float
    duration: float
    key: bool


@dataclass
class SegmentMedia:
    ref: SegmentRef
    video: list[TimedPacket] = field(default_factory=list)
    audio: list[TimedPacket] = field(default_factory=list)
    video_info: VideoInfo | None = None
    audio_info: AudioInfo | None = None
    raw: bytes = b""  # the segment's bytes, kept only to give output streams a template
    # Archive time from which a truncated segment's media is lost (see ``_cut_truncated``).
    damaged_from: float | None = None


@dataclass
class _Opened:
    """What ``TrackDemuxer._collect`` read out of one segment's container."""

    is_ts: bool
    video: RawTrack | None = None
    audio: RawTrack | None = None
    extradata: bytes | None = None  # the video stream's Annex B parameter sets (TS), if any


class SegmentFetcher:
    """Reads segment bytes, caching init segments (shared by every segment of a track)."""

    def __init__(self, reader: BlobReader) -> None:
        self.reader = reader
        self._init: dict[tuple[str, ByteRange | None], bytes] = {}

    def fetch(self, ref: SegmentRef) -> bytes:
        try:
            init = b""
            if ref.init_url is not None:
                key = (ref.init_url, ref.init_range)
                if key not in self._init:
                    self._init[key] = self.reader.read(ref.init_url, ref.init_range)
                init = self._init[key]
            return init + self.reader.read(ref.url, ref.byte_range)
        except SourceNotFound as e:
            raise SegmentUnusable(ref, "missing", str(e)) from e


def leading_wanted(packets: list[TimedPacket], start: float) -> bool:
    """Whether a frame at or after ``start`` presents before the segment's first keyframe.

    Such a frame is an open-GOP leading picture: decoded after the keyframe, it references
    the segment before (``Resolution.preroll``).
    """
    key = next((p for p in packets if p.key), None)
    if key is None:
        return False
    return any(start - EPS <= p.pts < key.pts - EPS for p in packets)


class TrackDemuxer:
    """Demuxes the segments of one track (video, possibly with muxed audio, or audio)."""

    def __init__(self, fetcher: SegmentFetcher, *, want_video: bool, want_audio: bool) -> None:
        self.fetcher = fetcher
        self.want_video = want_video
        self.want_audio = want_audio
        self.clock = TrackClock()
        self._normalizer: AnnexBNormalizer | None = None
        # Video facts per init segment, learnt from the first segment that uses it.
        self._facts: dict[tuple[str, ByteRange | None], VideoInfo] = {}
        self._heads: dict[tuple[str, ByteRange | None], float | None] = {}

    def load(self, ref: SegmentRef) -> SegmentMedia:
        try:
            data = self.fetcher.fetch(ref)
            try:
                return self._demux(ref, data)
            except (av.FFmpegError, ValueError, IndexError) as e:
                raise SegmentUnusable(ref, "corrupt", str(e)) from e
        except SegmentUnusable:
            self.clock.skipped(ref)
            raise

    def load_out_of_turn(self, ref: SegmentRef) -> SegmentMedia:
        """Load a neighbour of the segment just loaded (the preroll before it, the postroll
        after it), on that segment's clock.

        Its media timestamps run on with the loaded segment's (same run), so the offset
        already learnt applies to it; the clock is left as it was for the segments after.
        """
        clock = self.clock
        offset = clock.current
        self.clock = FixedClock(offset) if offset is not None else TrackClock()
        try:
            return self.load(ref)
        finally:
            self.clock = clock

    def _demux(self, ref: SegmentRef, data: bytes) -> SegmentMedia:
        out = SegmentMedia(ref, raw=data)
        init = (ref.init_url, ref.init_range) if ref.init_url is not None else None
        known = self._facts.get(init) if init is not None and not self.want_audio else None
        probe = probe_options(known is not None)
        with av.open(io.BytesIO(data), "r", stream_options=probe) as container:
            opened = self._collect(container, ref, out, known)
        if opened.video is not None:
            repair_keyframe_pts(opened.video)
        clocked = opened.video or opened.audio
        if clocked is None:
            return out
        start, media = ref.start, float(clocked.anchor() * clocked.time_base)
        head = ref.run_head
        if head is not None and self.clock.infers(ref):
            # Learn the run's offset at its head, where the playlist time and the media agree
            # for every packager; the segment's own earliest picture may be a leading one.
            at_head = self._head_time(head)
            if at_head is not None:
                start, media = head.start, at_head
        offset = self.clock.offset_for(ref, start, media)
        if opened.video is not None:
            self._map_video(out, opened, offset)
            if init is not None and known is None:
                assert out.video_info is not None
                self._facts[init] = dataclasses.replace(out.video_info, extradata=b"")
            if opened.is_ts:
                _cut_truncated(out, len(data))
        if opened.audio is not None:
            self._map_audio(out, opened.audio, offset)
        return out

    def _collect(
        self,
        container: av.container.InputContainer,
        ref: SegmentRef,
        out: SegmentMedia,
        known: VideoInfo | None,
    ) -> _Opened:
        """The wanted streams' facts (into ``out``) and packets, in stream ticks."""
        vs = container.streams.video[0] if container.streams.video else None
        aus = container.streams.audio[0] if container.streams.audio else None
        opened = _Opened(is_ts="mpegts" in container.format.name)
        if self.want_video:
            if vs is None:
                raise ValueError("no video stream")
            out.video_info = known or _video_info(vs, ref)
            opened.video, opened.extradata = _video_track(vs, out.video_info.codec)
        if self.want_audio and aus is not None:
            out.audio_info = _audio_info(aus)
            opened.audio = _audio_track(aus, adts=opened.is_ts and out.audio_info.codec == "aac")
        streams = [s for s, t in ((vs, opened.video), (aus, opened.audio)) if t is not None]
        if not streams:
            return opened
        collect(container.demux(streams), vs, opened.video, opened.audio)
        if opened.video is not None and not opened.video.packets:
            raise ValueError("no video packets")
        if opened.audio is not None and not opened.audio.packets:
            if opened.video is None:
                raise ValueError("no audio packets")
            opened.audio = None
        return opened

    def _map_video(self, out: SegmentMedia, opened: _Opened, offset: float) -> None:
        assert opened.video is not None and out.video_info is not None
        if self._normalizer is None:
            self._normalizer = AnnexBNormalizer(out.video_info.codec, opened.extradata)
        norm = self._normalizer
        # Filtered MP4 video has the init segment's sets on every keyframe already: only
        # keyframes can teach the normalizer anything (the others' scan is ~40% of the step).
        every = opened.video.bsf is None
        tb = opened.video.time_base
        for data, pts, dts, dur, key in opened.video.packets:
            annexb = norm.convert(data, key) if key or every else data
            out.video.append(_timed(annexb, pts, dts, dur, key, tb, offset))
        out.video_info = dataclasses.replace(out.video_info, extradata=norm.extradata())

    @staticmethod
    def _map_audio(out: SegmentMedia, audio: RawTrack, offset: float) -> None:
        if audio.new_extradata and out.audio_info is not None and not out.audio_info.extradata:
            out.audio_info = dataclasses.replace(out.audio_info, extradata=audio.new_extradata)
        for data, pts, dts, dur, _key in audio.packets:
            out.audio.append(_timed(data, pts, dts, dur, True, audio.time_base, offset))

    def _head_time(self, head: SegmentRef) -> float | None:
        """Media time (s) of the first keyframe of a run's head segment, read narrowly."""
        key = (head.url, head.byte_range)
        if key not in self._heads:
            self._heads[key] = None
            for ref in (_prefix(head), head):
                try:
                    data = self.fetcher.fetch(ref)
                    with av.open(io.BytesIO(data), "r") as container:
                        opened = self._collect(container, ref, SegmentMedia(ref), None)
                except (SegmentUnusable, av.FFmpegError, ValueError, IndexError, MediaError):
                    continue
                track = opened.video or opened.audio
                if track is not None:
                    self._heads[key] = float(track.first_key() * track.time_base)
                    break
        return self._heads[key]


def _video_track(stream: av.VideoStream, codec: str) -> tuple[RawTrack, bytes | None]:
    """An empty track for ``stream``, and its Annex B parameter sets when it has no filter.

    An avcC/hvcC record means MP4 samples (NAL lengths, sets out of band): they go through
    ``MP4_TO_ANNEXB``.  MPEG-TS video is Annex B already.
    """
    assert stream.time_base is not None
    track = RawTrack(stream.time_base)
    record = stream.codec_context.extradata
    if record and record[0] == 1:
        track.bsf = BitStreamFilterContext(MP4_TO_ANNEXB[codec], stream)
        return track, None
    return track, record


def _audio_track(stream: av.AudioStream, *, adts: bool) -> RawTrack:
    """An empty track for ``stream``; ADTS frames (AAC in MPEG-TS) lose their headers on the
    way in and give the AudioSpecificConfig (aac_adtstoasc)."""
    assert stream.time_base is not None
    track = RawTrack(stream.time_base)
    if adts:
        track.bsf = BitStreamFilterContext("aac_adtstoasc", stream)
    return track


def _prefix(ref: SegmentRef) -> SegmentRef:
    """The first ``HEAD_BYTES`` of a segment: enough to hold its first keyframe's timestamps."""
    offset, length = (ref.byte_range.offset, ref.byte_range.length) if ref.byte_range else (0, None)
    size = HEAD_BYTES if length is None else min(length, HEAD_BYTES)
    return dataclasses.replace(ref, byte_range=ByteRange(offset, size))


def _cut_truncated(seg: SegmentMedia, size: int) -> None:
    """Mark where a truncated MPEG-TS segment's media stops, and drop its broken frame.

    A cut-off TS file still demuxes: its last packet is partial and the frames after it
    are simply absent.  It shows as a size that is not a whole number of TS packets, or as
    far less media than the manifest says (a quarter short: rounded EXTINF values must not
    count).  The last packet in decode order is then dropped (nothing decodes after it)
    and the media is taken as lost from the first frame missing from the presentation
    sequence; the caller reports the rest of the segment as a corrupt hole.
    """
    assert seg.video_info is not None
    frame = float(1 / seg.video_info.fps)
    times = sorted(p.pts for p in seg.video)
    span = times[-1] + frame - times[0]
    short = seg.ref.duration - span
    if short <= 1.5 * frame or (size % 188 == 0 and short <= seg.ref.duration / 4):
        return
    seg.video.pop()
    if seg.audio:
        seg.audio.pop()
    if not seg.video:
        raise ValueError("truncated segment without a whole frame")
    times = sorted(p.pts for p in seg.video)
    lost = times[-1] + frame
    for a, b in itertools.pairwise(times):
        if b - a > 1.5 * frame:
            lost = a + frame
            break
    seg.damaged_from = lost


def _timed(
    data: bytes, pts: int, dts: int, dur: int, key: bool, tb: Fraction, offset: float
) -> TimedPacket:
    # int / int is correctly rounded, so this equals float(pts * tb) without building a
    # Fraction per timestamp (a measurable share of demuxing a segment).
    num, den = tb.numerator, tb.denominator
    return TimedPacket(
        data=data,
        pts=pts * num / den + offset,
        dts=dts * num / den + offset,
        duration=dur * num / den,
        key=key,
    )


def _video_info(stream: av.video.stream.VideoStream, ref: SegmentRef) -> VideoInfo:
    cc = stream.codec_context
    name: Literal["h264", "hevc"]
    if cc.name == "h264":
        name = "h264"
    elif cc.name == "hevc":
        name = "hevc"
    else:
        raise MediaError(f"unsupported video codec {cc.name!r}", obj=ref.url)
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate or Fraction(25)
    profile = cc.profile if isinstance(cc.profile, str) else None
    level = cc.level if isinstance(cc.level, int) and cc.level > 0 else None
    return VideoInfo(
        codec=name,
        width=cc.width,
        height=cc.height,
        pix_fmt=cc.pix_fmt or "yuv420p",
        fps=Fraction(rate),
        profile=profile,
        level=level,
        extradata=b"",
    )


def _audio_info(stream: av.audio.stream.AudioStream) -> AudioInfo:
    cc = stream.codec_context
    return AudioInfo(
        codec=cc.name,
        sample_rate=cc.sample_rate,
        channels=cc.channels,
        layout=cc.layout.name,
        frame_size=cc.frame_size or 1024,
        extradata=cc.extradata,
    )
