"""Re-encoded audio: decode packets run by run, splice their samples, encode AAC.

Kept apart from audio.py because it is the only media code that needs numpy, which costs
about 0.1 s to import: a copy-only clip or a thumbnail never loads it.
"""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np

from pipeline.media.source import AudioInfo, TimedPacket
from pipeline.media.writer import ClipWriter


class PcmSplicer:
    """Decodes packets run by run, splices their samples on the output timeline, encodes."""

    def __init__(
        self,
        info: AudioInfo,
        writer: ClipWriter,
        encoder: av.AudioCodecContext,
        *,
        keep_from: int | None,
    ) -> None:
        self.info = info
        self.rate = info.sample_rate
        self.channels = info.channels
        self.writer = writer
        self.encoder = encoder
        self.keep_from = keep_from  # encoded packets before this sample are warm-up
        self.tb = Fraction(1, self.rate)
        self.decoder: av.AudioCodecContext | None = None
        self.resampler: av.AudioResampler | None = None
        self.cursor: int | None = None  # output sample the next input sample lands on
        self.queue: list[np.ndarray] = []
        self.queued = 0
        self.encoded_to: int | None = None  # output sample of the next frame to encode
        self.frame_size = 1024

    def new_run(self, warm: TimedPacket | None) -> None:
        decoder = av.CodecContext.create(self.info.codec, "r")
        assert isinstance(decoder, av.AudioCodecContext)
        if self.info.extradata:
            decoder.extradata = self.info.extradata
        self.decoder = decoder
        self.resampler = None
        if warm is not None:
            self._frames(warm, 0)  # its output would be incomplete anyway; only the state

    def decode(
        self, packet: TimedPacket, out: float, *, limit: int | None, keep: bool = True
    ) -> None:
        """Decode ``packet`` onto output time ``out`` (s); samples from ``limit`` on go."""
        start = round(out * self.rate)
        for frame in self._frames(packet, start):
            if not keep:
                continue
            samples = self._planar(frame)
            self.write(start, samples, limit)
            start += samples.shape[1]

    def _frames(self, p: TimedPacket, pts: int) -> list[av.AudioFrame]:
        assert self.decoder is not None
        pkt = av.Packet(p.data)
        pkt.pts = pkt.dts = pts
        pkt.time_base = self.tb
        try:
            return list(self.decoder.decode(pkt))
        except av.FFmpegError:
            return []  # one undecodable audio frame: a few ms of silence, not a failed clip

    def _planar(self, frame: av.AudioFrame) -> np.ndarray:
        if (
            frame.format.name != "fltp"
            or frame.sample_rate != self.rate
            or frame.layout.nb_channels != self.channels
        ):
            if self.resampler is None:
                self.resampler = av.AudioResampler(
                    format="fltp", layout=self.info.layout, rate=self.rate
                )
            parts = [f.to_ndarray() for f in self.resampler.resample(frame)]
            if not parts:
                return np.zeros((self.channels, 0), dtype=np.float32)
            return np.concatenate(parts, axis=1).astype(np.float32, copy=False)
        return frame.to_ndarray().astype(np.float32, copy=False)

    def pad_to(self, position: int) -> None:
        """Silence up to output sample ``position`` where the audio stops short of it."""
        if self.cursor is not None and position > self.cursor:
            self.write(self.cursor, np.zeros((self.channels, position - self.cursor), np.float32))

    def write(self, start: int, samples: np.ndarray, limit: int | None = None) -> None:
        if limit is not None:
            samples = samples[:, : max(0, limit - start)]
        if self.cursor is None:
            self.cursor = self.encoded_to = start
        if start < self.cursor:  # overlaps what is already there: the earlier run wins
            samples = samples[:, self.cursor - start :]
        elif start > self.cursor:  # a hole in the audio: silence keeps the rest in place
            gap = np.zeros((samples.shape[0], start - self.cursor), np.float32)
            samples = np.concatenate([gap, samples], axis=1)
        if samples.shape[1] == 0:
            return
        self.queue.append(samples)
        self.queued += samples.shape[1]
        self.cursor += samples.shape[1]
        if self.queued >= self.frame_size:
            self._encode(final=False)

    def finish(self, end: int) -> None:
        """Encode what is queued up to output sample ``end`` and flush the encoder."""
        if self.cursor is not None and self.cursor > end and self.queued:
            drop = min(self.queued, self.cursor - end)
            self.queued -= drop
            self.cursor -= drop
            data = np.concatenate(self.queue, axis=1)[:, : self.queued]
            self.queue = [data] if self.queued else []
        self._encode(final=True)
        self._mux(self.encoder.encode(None))

    def _encode(self, *, final: bool) -> None:
        if not self.queue:
            return
        data = np.concatenate(self.queue, axis=1)
        n = data.shape[1]
        whole = n - n % self.frame_size
        stop = n if final else whole
        assert self.encoded_to is not None
        for i in range(0, stop, self.frame_size):
            chunk = np.ascontiguousarray(data[:, i : min(stop, i + self.frame_size)])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=self.info.layout)
            frame.sample_rate = self.rate
            frame.pts = self.encoded_to
            frame.time_base = self.tb
            self.encoded_to += chunk.shape[1]
            self._mux(self.encoder.encode(frame))
        rest = data[:, stop:]
        self.queue = [rest] if rest.shape[1] else []
        self.queued = rest.shape[1]

    def _mux(self, packets: list[av.Packet]) -> None:
        for q in packets:
            if q.pts is None:
                continue
            if self.keep_from is None:
                self.writer.mux_audio_packets([q])
            elif q.pts >= self.keep_from:
                self.writer.mux_audio(bytes(q), q.pts, q.duration or self.frame_size)
