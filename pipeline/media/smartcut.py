"""export_type 0: copy whole GOPs, re-encode only the partial GOPs at the edges.

Packets arrive in decode order with archive times.  A GOP here is a keyframe and every
packet after it up to the next keyframe (decode order), so in an open GOP the leading
pictures (presented before their keyframe) belong to the keyframe's GOP.

- Head: frames from the requested start up to the first keyframe at or after it are
  decoded from the keyframe before the start and re-encoded (same codec, profile, level,
  size and pixel format, no B-frames).  If that first copied GOP has leading pictures,
  the head decoder also gets it, and its leading pictures are dropped from the copy.
- Middle: every GOP whose pictures all present before the end is copied as is.
- Tail: the first GOP with a picture at or past the end is decoded (after the previous
  GOP when its leading pictures need it) and its frames before the end are re-encoded.
  When the end falls on a GOP boundary there is nothing to re-encode.

All video is Annex B with parameter sets in-band on every keyframe (see nal.py), so the
re-encoded edges and the copied GOPs each carry their own SPS/PPS and a fresh decoder
plays the junctions.  A run of copied H.264 GOPs that starts on an open-GOP I picture
starts on an IDR rewritten from it (opengop.py): a new SPS may only become active there.  Re-encoded packets get dts = pts - (the source's reorder delay),
which keeps decode timestamps increasing across both junctions.
"""

from __future__ import annotations

import av
from av.video.frame import PictureType

from pipeline.media import opengop
from pipeline.media.encode import TICKS, edge_encoder, new_decoder, packet
from pipeline.media.nal import end_of_sequence, nal_type, split_annexb
from pipeline.media.options import EncodeOptions
from pipeline.media.source import SegmentMedia, TimedPacket, VideoInfo
from pipeline.media.timeline import EPS, Timeline
from pipeline.media.writer import ClipWriter


