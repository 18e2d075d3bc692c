"""export_type 0: copy whole GOPs, re-encode only the partial GOPs at the edges.

Packets arrive in decode order with archive times.  A GOP here is a keyframe and every
packet after it up to the next keyframe (decode order), so in an open GOP the leading
pictures (presented before their keyframe) belong to the keyframe's GOP.

- Head: frames from the requested start up to the first keyframe at or after it are
  decoded from the keyframe before the start and re-encoded (same codec, profile, level,
  size and pixel format, no B-frames).  If that first copied GOP has leading pictures,
  the head decoder also gets it, and its leading pictures are dropped from the copy.
- Middle: every GOP whose pictures all present before the end is copied as is.
- Tail: the first GOP with a picture at or past the end.  When its pictures before the
  end are a decode-order prefix of it (always so without B-frames), they are copied: each
  references only pictures before it in decode order, so they decode as in the source and
  the clip merely ends early in the GOP.  Otherwise it is decoded (after the previous GOP
  when its leading pictures need it) and its frames before the end are re-encoded.
  When the end falls on a GOP boundary there is nothing to re-encode.

``plan_gop`` makes that decision for one GOP, from the GOP, the timeline and where the
cut stands; ``SmartCutter`` collects the GOPs and carries the plans out.

All video is Annex B with parameter sets in-band on every keyframe (see nal.py), so the
re-encoded edges and the copied GOPs each carry their own SPS/PPS and a fresh decoder
plays the junctions.  A run of copied H.264 GOPs that starts on an open-GOP I picture
starts on an IDR rewritten from it (opengop.py): a new SPS may only become active there.
Re-encoded packets get dts = pts - (the source's reorder delay), which keeps decode
timestamps increasing across both junctions.

Every decision (plans, frame placement, copy timestamps) is made here, on the caller's
thread, from packet times alone; the edges' decoding and encoding run on worker threads
(edgequeue.py), which writes everything in output order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from pipeline.media import opengop
from pipeline.media.edge import EdgeEncoder, EncodedPicture, Slots
from pipeline.media.edgequeue import EdgeQueue
from pipeline.media.encode import TICKS
from pipeline.media.nal import nal_type, split_annexb
from pipeline.media.options import EncodeOptions
from pipeline.media.placement import Placement
from pipeline.media.source import SegmentMedia, TimedPacket, VideoInfo
from pipeline.media.timeline import EPS, Timeline
from pipeline.media.writer import ClipWriter


@dataclass(frozen=True)
class GopPlan:
    """What the smart cut does with one GOP."""

    reencode: tuple[TimedPacket, ...]  # decode these and re-encode their frames ...
    upto: float  # ... presented before this archive time (after the last one written)
    copy: bool  # then copy the GOP (the pictures presented before the end)
    drop_leading: bool  # without its leading pictures: a copy run starts on its keyframe
    then: Literal["next", "done", "resume"]  # resume: start over like a clip after a hole


def plan_gop(
    gop: Sequence[TimedPacket],
    tl: Timeline,
    *,
    copying: bool,
    after_hole: bool,
    pre: Sequence[TimedPacket],
    prev_gop: Sequence[TimedPacket],
    last_time: float | None,
) -> GopPlan:
    """The plan for ``gop`` (keyframe first, decode order).

    ``copying``: the GOP before was copied; else ``pre`` holds the packets from the last
    keyframe before the range, whose frames up to this keyframe are still to be written.
    ``after_hole``: the GOP follows a hole, so its leading pictures lost their references.
    ``prev_gop`` is the GOP copied last, ``last_time`` the archive time of the last frame
    written.
    """
    key = gop[0]
    starts_run = not copying or after_hole
    if _copyable(gop, tl, drop_leading=starts_run):
        if copying:
            return GopPlan((), key.pts, True, after_hole, "next")
        # The head: the frames before the keyframe, its leading pictures among them.
        leading = not after_hole and any(_leading(p, key) and tl.wanted(p.pts) for p in gop)
        return GopPlan((*pre, *(gop if leading else ())), key.pts, True, True, "next")
    then: Literal["done", "resume"] = "resume" if _resumes_after_hole(gop, tl) else "done"
    if not copying:
        return GopPlan((*pre, *gop), tl.end, False, False, then)
    after = last_time if last_time is not None else tl.start - EPS
    if not any(p.pts > after + EPS and tl.wanted(p.pts) for p in gop):
        return GopPlan((), tl.end, False, False, then)
    if not after_hole and _prefix_before_end(gop, tl):
        return GopPlan((), tl.end, True, False, "done")
    # The tail; its leading pictures reference the GOP copied before it.
    refs = prev_gop if not after_hole and any(_leading(p, key) for p in gop) else ()
    return GopPlan((*refs, *gop), tl.end, False, False, then)


def _leading(p: TimedPacket, key: TimedPacket) -> bool:
    return p.pts < key.pts - EPS


def _copyable(gop: Sequence[TimedPacket], tl: Timeline, *, drop_leading: bool) -> bool:
    """Whether every picture the copy would show is wanted: one that runs past the end or
    into a hole (the live edge, a damaged part of a segment) makes the GOP a tail."""
    key = gop[0]
    return all(
        p.pts < tl.end - EPS and not tl.in_hole(p.pts)
        for p in gop
        if not (drop_leading and _leading(p, key))
    )


def _prefix_before_end(gop: Sequence[TimedPacket], tl: Timeline) -> bool:
    """Whether the GOP's pictures presented before the end come first in decode order (and
    none lies in a hole): copied alone, each still has every picture it references, which
    precede it in decode order and are before the end too.  Leading pictures reference the
    GOP copied just before, as when the whole GOP is copied."""
    if any(tl.in_hole(p.pts) for p in gop):
        return False
    before = [p.pts < tl.end - EPS for p in gop]
    cut = before.index(False) if False in before else len(before)
    return not any(before[cut:])


def _resumes_after_hole(gop: Sequence[TimedPacket], tl: Timeline) -> bool:
    """Whether the clip goes on after this tail: it crossed the start of a hole (a
    damaged segment's lost part) that ends before the end, and nothing of it is past it.
    What follows the hole then starts like a clip: from the next keyframe, re-encoded up
    to a clean one."""
    if any(p.pts >= tl.end - EPS for p in gop):
        return False
    return any((h := tl.hole_at(p.pts)) is not None and h.end < tl.end - EPS for p in gop)


def is_clean_start(codec: str, p: TimedPacket) -> bool:
    """Whether a copy may start on this keyframe after re-encoded pictures.

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


class SmartCutter:
    def __init__(
        self,
        writer: ClipWriter,
        timeline: Timeline,
        info: VideoInfo,
        template: bytes,
        options: EncodeOptions,
        written: Callable[[float], None],
    ) -> None:
        """``written(covered)``: the video is in the file up to archive time ``covered``."""
        self.out = EdgeQueue(writer, lambda last: written(last + self.frame_duration))
        self.timeline = timeline
        self.info = info
        self.options = options
        self.frame_duration = float(1 / info.fps)
        self.placement = Placement(timeline)
        writer.add_copy_video(template, info)
        # seek: no keyframe to copy from yet (``pre`` collects what the head decodes);
        # gops: GOPs are collected and planned one by one; done: nothing more is wanted.
        self.phase: Literal["seek", "gops", "done"] = "seek"
        self.copying = False  # the last GOP planned was copied
        self.after_hole = False  # the GOP being collected follows a hole
        self.await_key = False  # skip packets up to the next keyframe (after a hole)
        self.pre: list[TimedPacket] = []
        self.gop: list[TimedPacket] = []
        self.prev_gop: list[TimedPacket] = []
        self.edge: EdgeEncoder | None = None  # a head re-encode still running
        self.run: opengop.CopyRun | None = None  # H.264: rewrites the current copy run
        self.delay: float | None = None  # source reorder delay: keyframe pts - dts
        self.copied = 0

    @property
    def done(self) -> bool:
        return self.phase == "done"

    @property
    def covered(self) -> float | None:
        """Archive time where the written video ends (not what is still queued: the audio
        written up to it must not run ahead of the video in the file)."""
        last = self.out.written_time
        return None if last is None else last + self.frame_duration

    def counts(self) -> tuple[int, int]:
        return self.copied, self.out.reencoded

    # -- input -----------------------------------------------------------------------------
    def feed(self, seg: SegmentMedia) -> bool:
        """Take one segment's packets (copied ones are not decoded, so always True)."""
        for p in seg.video:
            if self.done:
                break
            self._packet(p)
        return True

    def hole(self) -> None:
        if self.phase == "gops" and self.gop:
            self._complete()
        self.after_hole = True
        self.await_key = True

    def finish(self) -> None:
        if self.phase == "seek" and (self.pre or self.edge is not None):
            self._reencode(self.pre, upto=self.timeline.end)
        elif self.phase == "gops" and self.gop:
            self._complete()
        self.phase = "done"
        self.out.finish()

    def _packet(self, p: TimedPacket) -> None:
        if self.await_key and not p.key:
            return
        self.await_key = False
        if p.key and self.delay is None:
            self.delay = max(0.0, p.pts - p.dts)
        if self.phase == "seek":
            self._seek(p)
        elif not p.key:
            if self.gop:  # empty after a hole
                self.gop.append(p)
        else:
            if self.gop:
                self._complete()
            if self.phase == "seek":  # the GOP ran into a hole: start over from this key
                self._packet(p)
            elif self.phase == "gops":
                self.gop = [p]

    def _seek(self, p: TimedPacket) -> None:
        tl = self.timeline
        if p.key and p.pts < tl.start - EPS and self.edge is None:
            self.pre = [p]
            self.after_hole = False
        elif p.key and is_clean_start(self.info.codec, p):
            self.phase = "gops"
            self.gop = [p]
        elif p.key and p.pts < tl.end - EPS:
            # No copy can start here: keep re-encoding, one GOP at a time.
            self.edge = self.edge or self._edge()
            self._submit(self.edge, self.pre, upto=tl.end, finish=False)
            self.pre = [p]
        else:
            self.pre.append(p)

    # -- carrying out a plan ---------------------------------------------------------------
    def _complete(self) -> None:
        gop, self.gop = self.gop, []
        plan = plan_gop(
            gop,
            self.timeline,
            copying=self.copying,
            after_hole=self.after_hole,
            pre=self.pre,
            prev_gop=self.prev_gop,
            last_time=self.placement.last_time,
        )
        if plan.reencode or self.edge is not None:
            self._reencode(list(plan.reencode), upto=plan.upto)
        if plan.copy:
            self._copy(gop, drop_leading=plan.drop_leading)
            self.pre, self.prev_gop = [], gop
            self.copying, self.after_hole = True, False
        if plan.then == "done":
            self.phase = "done"
        elif plan.then == "resume":
            self.phase, self.copying = "seek", False
            self.pre, self.prev_gop = [], []
            self.after_hole = self.await_key = True

    def _copy(self, gop: list[TimedPacket], *, drop_leading: bool) -> None:
        key = gop[0]
        if drop_leading:
            self.run = opengop.CopyRun() if self.info.codec == "h264" else None
        shift = key.pts - self.placement.out_seconds(key.pts)
        end = self.timeline.end - EPS
        for p in gop:
            if (drop_leading and _leading(p, key)) or p.pts >= end:
                continue  # past the end: the tail copies the GOP's pictures before it
            data = p.data
            if self.run is not None:
                data = self.run.first(data) if p is key and drop_leading else self.run.next(data)
            pts = round((p.pts - shift) * TICKS)
            dts = round((p.dts - shift) * TICKS)
            duration = round((p.duration or self.frame_duration) * TICKS)
            self.out.copy(data, pts, dts, p.key, duration, p.pts)
            self.placement.copied(p.pts, pts)
            self.copied += 1

    def _reencode(self, packets: list[TimedPacket], *, upto: float) -> None:
        """Decode ``packets`` and re-encode the frames that belong before ``upto``."""
        edge = self.edge or self._edge()
        self.edge = None
        self._submit(edge, packets, upto=upto, finish=True)
        self.out.retire(edge)

    def _submit(
        self, edge: EdgeEncoder, packets: list[TimedPacket], *, upto: float, finish: bool
    ) -> None:
        """Place the frames of ``packets`` now, decode and encode them on a worker."""
        slots = self._slots(packets, upto)
        last = self.placement.last_time if slots else None

        def work() -> list[EncodedPicture]:
            pictures = edge.feed(packets, slots)
            return pictures + edge.finish() if finish else pictures

        self.out.edge(
            edge,
            work,
            delay=round((self.delay or 0.0) * TICKS),
            duration=round(self.frame_duration * TICKS),
            time=last,
        )

    def _slots(self, packets: list[TimedPacket], upto: float) -> Slots:
        """The output pts of every frame of ``packets`` that belongs (placement rule), by
        source pts: decoding gives each frame its packet's pts, in presentation order."""
        slots: Slots = {}
        for ticks in sorted({round(p.pts * TICKS) for p in packets}):
            pts = self.placement.place(ticks / TICKS, before=upto)
            if pts is not None:
                slots[ticks] = pts
        return slots

    def _edge(self) -> EdgeEncoder:
        return EdgeEncoder(self.info, self.options)
