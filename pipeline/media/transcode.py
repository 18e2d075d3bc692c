"""export_type 1 and 2: decode the range and encode it with libx264 / libx265."""

from __future__ import annotations

from typing import Literal

import av
from av.video.frame import PictureType

from pipeline.media.encode import TICKS, new_decoder, packet
from pipeline.media.options import EncodeOptions
from pipeline.media.placement import Placement
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
        self.placement = Placement(timeline)
        self.done = False
        self.encoded = 0

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
            out = frame.reformat(width=self.info.width, height=self.info.height, format="yuv420p")
            out.pts = pts
            out.pict_type = PictureType.NONE  # the source's frame types must not bind x264
            out.time_base = self.encoder.time_base
            self.writer.mux_encoded_video(self.encoder.encode(out))
            self.encoded += 1