class SmartCutter:
    def __init__(
        self,
        writer: ClipWriter,
        timeline: Timeline,
        info: VideoInfo,
        template: bytes,
        options: EncodeOptions,
    ) -> None:
        self.writer = writer
        self.timeline = timeline
        self.info = info
        self.options = options
        self.frame_duration = float(1 / info.fps)
        writer.add_copy_video(template, info)
        self.head_pending = True  # no keyframe to copy from seen yet
        self.head_done = False  # the frames before the first copied keyframe are written
        self.pre: list[TimedPacket] = []  # from the last keyframe before the start
        self.gop: list[TimedPacket] = []
        self.prev_gop: list[TimedPacket] = []
        self.after_hole = False  # the GOP being collected follows a hole
        self.await_key = False
        self.delay: float | None = None  # source reorder delay: keyframe pts - dts
        self._edge: EdgeEncoder | None = None  # a head re-encode still running
        self.last_time: float | None = None  # archive time of the last frame written
        self.covered: float | None = None  # archive time where the written video ends
        self.done = False
        self.run: opengop.CopyRun | None = None
        self.reencoded = 0
        self.copied = 0

    # -- input -----------------------------------------------------------------------------
    def feed(self, seg: SegmentMedia) -> bool:
        """Take one segment's packets (copied ones are not decoded, so always True)."""
        for p in seg.video:
            if self.done:
                break
            self._packet(p)
        return True

    def hole(self) -> None:
        if not self.head_pending and self.gop:
            self._complete()
            self.gop = []
        self.after_hole = True
        self.await_key = True

    def finish(self) -> None:
        if self.done:
            return
        if self.head_pending:
            if self.pre or self._edge is not None:
                self._reencode(self.pre, upto=self.timeline.end)
        elif self.gop:
            self._complete()
        self.done = True

    def _packet(self, p: TimedPacket) -> None:
        if self.await_key and not p.key:
            return
        self.await_key = False
        start = self.timeline.start
        if p.key and self.delay is None:
            self.delay = max(0.0, p.pts - p.dts)
        if self.head_pending:
            if p.key and p.pts < start - EPS and self._edge is None:
                self.pre = [p]
                self.after_hole = False
            elif p.key and is_clean_start(self.info.codec, p):
                self.head_pending = False
                self.gop = [p]
            elif p.key and p.pts < self.timeline.end - EPS:
                # No copy can start here: keep re-encoding, one GOP at a time.
                self._open_edge().feed(self.pre, upto=self.timeline.end)
                self.pre = [p]
            else:
                self.pre.append(p)
            return
        if p.key:
            if self.gop:  # empty after a hole
                self._complete()
            if self.done:
                return
            if self.head_pending:  # the GOP ran into a hole: start over from this key
                self._packet(p)
                return
            self.gop = [p]
        elif self.gop:
            self.gop.append(p)

    # -- decisions -------------------------------------------------------------------------
    def _complete(self) -> None:
        gop, tl = self.gop, self.timeline
        key = gop[0]
        # A GOP is copied only when every picture it shows is wanted: one that runs past
        # the end or into a hole (the live edge, a damaged part of a segment) is a tail.
        drops_leading = not self.head_done or self.after_hole
        copyable = all(
            p.pts < tl.end - EPS and not tl.in_hole(p.pts)
            for p in gop
            if not (drops_leading and p.pts < key.pts - EPS)
        )
        if not self.head_done:
            if not copyable:
                self._reencode(self.pre + gop, upto=tl.end)
                self._after_tail(gop)
                return
            leading = not self.after_hole and any(
                p.pts < key.pts - EPS and tl.wanted(p.pts) for p in gop
            )
            if self.pre or leading or self._edge is not None:
                self._reencode(self.pre + (gop if leading else []), upto=key.pts)
            self.pre = []
            self.head_done = True
            self._copy(gop, drop_leading=True)
        elif copyable:
            self._copy(gop, drop_leading=self.after_hole)
        else:
            after = self.last_time if self.last_time is not None else tl.start - EPS
            if any(p.pts > after + EPS and tl.wanted(p.pts) for p in gop):
                has_leading = any(p.pts < key.pts - EPS for p in gop)
                refs = self.prev_gop if has_leading and not self.after_hole else []
                self._reencode(refs + gop, upto=tl.end)
            self._after_tail(gop)
            return
        self.after_hole = False

    def _after_tail(self, gop: list[TimedPacket]) -> None:
        """After a re-encoded tail GOP: done, unless the clip resumes after a hole.

        Then the GOP crossed a hole's start (a damaged segment's lost part) and what
        follows the hole starts like a clip: from the next keyframe, re-encoded up to a
        clean one.
        """
        tl = self.timeline
        resumes = [
            h.end for p in gop if (h := tl.hole_at(p.pts)) is not None and h.end < tl.end - EPS
        ]
        if not resumes or any(p.pts >= tl.end - EPS for p in gop):
            self.done = True
            return
        self.head_pending, self.head_done = True, False
        self.pre, self.gop, self.prev_gop = [], [], []
        self.after_hole = True
        self.await_key = True

    def _copy(self, gop: list[TimedPacket], *, drop_leading: bool) -> None:
        tl = self.timeline
        key = gop[0]
        if tl.first is None:
            tl.first = key.pts
        shift = key.pts - tl.out_time(key.pts)
        if drop_leading and self.info.codec == "h264":
            self.run = opengop.CopyRun()
        for p in gop:
            if drop_leading and p.pts < key.pts - EPS:
                continue
            data = p.data
            if self.run is not None:
                data = self.run.first(data) if p is key and drop_leading else self.run.next(data)
            self.writer.mux_video(
                data,
                round((p.pts - shift) * TICKS),
                round((p.dts - shift) * TICKS),
                p.key,
                round((p.duration or self.frame_duration) * TICKS),
            )
            self.copied += 1
            if self.last_time is None or p.pts > self.last_time:
                self.last_time = p.pts
        self.prev_gop = gop
        self.covered = (self.last_time or key.pts) + self.frame_duration

    def _reencode(self, packets: list[TimedPacket], *, upto: float) -> None:
        """Decode ``packets`` and re-encode the wanted frames after the last written one
        and before ``upto``."""
        edge = self._edge or EdgeEncoder(self)
        self._edge = None
        edge.feed(packets, upto=upto)
        edge.finish(upto=upto)

    def _open_edge(self) -> EdgeEncoder:
        if self._edge is None:
            self._edge = EdgeEncoder(self)
        return self._edge


