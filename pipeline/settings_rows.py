"""The rows of the settings table (pipeline/settings.py): what one ``EXPORT_*`` variable
fills, how its text is parsed and how the README documents it, and the encoder's rows,
which fill ``Settings.encode`` (an EncodeOptions) instead of a field of their own."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from pipeline import settings_parsers as parse
from pipeline.media.options import EncodeOptions
from pipeline.settings_parsers import Parser

# fastest first; one line, not twelve, keeps this module under 400 lines
X26X_PRESETS = tuple(
    "ultrafast superfast veryfast faster fast medium slow slower veryslow placebo".split()  # noqa: SIM905
)
PRESET = parse.one_of(X26X_PRESETS)


@dataclass(frozen=True)
class Setting:
    """One ``EXPORT_*`` variable: what it fills, how its text is parsed, how it is documented."""

    var: str
    field: str  # the Settings field, or the EncodeOptions field when ``encode``
    default: object
    parse: Parser
    doc: str  # the README's "Meaning" cell, verbatim
    shown: str | None = None  # the README's "Default" cell when the value alone would mislead
    encode: bool = False

    @property
    def documented_default(self) -> str:
        """The README's "Default" cell for this setting."""
        if self.shown is not None:
            return self.shown
        return "unset" if self.default is None else f"`{self.default}`"


def setting(
    default: Any, parse: Parser, doc: str, *, shown: str | None = None, secret: bool = False
) -> Any:
    """A Settings field read from ``EXPORT_<FIELD NAME>``; secrets stay out of repr()."""
    return field(
        default=default, repr=not secret, metadata={"parse": parse, "doc": doc, "shown": shown}
    )


def encoder_row(var: str, name: str, parser: Parser, doc: str) -> Setting:
    """An encoder variable: it fills ``Settings.encode``; EncodeOptions has its default."""
    default = next(f.default for f in dataclasses.fields(EncodeOptions) if f.name == name)
    return Setting(var, name, default, parser, doc, encode=True)


ENCODE_ROWS = (
    encoder_row(
        "EXPORT_H264_PRESET",
        "h264_preset",
        PRESET,
        "libx264 preset for `export_type` 1 (`ultrafast` ... `placebo`).",
    ),
    encoder_row(
        "EXPORT_EDGE_H264_PRESET",
        "edge_h264_preset",
        PRESET,
        "libx264 preset for the re-encoded partial GOPs of an `export_type` 0 smart cut of H.264 "
        "(`bench/smartcut.py`, 1080p, 50 edge frames at CRF `EXPORT_H264_CRF`: ultrafast has the "
        "highest PSNR against the source, 53.2 dB vs 51.9 superfast and 51.4 veryfast, with "
        "~35 % less encode CPU than superfast and 30 / 145 MiB less peak memory than superfast / "
        "veryfast; its price is 2.6x superfast's bytes on those frames only, ~6 % of a 60 s clip).",
    ),
    encoder_row("EXPORT_H264_CRF", "h264_crf", parse.whole(0, 51), "libx264 CRF, 0..51."),
    encoder_row(
        "EXPORT_H265_PRESET",
        "h265_preset",
        PRESET,
        "libx265 preset for `export_type` 2 and HEVC smart-cut edges.",
    ),
    encoder_row("EXPORT_H265_CRF", "h265_crf", parse.whole(0, 51), "libx265 CRF, 0..51."),
    encoder_row(
        "EXPORT_AUDIO_BITRATE",
        "audio_bitrate",
        parse.whole(16_000, 512_000),
        "AAC bit rate (bit/s) when audio cannot be copied, 16000..512000.",
    ),
    encoder_row(
        "EXPORT_ENCODE_THREADS",
        "threads",
        parse.whole(0, 256),
        "Encoder threads; 0 lets the encoder choose; 1 also makes a transcode's decoder one"
        " thread, so a worker uses about one core; 0..256.",
    ),
)
