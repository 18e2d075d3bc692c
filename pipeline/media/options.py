"""Encoder settings for the re-encoding export types and the smart cut's edges."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EncodeOptions:
    h264_preset: str = "veryfast"
    # H.264 smart-cut edges (under a GOP at each end of a type 0 clip).  At 1080p (bench/
    # smartcut.py) ultrafast encodes them with ~35 % less CPU than superfast and no rc
    # lookahead's memory, at a higher PSNR against the source at the same CRF (it spends
    # more bits: 2.6x superfast's on those frames only, ~6 % of a 60 s clip).
    edge_h264_preset: str = "ultrafast"
    h264_crf: int = 20
    h265_preset: str = "ultrafast"
    h265_crf: int = 24
    audio_bitrate: int = 128_000
    threads: int = 0  # 0: let the encoder choose
