"""Encoder settings for the re-encoding export types and the smart cut's edges."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EncodeOptions:
    h264_preset: str = "veryfast"
    # H.264 smart-cut edges (under a GOP at each end of a type 0 clip).  At 720p superfast
    # took about half the time of veryfast and ~30 MiB less memory (no rc lookahead), with
    # a slightly higher PSNR at the same CRF for ~40 % more bits on those frames only.
    edge_h264_preset: str = "superfast"
    h264_crf: int = 20
    h265_preset: str = "ultrafast"
    h265_crf: int = 24
    audio_bitrate: int = 128_000
    threads: int = 0  # 0: let the encoder choose
