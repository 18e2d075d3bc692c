"""What a synthetic archive looks like: one frozen value shared by every writer."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

AUDIO_RATE = 48_000


@dataclass(frozen=True)
class ArchiveSpec:
    seconds: float = 6.0  # recording length
    width: int = 320
    height: int = 180
    fps: Fraction = Fraction(25)  # Fraction(30000, 1001) for 29.97
    gop_frames: int = 50  # keyframe interval in frames (segment = one or more GOPs)
    segment_seconds: float = 2.0
    codec: Literal["h264", "hevc"] = "h264"
    bframes: int = 2
    open_gop: bool = False
    audio: bool = True  # AAC, 48 kHz, mono
    epoch_ms: int | None = 1_562_253_600_000  # wall clock of archive time 0 (None: no anchor)
    first_frame: int = 0  # frame index of the first recorded frame
    beep_every: int = 25  # a short 1 kHz beep starts at the time of every Nth frame
    crf: int = 23
    preset: str = "ultrafast"

    def __post_init__(self) -> None:
        if not isinstance(self.fps, Fraction):
            object.__setattr__(self, "fps", Fraction(self.fps))
        if self.width % 2 or self.height % 2 or self.width < 32 or self.height < 18:
            raise ValueError(f"frame size {self.width}x{self.height} must be even and >= 32x18")
        if self.gop_frames <= 0 or self.seconds <= 0:
            raise ValueError("gop_frames and seconds must be positive")
        # Keyframes fall on absolute multiples of gop_frames only if the encode starts on one.
        if self.first_frame % self.gop_frames:
            raise ValueError("first_frame must be a multiple of gop_frames")

    @property
    def frame_count(self) -> int:
        return round(self.seconds * self.fps)

    @property
    def end_frame(self) -> int:
        """One past the last recorded frame index."""
        return self.first_frame + self.frame_count

    @property
    def segment_frames(self) -> int:
        """Frames per media segment: a whole number of GOPs close to ``segment_seconds``."""
        gops = max(1, round(self.segment_seconds * self.fps / self.gop_frames))
        return gops * self.gop_frames

    @property
    def segment_duration(self) -> Fraction:
        return self.segment_frames / self.fps

    @property
    def start_time(self) -> float:
        return frame_time(self, self.first_frame)

    @property
    def end_time(self) -> float:
        return frame_time(self, self.end_frame)

    def start_pos_ms(self, index: int) -> int:
        """StartPos (epoch ms) that asks for source frame ``index`` first.

        Rounded down: at 29.97 fps, frame 70 is shown at 2335.67 ms, and a StartPos of
        2336 ms (``round``) would already ask for frame 71.
        """
        if self.epoch_ms is None:
            raise ValueError("this archive has no wall-clock anchor")
        return self.epoch_ms + math.floor(index * 1000 / self.fps)

    def segment_bounds(self, start_frame: int, end_frame: int) -> list[tuple[int, int]]:
        """[start, end) frame ranges of the segments between two frame indices.

        Boundaries sit on absolute multiples of ``segment_frames``, so the first segment of
        an archive that starts mid-segment is shorter.
        """
        n = self.segment_frames
        bounds = []
        a = start_frame
        while a < end_frame:
            b = min(end_frame, (a // n + 1) * n)
            bounds.append((a, b))
            a = b
        return bounds


def frame_time(spec: ArchiveSpec, index: int) -> float:
    """Archive time (s) of source frame ``index``."""
    return float(index / spec.fps)


def frame_at(spec: ArchiveSpec, seconds: float) -> int:
    """Index of the first frame shown at or after archive time ``seconds``."""
    k = int(Fraction(seconds).limit_denominator(1_000_000) * spec.fps)
    while frame_time(spec, k) < seconds - 1e-9:
        k += 1
    return k
