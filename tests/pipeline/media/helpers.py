"""Decode outputs the way the acceptance rule says: fresh decoder, MP4 edit lists ignored."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from pipeline.manifest import RangeRequest, resolve
from pipeline.model import Resolution
from pipeline.storage import Blobs
from pipeline.synthetic import ArchiveSpec, find_beeps, read_frame_index

AUDIO_FRAME = 1024 / 48_000


@dataclass
class Decoded:
    indices: list[int | None]  # source frame index of every output frame, display order
    times: list[float]  # their output presentation times (s)
    video_span: tuple[float, float]
    audio_span: tuple[float, float] | None
    beeps: list[float]  # beep onsets on the output timeline (s)


def request(spec: ArchiveSpec, first: int, frames: int) -> RangeRequest:
    """A range asking for source frames [first, first + frames)."""
    start = spec.start_pos_ms(first)
    end = spec.start_pos_ms(first + frames)
    return RangeRequest(start_pos_ms=start, start_time_s=None, duration_ms=end - start)


def resolve_frames(manifest: Path, spec: ArchiveSpec, first: int, frames: int) -> Resolution:
    return resolve(Blobs(), str(manifest), request(spec, first, frames))


def decode(path: Path, *, ignore_editlist: bool = True) -> Decoded:
    options = {"ignore_editlist": "1"} if ignore_editlist else {}
    with av.open(str(path), options=options) as c:
        vs = c.streams.video[0]
        indices, times = [], []
        v_end = 0.0
        for f in c.decode(vs):
            indices.append(read_frame_index(f))
            times.append(float(f.time or 0.0))
            duration = float((f.duration or 0) * (f.time_base or 0))
            v_end = max(v_end, float(f.time or 0.0) + duration)
    audio_span = None
    beeps: list[float] = []
    with av.open(str(path), options=options) as c:
        if c.streams.audio:
            chunks: list[tuple[float, np.ndarray]] = []
            rate = c.streams.audio[0].sample_rate
            for af in c.decode(c.streams.audio[0]):
                chunks.append(
                    (float(af.time or 0.0), af.to_ndarray().reshape(af.layout.nb_channels, -1)[0])
                )
            if chunks:
                a_start = chunks[0][0]
                a_end = chunks[-1][0] + len(chunks[-1][1]) / rate
                audio_span = (a_start, a_end)
                # Place every frame at its own timestamp: a dropped packet leaves silence
                # instead of pulling later beeps earlier.
                pcm = np.zeros(round((a_end - a_start) * rate) + 1, dtype=np.float32)
                for t, samples in chunks:
                    i = round((t - a_start) * rate)
                    pcm[i : i + len(samples)] = samples[: len(pcm) - i]
                beeps = [a_start + b for b in find_beeps(pcm, rate)]
    return Decoded(indices, times, (times[0] if times else 0.0, v_end), audio_span, beeps)


def beep_offsets(d: Decoded, beep_every: int) -> list[float]:
    """For each beep heard, its distance (s) to the output time of the frame it belongs to.

    Beeps within an audio frame or two of the clip's edges are left out: the first AAC
    frame of a copied stream decodes without its predecessor's overlap.
    """
    frame_time = {i: t for i, t in zip(d.indices, d.times, strict=True) if i is not None}
    assert d.audio_span is not None
    lo = d.audio_span[0] + 2 * AUDIO_FRAME
    hi = d.video_span[1] - AUDIO_FRAME
    offsets = []
    for b in d.beeps:
        if not lo <= b <= hi:
            continue
        candidates = [t for i, t in frame_time.items() if i % beep_every == 0]
        if candidates:
            offsets.append(min(abs(b - t) for t in candidates))
    return offsets
