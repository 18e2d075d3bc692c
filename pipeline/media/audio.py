"""Audio beside the video: AAC packets copied, re-encoded from the first junction on.

Audio follows the video's output timeline (same first frame, same holes).  A packet is kept
when it starts at or after the first video frame and before the end of the video written
so far, so audio starts at most one audio frame after the video.

Junctions.  Where the source's audio runs meet (a DASH Period boundary, an HLS
discontinuity, a closed hole) the packets of the two runs overlap or leave a gap: a new
encoder's AAC priming sits ~21 ms before its run starts, and the old run's last packet
runs past its end.  DASH presents nothing of a Period outside [start, end), and each run's
audio belongs with the video of the same run, so the junction lies where the new run's
video starts (or where the hole was closed).  Packets are on a 1024-sample grid per run,
so no choice of whole packets meets there exactly: from the first junction on, the audio
is decoded, spliced sample-exactly at the junction (the old run up to it, the new run from
it) and encoded again.  The switch from copied to re-encoded packets happens on a packet
boundary just before the junction; the encoder is warmed up on the last copied packet's
samples so the two overlap-add cleanly.  The last packets of every run are held back
until it is known that no junction follows, so the old run's tail can still be trimmed.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from pipeline.media.pcm import PcmSplicer

log = logging.getLogger(__name__)

_JOIN_TOLERANCE = 0.001  # s; packets closer than this to their predecessor's end are contiguous
_HOLD = 2  # packets held back before copying: an old run's tail past a junction is short
_BOUNDARY_REACH = 0.1  # s; how far from the misfit packets a run boundary may lie


@dataclass
class _Item:
    packet: TimedPacket
    out: float  # output time (s) of its first sample
    duration: float  # s


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
        # Where a new run's video starts (archive s): a new Period or an HLS discontinuity.
        self._boundaries = sorted({r.start for r in res.video if r.discontinuity})
        self._held: list[_Item] = []  # accepted, not written yet
        self._recent: deque[_Item] = deque(maxlen=2)  # the last copied, to warm a decoder
        self._skipped: TimedPacket | None = None  # the last dropped one, to warm a decoder
        self._next: float | None = None  # output time where the accepted audio ends
        self._writer: ClipWriter | None = None
        self._pcm: PcmSplicer | None = None

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
            # Not AAC: decode and encode all of it, one sample-exact stream from the start.
            encoder = writer.add_aac_audio(self.info, self.options.audio_bitrate)
            from pipeline.media.pcm import PcmSplicer

            self._pcm = PcmSplicer(self.info, writer, encoder, keep_from=None)
            self._pcm.new_run(None)
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
                self._take(self.pending.popleft())
            if self.pending or self.muxed or self.next_ref >= len(self.refs):
                return
            ref = self.refs[self.next_ref]
            if ref.start >= limit - EPS:
                return
            self.next_ref += 1
            self._load(ref)

    def finish(self, limit: float) -> None:
        self.write_until(limit)
        if self._writer is None or self.timeline.first is None:
            return
        end = self.timeline.out_time(limit)
        if self._next is not None and end - self._next > self._frame_seconds() / 2:
            # The source's audio stops short of the video (a live edge or a hole that
            # starts inside a video frame): end with silence so the durations match.
            self._start_pcm()
            assert self._pcm is not None
            self._pcm.pad_to(_sample(end, self._pcm.rate))
        for item in self._held:
            self._emit(item)
        self._held = []
        if self._pcm is not None:
            # Re-encoded audio ends with the video; copied audio within one packet of it.
            self._pcm.finish(_sample(self.timeline.out_time(limit), self._pcm.rate))

    def _load(self, ref: SegmentRef) -> SegmentMedia | None:
        try:
            seg = self.demux.load(ref)
        except SegmentUnusable as e:
            log.warning("audio segment skipped (%s): %s", e.reason, ref.url)
            return None
        self.pending.extend(seg.audio)
        return seg

    def _take(self, p: TimedPacket) -> None:
        tl = self.timeline
        assert tl.first is not None and self.info is not None
        duration = p.duration or self.info.frame_size / self.info.sample_rate
        if p.pts >= tl.end - EPS:
            return
        if self._next is None and p.pts < tl.first - EPS:
            self._skipped = p  # before the clip
            return
        out = self._out_time(p.pts, duration)
        if out is None:
            self._skipped = p  # inside a hole
            return
        item = _Item(p, out, duration)
        if self._next is not None and abs(out - self._next) > _JOIN_TOLERANCE:
            self._junction(item)
        self._held.append(item)
        self._next = out + duration
        while len(self._held) > _HOLD:
            self._emit(self._held.pop(0))

    def _out_time(self, pts: float, duration: float) -> float | None:
        """Output time of a packet; None when it lies inside a hole.

        A packet that starts in a hole and runs out of it is placed so that its samples
        after the hole land where the output resumes (they are trimmed at the junction).
        """
        tl = self.timeline
        hole = tl.hole_at(pts)
        if hole is None:
            return tl.out_time(pts)
        if pts + duration <= hole.end + _JOIN_TOLERANCE or hole.end >= tl.end - EPS:
            return None
        return tl.out_time(hole.end) - (hole.end - pts)

    # -- junctions -------------------------------------------------------------------------
    def _junction(self, item: _Item) -> None:
        """``item`` starts a new run: splice it onto the held tail of the old one."""
        assert self._next is not None and self._writer is not None and self.info is not None
        cut = self._junction_time(item.out, self._next)
        rate = self.info.sample_rate
        self._start_pcm(limit=_sample(cut, rate))
        assert self._pcm is not None
        self._pcm.pad_to(_sample(cut, rate))
        warm = self._skipped
        if warm is not None and abs(warm.pts + (warm.duration or 0.0) - item.packet.pts) > 1e-3:
            warm = None
        self._pcm.new_run(warm)
        self._recent.clear()

    def _start_pcm(self, limit: int | None = None) -> None:
        """Switch from copied to re-encoded packets (once) and decode the held ones."""
        assert self._next is not None and self._writer is not None and self.info is not None
        if self._pcm is None:
            start = self._held[0].out if self._held else self._next
            encoder = _aac_encoder(self.info, self.options.audio_bitrate)
            from pipeline.media.pcm import PcmSplicer

            self._pcm = PcmSplicer(
                self.info, self._writer, encoder, keep_from=_sample(start, self.info.sample_rate)
            )
            # Warm the decoder and the encoder on the last copied packets, so the first
            # re-encoded packet overlap-adds cleanly with the last copied one.
            self._pcm.new_run(None)
            recent = list(self._recent)
            for k, old in enumerate(recent):
                self._pcm.decode(old.packet, old.out, limit=None, keep=k == len(recent) - 1)
        for old in self._held:
            self._pcm.decode(old.packet, old.out, limit=limit)
        self._held = []

    def _frame_seconds(self) -> float:
        assert self.info is not None
        return self.info.frame_size / self.info.sample_rate

    def _junction_time(self, new_out: float, old_end: float) -> float:
        """Where the old run stops and the new one begins, on the output timeline."""
        tl = self.timeline
        lo, hi = min(new_out, old_end) - _BOUNDARY_REACH, max(new_out, old_end) + _BOUNDARY_REACH
        candidates = [tl.out_time(b) for b in self._boundaries if tl.wanted(b)]
        candidates += [tl.out_time(g.end) for g in tl.gaps() if g.end < tl.end - EPS]
        near = [c for c in candidates if lo <= c <= hi]
        if near:
            return min(near, key=lambda c: abs(c - new_out))
        # No boundary known: keep all of the old run; where the runs leave a gap, silence.
        return max(new_out, old_end)

    def _emit(self, item: _Item) -> None:
        assert self._writer is not None and self.info is not None
        if self._pcm is not None:
            self._pcm.decode(item.packet, item.out, limit=None)
            return
        sr = self.info.sample_rate
        self._writer.mux_audio(item.packet.data, _sample(item.out, sr), _sample(item.duration, sr))
        self._recent.append(item)


def _sample(t: float, rate: int) -> int:
    return round(t * rate)


def _aac_encoder(info: AudioInfo, bitrate: int) -> av.AudioCodecContext:
    encoder = av.CodecContext.create("aac", "w")
    assert isinstance(encoder, av.AudioCodecContext)
    encoder.sample_rate = info.sample_rate
    encoder.layout = info.layout
    encoder.format = "fltp"
    encoder.bit_rate = bitrate
    encoder.time_base = Fraction(1, info.sample_rate)
    return encoder
