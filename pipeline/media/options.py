"""Encoder settings for the re-encoding export types and the smart cut's edges."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EncodeOptions:
    h264_preset: str = "veryfast"
    h264_crf: int = 20
    h265_preset: str = "ultrafast"
    h265_crf: int = 24
    audio_bitrate: int = 128_000
    threads: int = 0  # 0: let the encoder choose
