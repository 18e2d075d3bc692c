"""Self-identifying media: a block barcode of the frame index, and beeps on a frame grid.

The barcode is 24 cells (8 columns x 3 rows) in the upper part of the picture, laid out in
fractions of the frame size so it reads back after any downscale.  20 cells carry the frame
index, 4 carry a checksum that is never zero for a blank picture, so a grey, black or
half-decoded frame reads as ``None`` instead of a wrong index.
"""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np

from pipeline.synthetic.spec import AUDIO_RATE, ArchiveSpec

DATA_BITS = 20
CHECK_BITS = 4
COLS, ROWS = 8, 3
MAX_INDEX = (1 << DATA_BITS) - 1
# Barcode region as fractions of width/height.
_X0, _X1 = 0.04, 0.96
_Y0, _Y1 = 0.06, 0.46
_BLACK, _WHITE = 16, 235  # limited-range luma
_LOW, _HIGH = 90, 166  # a cell whose mean lies between these is unreadable

BEEP_HZ = 1000.0
BEEP_SECONDS = 0.05
BEEP_AMPLITUDE = 0.5


def _checksum(value: int) -> int:
    nibbles = sum((value >> s) & 0xF for s in range(0, DATA_BITS, 4))
    return (nibbles & 0xF) ^ 0xA  # the xor keeps an all-black picture from validating


def _bits(index: int) -> list[int]:
    word = (index << CHECK_BITS) | _checksum(index)
    total = DATA_BITS + CHECK_BITS
    return [(word >> (total - 1 - i)) & 1 for i in range(total)]


