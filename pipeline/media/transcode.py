"""export_type 1 and 2: decode the range and encode it with libx264 / libx265.

After a hole the decoder restarts on the next keyframe.  Its leading pictures reference
what the hole took, so they are not decoded; an H.264 open-GOP I picture is fed as the
IDR the smart cut would copy (opengop.py), since FFmpeg's decoder started on it as it is
withholds frames until long after it.

Decoding and encoding overlap: the decoder runs on the calling thread and hands each placed
frame to the encoder's own thread through a queue of a few frames (memory stays flat in
clip length).  Both release the GIL inside FFmpeg, so on two cores the decoder's frame
threads and x264/x265's run side by side instead of taking turns.  Decoding stays with the
caller because where its data stops decoding decides where a hole starts, which the clip
needs at once; muxing stays there too, the one thread that touches the output container.
"""

from __future__ import annotations

from typing import Literal

import av

from pipeline.media.encode import TICKS, new_decoder, open_whole_clip, packet
from pipeline.media.encoder_thread import EncoderThread
from pipeline.media.opengop import CopyRun, convertible
from pipeline.media.options import EncodeOptions
from pipeline.media.placement import Placement
from pipeline.media.source import SegmentMedia, TimedPacket, VideoInfo
from pipeline.media.timeline import EPS, Timeline
from pipeline.media.writer import ClipWriter


class Transcoder:
    def __init__(
        self,
        writer: ClipWriter,
        timeline: Timeline,
        info: VideoInfo,
        codec: Literal["h264", "hevc"],
        options: EncodeOptions,
    ) -> None:
        self.writer = writer
        self.timeline = timeline
        self.info = info
        self.frame_duration = float(1 / info.fps)
        encoder = writer.add_encoded_video(codec, info, options)
        open_whole_clip(encoder)
        self.encoder = EncoderThread(self, encoder, info.width, info.height)
        self.threads = options.threads
        self.decoder = new_decoder(info.codec, whole_clip=True, threads=self.threads)
        self.placement = Placement(timeline)
        self.done = False
        self.encoded = 0
        self.after_hole = False  # the decoder restarts on the next keyframe
        self.restart: float | None = None  # archive time of the keyframe it restarted on
        self.run: CopyRun | None = None  # rewrites an H.264 restart on an open-GOP I

    @property
    def covered(self) -> float | None:
        """Archive time where the written video ends."""
        last = self.placement.last_time
        return None if last is None else last + self.frame_duration

    def counts(self) -> tuple[int, int]:
        return 0, self.encoded

    def feed(self, seg: SegmentMedia) -> bool:
        """Decode and encode one segment; False if its data stopped decoding part-way."""
        for p in seg.video:
            if self.done:
                return True
            data = self._input(p)
            if data is None:
                continue
            pkt = packet(data, round(p.pts * TICKS), round(p.dts * TICKS))
            try:
                frames = self.decoder.decode(pkt)
            except av.FFmpegError:
                return False
            self._emit(frames)
        return True

    def hole(self) -> None:
        """The next segment does not continue this one: drain and restart the decoder."""
        self._emit(self.decoder.decode(None))
        self.decoder = new_decoder(self.info.codec, whole_clip=True, threads=self.threads)
        self.after_hole, self.run = True, None

    def _input(self, p: TimedPacket) -> bytes | None:
        """What the decoder gets for ``p``, or None when it must not decode it."""
        if self.after_hole:
            if not p.key:
                return None
            self.after_hole, self.restart = False, p.pts
            if self.info.codec == "h264" and convertible(p.data):
                self.run = CopyRun()
                return self.run.first(p.data)
            return p.data
        if self.restart is not None and p.pts < self.restart - EPS:
            return None  # a leading picture of the restart keyframe
        return p.data if self.run is None else self.run.next(p.data)

    def finish(self) -> None:
        self._emit(self.decoder.decode(None))
        self.writer.mux_encoded_video(self.encoder.finish())

    def _emit(self, frames: list[av.VideoFrame]) -> None:
        end = self.timeline.end
        for frame in frames:
            if frame.pts is None:
                continue
            t = frame.pts / TICKS
            if t >= end - EPS:
                self.done = True
                continue
            pts = self.placement.place(t, before=end)
            if pts is None:
                continue
            self.encoder.put(frame, pts)
            self.encoded += 1
            self.writer.mux_encoded_video(self.encoder.take())
