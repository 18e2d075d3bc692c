"""Audio beside the video: AAC packets copied, anything else transcoded to AAC.

Audio follows the video's output timeline (same first frame, same holes).  A packet is kept
when it starts at or after the first video frame and before the end of the video written
so far, so audio starts at most one audio frame after the video and ends at most one audio
frame after it: durations match within one audio frame and sync is exact.
"""

from __future__ import annotations

from collections import deque
from fractions import Fraction

import av

from pipeline.media.options import EncodeOptions
from pipeline.media.source import (
    AudioInfo,
    SegmentFetcher,
    SegmentMedia,
    SegmentUnusable,
    TimedPacket,
    TrackDemuxer,
)
from pipeline.media.timeline import EPS, Timeline
from pipeline.media.writer import ClipWriter
from pipeline.model import Resolution, SegmentRef

_JOIN_TOLERANCE = 0.001  # s; a packet starting earlier than this overlaps the previous one


class AudioTrack:
    def __init__(
        self, fetcher: SegmentFetcher, res: Resolution, timeline: Timeline, options: EncodeOptions
    ) -> None:
        self.muxed = res.audio_muxed
        self.refs: list[SegmentRef] = [] if res.audio_muxed else list(res.audio)
        self.timeline = timeline
        self.options = options
        self.demux = TrackDemuxer(fetcher, want_video=False, want_audio=True)
        self.pending: deque[TimedPacket] = deque()
        self.next_ref = 0
        self.info: AudioInfo | None = None
        self.template = b""
        self.notes: list[str] = []
        self.written = 0
        self._held: tuple[TimedPacket, float, float] | None = None  # packet, out, duration
        self._writer: ClipWriter | None = None
        self._transcoder: _AacTranscoder | None = None

    # -- set-up ----------------------------------------------------------------------------
    def prime(self, first_video: SegmentMedia) -> AudioInfo | None:
        """Learn the audio format (before the output's streams are fixed)."""
        if self.muxed:
            self.info, self.template = first_video.audio_info, first_video.raw
            return self.info
        while self.next_ref < len(self.refs) and self.info is None:
            ref = self.refs[self.next_ref]
            self.next_ref += 1
            if ref.start + ref.duration <= self.timeline.start:
                continue
            seg = self._load(ref)
            if seg is not None and seg.audio_info is not None:
                self.info, self.template = seg.audio_info, seg.raw
        return self.info

    def attach(self, writer: ClipWriter) -> None:
        if self.info is None:
            return
        self._writer = writer
        if self.info.codec == "aac" and self.info.extradata:
            writer.add_copy_audio(self.template, self.info)
        else:
            self._transcoder = _AacTranscoder(self.info, writer, self.options)
        self.template = b""

    # -- packets ---------------------------------------------------------------------------
    def push(self, seg: SegmentMedia) -> None:
        if self.muxed:
            self.pending.extend(seg.audio)

    def write_until(self, limit: float) -> None:
        """Write the audio that starts before archive time ``limit``."""
        if self._writer is None or self.timeline.first is None:
            return
        while True:
            while self.pending and self.pending[0].pts < limit - EPS:
                self._write(self.pending.popleft())
            if self.pending or self.muxed or self.next_ref >= len(self.refs):
                return
            ref = self.refs[self.next_ref]
            if ref.start >= limit - EPS:
                return
            self.next_ref += 1
            self._load(ref)

    def finish(self, limit: float) -> None:
        self.write_until(limit)
        self._flush_held()
        if self._transcoder is not None:
            self._transcoder.flush()

    def _load(self, ref: SegmentRef) -> SegmentMedia | None:
        try:
            seg = self.demux.load(ref)
        except SegmentUnusable as e:
            self.notes.append(f"audio {e.reason}: {ref.url}")
            return None
        self.pending.extend(seg.audio)
        return seg

    def _write(self, p: TimedPacket) -> None:
        tl = self.timeline
        assert tl.first is not None and self.info is not None
        if p.pts < tl.first - EPS or p.pts >= tl.end - EPS or tl.in_hole(p.pts):
            return
        out = tl.out_time(p.pts)
        duration = p.duration or self.info.frame_size / self.info.sample_rate
        held = self._held
        if held is not None and out < held[1] + held[2] - _JOIN_TOLERANCE:
            # Overlap where the source's runs meet (a discontinuity, a closed hole): one of
            # the two packets has to go.  A packet starting no later than the held one is
            # redundant (encoder priming); otherwise the newer run wins, so its first sound
            # starts on time and the price is a few ms of silence before it.
            if out <= held[1] + _JOIN_TOLERANCE:
                return
            held = None
        if held is not None:
            self._emit(*held)
        self._held = (p, out, duration)

    def _flush_held(self) -> None:
        if self._held is not None:
            self._emit(*self._held)
            self._held = None

    def _emit(self, p: TimedPacket, out: float, duration: float) -> None:
        assert self._writer is not None and self.info is not None
        self.written += 1
        if self._transcoder is not None:
            self._transcoder.feed(p, out)
        else:
            sr = self.info.sample_rate
            self._writer.mux_audio(p.data, round(out * sr), round(duration * sr))


class _AacTranscoder:
    """Decodes a non-AAC source and encodes AAC at the source rate."""

    def __init__(self, info: AudioInfo, writer: ClipWriter, options: EncodeOptions) -> None:
        self.info = info
        self.writer = writer
        decoder = av.CodecContext.create(info.codec, "r")
        assert isinstance(decoder, av.AudioCodecContext)
        self.decoder = decoder
        if info.extradata:
            self.decoder.extradata = info.extradata
        self.encoder = writer.add_aac_audio(info, options.audio_bitrate)
        self.resampler = av.AudioResampler(
            format="fltp", layout=info.layout, rate=info.sample_rate, frame_size=1024
        )
        self.tb = Fraction(1, info.sample_rate)

    def feed(self, p: TimedPacket, out: float) -> None:
        pkt = av.Packet(p.data)
        pkt.pts = pkt.dts = round(out * self.info.sample_rate)
        pkt.time_base = self.tb
        try:
            frames = self.decoder.decode(pkt)
        except av.FFmpegError:
            return  # one undecodable audio frame: a few ms of silence, not a failed clip
        for frame in frames:
            frame.pts = pkt.pts
            frame.time_base = self.tb
            for chunk in self.resampler.resample(frame):
                self.writer.mux_audio_packets(self.encoder.encode(chunk))

    def flush(self) -> None:
        for chunk in self.resampler.resample(None):
            self.writer.mux_audio_packets(self.encoder.encode(chunk))
        self.writer.mux_audio_packets(self.encoder.encode(None))