def _cells(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """Pixel box (x0, y0, x1, y1) of every cell, row-major."""
    xs = [round(width * (_X0 + (_X1 - _X0) * c / COLS)) for c in range(COLS + 1)]
    ys = [round(height * (_Y0 + (_Y1 - _Y0) * r / ROWS)) for r in range(ROWS + 1)]
    return [(xs[c], ys[r], xs[c + 1], ys[r + 1]) for r in range(ROWS) for c in range(COLS)]


def draw_luma(index: int, width: int, height: int) -> np.ndarray:
    """Luma plane of frame ``index``: moving background plus the barcode."""
    if not 0 <= index <= MAX_INDEX:
        raise ValueError(f"frame index {index} does not fit in {DATA_BITS} bits")
    # A ramp that scrolls with the index gives the encoder real motion to code.
    x = np.arange(width, dtype=np.int32)
    y = np.arange(height, dtype=np.int32)[:, None]
    ramp = ((x + 3 * index) % 128 + (y * 2 + index) % 64) // 2
    luma = (60 + ramp).astype(np.uint8)
    pad_x, pad_y = max(2, width // 80), max(2, height // 45)
    top = _cells(width, height)
    luma[top[0][1] - pad_y : top[-1][3] + pad_y, top[0][0] - pad_x : top[-1][2] + pad_x] = 128
    for bit, (x0, y0, x1, y1) in zip(_bits(index), top, strict=True):
        luma[y0:y1, x0:x1] = _WHITE if bit else _BLACK
    return luma


def draw_frame(index: int, width: int, height: int) -> av.VideoFrame:
    """A yuv420p frame showing ``index``; chroma drifts slowly so colour is coded too."""
    luma = draw_luma(index, width, height)
    cw, ch = width // 2, height // 2
    u = np.full((ch, cw), 128 + (index % 50) - 25, np.uint8)
    v = np.full((ch, cw), 128 - (index % 30) + 15, np.uint8)
    flat = np.concatenate([luma.ravel(), u.ravel(), v.ravel()]).reshape(height * 3 // 2, width)
    return av.VideoFrame.from_ndarray(flat, format="yuv420p")


def _luma_of(frame: av.VideoFrame) -> np.ndarray:
    if frame.format.name in ("yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "nv12"):
        plane = frame.planes[0]
        raw = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)
        return raw[:, : frame.width]
    return frame.to_ndarray(format="gray")


def read_luma_index(luma: np.ndarray) -> int | None:
    height, width = luma.shape[:2]
    word = 0
    for x0, y0, x1, y1 in _cells(width, height):
        # Sample the middle half of the cell: edges bleed under compression and scaling.
        dx, dy = (x1 - x0) // 4, (y1 - y0) // 4
        cell = luma[y0 + dy : y1 - dy, x0 + dx : x1 - dx]
        if cell.size == 0:
            return None
        mean = float(cell.mean())
        if _LOW <= mean <= _HIGH:
            return None
        word = (word << 1) | (mean > _HIGH)
    value, check = word >> CHECK_BITS, word & ((1 << CHECK_BITS) - 1)
    return value if _checksum(value) == check else None


def read_frame_index(frame: av.VideoFrame) -> int | None:
    """Decode the drawn barcode; ``None`` if the picture does not carry a readable one."""
    return read_luma_index(_luma_of(frame))


def _beep_onset_sample(spec: ArchiveSpec, k: np.ndarray) -> np.ndarray:
    """Sample index where beep number ``k`` (frame ``k * beep_every``) starts, rounded."""
    num = k * spec.beep_every * AUDIO_RATE * spec.fps.denominator
    return (2 * num + spec.fps.numerator) // (2 * spec.fps.numerator)


def audio_samples(spec: ArchiveSpec, start_sample: int, count: int) -> np.ndarray:
    """Mono float32 PCM for absolute samples [start_sample, start_sample + count)."""
    n = np.arange(start_sample, start_sample + count, dtype=np.int64)
    period = Fraction(spec.beep_every) / spec.fps * AUDIO_RATE  # samples between beeps
    k = (n * period.denominator) // period.numerator
    onset = _beep_onset_sample(spec, k)
    k = np.where(n < onset, k - 1, k)
    onset = _beep_onset_sample(spec, k)
    age = (n - onset) / AUDIO_RATE
    tone = BEEP_AMPLITUDE * np.sin(2 * np.pi * BEEP_HZ * age)
    return np.where((age >= 0) & (age < BEEP_SECONDS), tone, 0.0).astype(np.float32)


def beep_times(spec: ArchiveSpec, start: float, end: float) -> list[float]:
    """Archive times of the beep onsets in [start, end)."""
    first = int(np.ceil(start * spec.fps / spec.beep_every))
    out: list[float] = []
    k = first
    while True:
        t = float(k * spec.beep_every / spec.fps)
        if t >= end:
            return out
        if t >= start:
            out.append(t)
        k += 1


def find_beeps(samples: np.ndarray, sample_rate: int) -> list[float]:
    """Onset times (s, from the buffer's first sample) of the beeps in a PCM buffer.

    ``samples`` is 1-D, or 2-D as PyAV's ``to_ndarray`` gives it (channels first for planar
    audio); integer PCM is scaled to [-1, 1].  A beep already sounding at the first sample is
    not reported.  Accuracy: about one sample on raw PCM, a few ms after AAC.
    """
    x = np.asarray(samples)
    if x.ndim == 2:
        x = x.mean(axis=0) if x.shape[0] <= 8 else x.mean(axis=1)
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float64) / float(np.iinfo(x.dtype).max)
    mag = np.abs(x.astype(np.float64))
    if mag.size == 0 or mag.max() < 0.05:
        return []
    threshold = 0.3 * BEEP_AMPLITUDE if mag.max() >= 0.4 * BEEP_AMPLITUDE else 0.3 * mag.max()
    loud = np.flatnonzero(mag > threshold)
    # A beep crosses the threshold every half cycle; a new beep needs a quiet stretch first.
    quiet = int(sample_rate * (BEEP_SECONDS + 0.02))
    starts = loud[np.diff(loud, prepend=-quiet - 1) > quiet]
    onsets = [_walk_back(mag, int(s), sample_rate) for s in starts]
    # A tone already sounding at the first sample began before this buffer: not an onset here.
    if onsets and onsets[0] == 0.0 and mag[0] > 0.02 * BEEP_AMPLITUDE:
        onsets.pop(0)
    return [s / sample_rate for s in onsets]


def _walk_back(mag: np.ndarray, crossing: int, sample_rate: int) -> float:
    # The tone rises from zero: follow the rise back (at most a quarter cycle) to its foot.
    floor = 0.02 * BEEP_AMPLITUDE
    limit = crossing - int(sample_rate / (4 * BEEP_HZ))
    i = crossing
    while i > max(0, limit) and floor < mag[i - 1] < mag[i]:
        i -= 1
    return float(i - 1) if i > 0 and mag[i - 1] <= floor else float(i)
