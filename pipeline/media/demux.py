"""One segment's packets as the container stores them: stream ticks, decode order.

``source.TrackDemuxer`` opens a segment, picks how to probe it (``probe_options``), collects
its packets here (``collect``), repairs what a packager got wrong in their timestamps
(``repair_keyframe_pts``), then maps them onto the archive timeline.  Everything in this
module stays in integer ticks of the stream's time base, so no rounding happens before
the mapping.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import av
from av.bitstream import BitStreamFilterContext

# data, pts, dts, duration (stream ticks), keyframe
RawPacket = tuple[bytes, int, int, int, bool]


@dataclass
class RawTrack:
    time_base: Fraction
    packets: list[RawPacket] = field(default_factory=list)
    # Filters the packets go through on the way in (``collect``), if any.
    bsf: BitStreamFilterContext | None = None
    # A codec record the filter produced (aac_adtstoasc's AudioSpecificConfig).
    new_extradata: bytes | None = None

    def anchor(self) -> int:
        """The earliest presentation (ticks): where a run's clock is aligned by default."""
        return min(p[1] for p in self.packets)

    def first_key(self) -> int:
        """The first keyframe in decode order (ticks): the first picture that decodes."""
        return next((p[1] for p in self.packets if p[4]), self.packets[0][1])


def probe_options(known: bool) -> list[Any] | None:
    """``stream_options`` for ``av.open``: probe nothing when the stream facts are known.

    Opening a container probes it, and for H.264 FFmpeg decodes frames to learn the pixel
    format and reorder depth (~2 ms a 720p segment, most of demuxing one).  The stream facts
    of an fMP4 segment come from its init segment, already probed for an earlier segment:
    let the probe decode nothing.  Packets are demuxed the same.  One dict of options per
    stream (PyAV's stub says list[str], hence Any).
    """
    return [{"skip_frame": "all"}] if known else None


def collect(
    packets: Iterable[av.Packet],
    video: av.VideoStream | None,
    v: RawTrack | None,
    a: RawTrack | None,
) -> None:
    """Sort the demuxed packets of ``video`` into ``v`` and the rest into ``a``.

    A track's filter takes each packet over (FFmpeg moves its data), so only the filter's
    output is read.  The filters used (``nal.MP4_TO_ANNEXB``, aac_adtstoasc) give one packet
    for each one in and hold none back: there is nothing to drain at the end.
    """
    for pkt in packets:
        if pkt.size == 0 or pkt.pts is None:
            continue
        if pkt.is_corrupt:
            raise ValueError("corrupt packet")
        target = v if pkt.stream is video else a
        if target is None:
            continue
        for out in target.bsf.filter(pkt) if target.bsf is not None else (pkt,):
            _append(target, out)


def _append(track: RawTrack, pkt: av.Packet) -> None:
    assert pkt.pts is not None
    if not track.packets and pkt.has_sidedata("new_extradata"):
        # aac_adtstoasc attaches the record to the first packet it gives out.
        track.new_extradata = bytes(pkt.get_sidedata("new_extradata"))
    dts = pkt.dts if pkt.dts is not None else pkt.pts
    track.packets.append((bytes(pkt), pkt.pts, dts, pkt.duration or 0, pkt.is_keyframe))


def repair_keyframe_pts(track: RawTrack) -> None:
    """Give back its own slot to a keyframe written at the time of one of its leading pictures.

    libavformat's dash muxer writes the composition offset of the first sample of every
    fragment after the first as the track's initial delay.  An open-GOP I frame is delayed
    more than that (its leading pictures are decoded after it and present before it), so it
    comes out at a leading picture's time: two packets share a presentation time and the slot
    the keyframe belongs in stays empty, which drops one of them as a repeat.  Two packets
    of one segment never present at the same time, so when the first keyframe shares its
    time and the segment's frame grid has exactly one empty slot after it, that slot is its.
    """
    packets = track.packets
    key = next((i for i, p in enumerate(packets) if p[4]), None)
    if key is None:
        return
    pts = packets[key][1]
    others = sorted(p[1] for i, p in enumerate(packets) if i != key)
    if pts not in others:
        return
    steps = [b - a for a, b in itertools.pairwise(others) if b > a]
    if not steps:
        return
    frame = min(steps)
    taken = set(others)
    empty = [t for t in range(pts + frame, others[-1], frame) if t not in taken]
    if len(empty) == 1:
        data, _, dts, duration, is_key = packets[key]
        packets[key] = (data, empty[0], dts, duration, is_key)
