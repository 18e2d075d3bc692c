"""export_type 1 and 2: decode the range and encode it with libx264 / libx265."""

from __future__ import annotations

from typing import Literal

import av
from av.video.frame import PictureType

from pipeline.media.encode import TICKS, new_decoder, packet
from pipeline.media.options import EncodeOptions
from pipeline.media.source import SegmentMedia, VideoInfo
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
        self.encoder = writer.add_encoded_video(codec, info, options)
        self.decoder = new_decoder(info.codec, whole_clip=True)
        self.covered: float | None = None  # archive time where the written video ends
        self.done = False
        self.encoded = 0
        self._last_pts: int | None = None
        self._last_time: float | None = None

    def feed(self, seg: SegmentMedia) -> bool:
        """Decode and encode one segment; False if its data stopped decoding part-way."""
        for p in seg.video:
            if self.done:
                return True
            pkt = packet(p.data, round(p.pts * TICKS), round(p.dts * TICKS))
            try:
                frames = self.decoder.decode(pkt)
            except av.FFmpegError:
                return False
            self._emit(frames)
        return True

    def hole(self) -> None:
        """The next segment does not continue this one: drain and restart the decoder."""
        self._emit(self.decoder.decode(None))
        self.decoder = new_decoder(self.info.codec, whole_clip=True)

    def finish(self) -> None:
        self._emit(self.decoder.decode(None))
        self.writer.mux_encoded_video(self.encoder.encode(None))

    def _emit(self, frames: list[av.VideoFrame]) -> None:
        tl = self.timeline
        for frame in frames:
            if frame.pts is None:
                continue
            t = frame.pts / TICKS
            if t >= tl.end - EPS:
                self.done = True
                continue
            if not tl.wanted(t) or (self._last_time is not None and t <= self._last_time):
                continue
            if tl.first is None:
                tl.first = t
            pts = round(tl.out_time(t) * TICKS)
            if self._last_pts is not None and pts <= self._last_pts:
                continue
            self._last_pts, self._last_time = pts, t
            out = frame.reformat(width=self.info.width, height=self.info.height, format="yuv420p")
            out.pts = pts
            out.pict_type = PictureType.NONE  # the source's frame types must not bind x264
            out.time_base = self.encoder.time_base
            self.writer.mux_encoded_video(self.encoder.encode(out))
            self.encoded += 1
            self.covered = t + self.frame_duration
