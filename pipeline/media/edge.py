"""The smart cut's edge encoder: decode source packets, re-encode the frames that belong.

Which frames belong, and at which output time, is decided before anything is decoded
(``Placement`` runs on the cutter's thread, from the packets' times): ``feed`` gets the
packets and those slots, so an edge can run on a worker thread while the cutter copies
the middle.  PyAV releases the GIL in avcodec's send/receive calls, so two edges and the
copy use both cores.

A picture no other picture references (H.264 nal_ref_idc 0 on every slice, an HEVC
sub-layer non-reference picture of the highest sub-layer) whose frame has no slot is not
decoded at all: before the wanted frame it is decoded only to be thrown away.

It returns what it encoded and writes nothing itself: the cutter muxes the pictures (it
knows the decode-time offset) and counts them.  The newest picture is held back until
the edge finishes, so the edge's last picture can carry an end of sequence: the copied
keyframe that follows starts a new coded video sequence (an HEVC CRA's picture order
count restarts and its RASL pictures go; an H.264 IDR may activate the source's SPS).
"""

from __future__ import annotations

from dataclasses import dataclass

import av
from av.video.frame import PictureType

from pipeline.media.encode import TICKS, edge_encoder, new_decoder, packet
from pipeline.media.nal import end_of_sequence
from pipeline.media.options import EncodeOptions
from pipeline.media.source import TimedPacket, VideoInfo

Slots = dict[int, int]  # source pts (ticks) of a frame that belongs -> its output pts


@dataclass(frozen=True)
class EncodedPicture:
    data: bytes  # Annex B
    pts: int  # output ticks; no B-frames, so decode order is presentation order
    key: bool


class EdgeEncoder:
    def __init__(self, info: VideoInfo, options: EncodeOptions) -> None:
        self.info = info
        self.decoder = new_decoder(info.codec)
        self.encoder = edge_encoder(info, options)
        self.slots: Slots = {}
        self.skipped = 0  # non-reference pictures not decoded
        self._max_sub_layer: int | None = None  # HEVC: from the last SPS seen
        self._opened = False  # a frame went into the encoder (flushing it is then needed)
        self._held: av.Packet | None = None

    def feed(self, packets: list[TimedPacket], slots: Slots) -> list[EncodedPicture]:
        """Decode ``packets``; the pictures encoded from the frames that have a slot."""
        self.slots.update(slots)
        ticks_of = [round(p.pts * TICKS) for p in packets]
        # Decode order: a frame with a slot references only packets before it, so the rest
        # (most of the GOP at a tail cut) needs no decoding.
        last = max((i for i, t in enumerate(ticks_of) if t in self.slots), default=-1)
        out: list[EncodedPicture] = []
        for p, ticks in zip(packets[: last + 1], ticks_of, strict=False):
            if p.key and self.info.codec == "hevc":  # parameter sets travel on keyframes
                self._max_sub_layer = sps_max_sub_layer(p.data, self._max_sub_layer)
            if ticks not in self.slots and self._disposable(p.data):
                self.skipped += 1
                continue
            try:
                frames = self.decoder.decode(packet(p.data, ticks, round(p.dts * TICKS)))
            except av.FFmpegError:
                continue  # a reference-only picture we cannot rebuild; its frame is unused
            out += self._encode(frames)
        return out

    def finish(self) -> list[EncodedPicture]:
        """Drain decoder and encoder; the last picture carries an end of sequence."""
        out = self._encode(self.decoder.decode(None))
        if not self._opened:
            return out
        out += self._release(self.encoder.encode(None))
        if self._held is not None:
            out.append(_picture(self._held, end_of_sequence(self.info.codec)))
            self._held = None
        return out

    def _disposable(self, data: bytes) -> bool:
        """Whether no later picture references this one (it is not decoded unless shown)."""
        if self.info.codec == "h264":
            return h264_disposable(data)
        return hevc_disposable(data, self._max_sub_layer)

    def _encode(self, frames: list[av.VideoFrame]) -> list[EncodedPicture]:
        out: list[EncodedPicture] = []
        for frame in frames:
            pts = self.slots.pop(frame.pts, None) if frame.pts is not None else None
            if pts is None:
                continue
            frame.pts = pts
            frame.time_base = self.encoder.time_base
            frame.pict_type = PictureType.NONE  # the source's types must not force x264's
            if frame.format.name != self.info.pix_fmt:
                frame = frame.reformat(format=self.info.pix_fmt)
            self._opened = True
            out += self._release(self.encoder.encode(frame))
        return out

    def _release(self, packets: list[av.Packet]) -> list[EncodedPicture]:
        """Every packet but the newest, which is held back."""
        out: list[EncodedPicture] = []
        for q in packets:
            if self._held is not None:
                out.append(_picture(self._held, b""))
            self._held = q
        return out


def _nal_headers(data: bytes) -> list[tuple[int, int]]:
    """The first two bytes of every NAL unit of an Annex B buffer (0 past the end)."""
    heads: list[tuple[int, int]] = []
    i = data.find(b"\x00\x00\x01")
    while i >= 0 and i + 3 < len(data):
        second = data[i + 4] if i + 4 < len(data) else 0
        heads.append((data[i + 3], second))
        i = data.find(b"\x00\x00\x01", i + 3)
    return heads


def h264_disposable(data: bytes) -> bool:
    """Every slice has nal_ref_idc 0: nothing decoded later may reference the picture."""
    slices = [first for first, _ in _nal_headers(data) if 1 <= first & 0x1F <= 5]
    return bool(slices) and all(first & 0x60 == 0 for first in slices)


def hevc_disposable(data: bytes, max_sub_layer: int | None) -> bool:
    """Whether an HEVC picture is a sub-layer non-reference picture (TRAIL_N, TSA_N, STSA_N,
    RADL_N, RASL_N, the reserved _N types: even types below 16) of the highest sub-layer.

    A sub-layer non-reference picture may still be referenced by pictures of higher
    sub-layers, so only one on the highest (``max_sub_layer``, sps_max_sub_layers_minus1
    of the active SPS) is disposable; without a known SPS none is.
    """
    temporal_ids: list[int] = []
    for first, second in _nal_headers(data):
        kind = (first >> 1) & 0x3F
        if kind >= 32:
            continue  # parameter sets, SEI, delimiters
        if kind >= 16 or kind % 2:
            return False
        temporal_ids.append((second & 0x07) - 1)
    if not temporal_ids or max_sub_layer is None:
        return False
    return all(t == max_sub_layer for t in temporal_ids)


def sps_max_sub_layer(data: bytes, known: int | None) -> int | None:
    """sps_max_sub_layers_minus1 of an HEVC SPS in ``data`` (else ``known``): the 3 bits
    after sps_video_parameter_set_id, in the first byte after the NAL header."""
    i = data.find(b"\x00\x00\x01")
    while i >= 0 and i + 5 < len(data):
        if (data[i + 3] >> 1) & 0x3F == 33:
            return (data[i + 5] >> 1) & 0x07
        i = data.find(b"\x00\x00\x01", i + 3)
    return known


def _picture(q: av.Packet, suffix: bytes) -> EncodedPicture:
    assert q.pts is not None
    return EncodedPicture(bytes(q) + suffix, q.pts, q.is_keyframe)
