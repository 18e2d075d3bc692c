"""The smart cut's edge encoder: decode source packets, re-encode the frames that belong.

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
from pipeline.media.placement import Placement
from pipeline.media.source import TimedPacket, VideoInfo
from pipeline.media.timeline import EPS


@dataclass(frozen=True)
class EncodedPicture:
    data: bytes  # Annex B
    pts: int  # output ticks; no B-frames, so decode order is presentation order
    key: bool


class EdgeEncoder:
    def __init__(self, info: VideoInfo, options: EncodeOptions, placement: Placement) -> None:
        self.info = info
        self.placement = placement
        self.decoder = new_decoder(info.codec)
        self.encoder = edge_encoder(info, options)
        self._opened = False  # a frame went into the encoder (flushing it is then needed)
        self._held: av.Packet | None = None

    def feed(self, packets: list[TimedPacket], *, upto: float) -> list[EncodedPicture]:
        """Decode ``packets``; the pictures encoded from their frames before ``upto``."""
        # Decode order: a picture presented before ``upto`` references only packets before
        # it, so the rest of the GOP (most of it at a tail cut) needs no decoding.
        last = max((i for i, p in enumerate(packets) if p.pts < upto - EPS), default=-1)
        out: list[EncodedPicture] = []
        for p in packets[: last + 1]:
            try:
                frames = self.decoder.decode(
                    packet(p.data, round(p.pts * TICKS), round(p.dts * TICKS))
                )
            except av.FFmpegError:
                continue  # a reference-only picture we cannot rebuild; its frame is unused
            out += self._encode(frames, upto)
        return out

    def finish(self, *, upto: float) -> list[EncodedPicture]:
        """Drain decoder and encoder; the last picture carries an end of sequence."""
        out = self._encode(self.decoder.decode(None), upto)
        if not self._opened:
            return out
        out += self._release(self.encoder.encode(None))
        if self._held is not None:
            out.append(_picture(self._held, end_of_sequence(self.info.codec)))
            self._held = None
        return out

    def _encode(self, frames: list[av.VideoFrame], upto: float) -> list[EncodedPicture]:
        out: list[EncodedPicture] = []
        for frame in frames:
            if frame.pts is None:
                continue
            pts = self.placement.place(frame.pts / TICKS, before=upto)
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


def _picture(q: av.Packet, suffix: bytes) -> EncodedPicture:
    assert q.pts is not None
    return EncodedPicture(bytes(q) + suffix, q.pts, q.is_keyframe)