def is_clean_start(codec: str, p: TimedPacket) -> bool:
    """Whether a fresh decoder state may follow re-encoded pictures into this keyframe.

    HEVC IRAP pictures (IDR, CRA, BLA) start a new coded video sequence after an end of
    sequence.  For H.264 an IDR does, and an open-GOP I picture once rewritten into one
    (opengop.py), when its headers use nothing that rewrite does not handle.
    """
    for nal in split_annexb(p.data):
        kind = nal_type(codec, nal)
        if codec == "hevc" and 16 <= kind <= 21:
            return True
        if codec == "h264" and kind == 5:
            return True
        if codec == "h264" and kind == 1:
            return opengop.convertible(p.data)
    return False


class EdgeEncoder:
    """Decodes source packets and re-encodes the wanted frames, writing as it goes."""

    def __init__(self, cutter: SmartCutter) -> None:
        self.cutter = cutter
        self.decoder = new_decoder(cutter.info.codec)
        self.encoder = edge_encoder(cutter.info, cutter.options)
        self.after = cutter.last_time  # frames up to here are already written
        self.last_pts: int | None = None
        self.pending: av.Packet | None = None  # held back to append end-of-sequence

    def feed(self, packets: list[TimedPacket], *, upto: float) -> None:
        # Decode order: a picture presented before ``upto`` references only packets before
        # it, so the rest of the GOP (most of it at a tail cut) needs no decoding.
        last = max((i for i, p in enumerate(packets) if p.pts < upto - EPS), default=-1)
        for p in packets[: last + 1]:
            try:
                frames = self.decoder.decode(
                    packet(p.data, round(p.pts * TICKS), round(p.dts * TICKS))
                )
            except av.FFmpegError:
                continue  # a reference-only picture we cannot rebuild; its frame is unused
            self._take(frames, upto)

    def finish(self, *, upto: float) -> None:
        self._take(self.decoder.decode(None), upto)
        if self.last_pts is None:
            return
        self._write(self.encoder.encode(None))
        if self.pending is not None:
            # End of sequence: the copied keyframe that follows starts a new coded video
            # sequence (an HEVC CRA's picture order count restarts, RASL pictures go).
            self._mux(self.pending, end_of_sequence(self.cutter.info.codec))
            self.pending = None

    def _take(self, frames: list[av.VideoFrame], upto: float) -> None:
        cutter, tl = self.cutter, self.cutter.timeline
        for frame in frames:
            if frame.pts is None:
                continue
            t = frame.pts / TICKS
            if t >= upto - EPS or not tl.wanted(t):
                continue
            if self.after is not None and t <= self.after + EPS:
                continue
            if tl.first is None:
                tl.first = t
            pts = round(tl.out_time(t) * TICKS)
            if self.last_pts is not None and pts <= self.last_pts:
                continue
            self.last_pts = pts
            frame.pts = pts
            frame.time_base = self.encoder.time_base
            frame.pict_type = PictureType.NONE  # the source's types must not force x264's
            if frame.format.name != cutter.info.pix_fmt:
                frame = frame.reformat(format=cutter.info.pix_fmt)
            self._write(self.encoder.encode(frame))
            cutter.last_time = t
            cutter.covered = t + cutter.frame_duration

    def _write(self, packets: list[av.Packet]) -> None:
        for q in packets:
            if self.pending is not None:
                self._mux(self.pending, b"")
            self.pending = q

    def _mux(self, q: av.Packet, suffix: bytes) -> None:
        assert q.pts is not None
        cutter = self.cutter
        cutter.writer.mux_video(
            bytes(q) + suffix,
            q.pts,
            q.pts - round((cutter.delay or 0.0) * TICKS),
            q.is_keyframe,
            round(cutter.frame_duration * TICKS),
        )
        cutter.reencoded += 1
