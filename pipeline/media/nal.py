"""H.264/HEVC Annex B plumbing: NAL units, parameter sets kept in-band on every keyframe.

Everything the media work handles internally is Annex B with the parameter sets in-band on
every keyframe.  That one format decodes with a fresh decoder, muxes into MPEG-TS as is, and
muxes into MP4 (the mov muxer converts start codes to lengths and keeps the in-band sets), so
re-encoded and copied pictures can carry different SPS/PPS without confusing a decoder.

MP4 samples reach here already converted by FFmpeg's bitstream filters (``MP4_TO_ANNEXB``),
which also put the init segment's sets on every keyframe.  What the filters cannot do is
remembered across segments: an MPEG-TS source whose sets are only in some segments, or only
on some keyframes, gets them from ``AnnexBNormalizer``.
"""

from __future__ import annotations

START_CODE = b"\x00\x00\x00\x01"

_H264_PARAM_SETS = {7, 8}  # SPS, PPS
_HEVC_PARAM_SETS = {32, 33, 34}  # VPS, SPS, PPS

# Bitstream filter chains (``av.bitstream.BitStreamFilterContext``) from an avcC/hvcC stream
# to Annex B with the init segment's sets on every keyframe.  hevc_mp4toannexb puts them
# before every IRAP picture (CRA included), and an HEVC sync sample is always one.
# h264_mp4toannexb promises them before IDR slices; FFmpeg 8.1's (PyAV 18.1) was measured to
# cover an open GOP's non-IDR I keyframes as well, and dump_extra keeps that true for the
# other FFmpeg builds ``av>=14`` allows.  Its price: an IDR that starts with an SEI (x264's
# first) carries the sets twice, which decodes the same (bench/bitstream_ab.py).
MP4_TO_ANNEXB = {
    "h264": "h264_mp4toannexb,dump_extra=freq=keyframe",
    "hevc": "hevc_mp4toannexb",
}


def nal_type(codec: str, nal: bytes) -> int:
    if not nal:
        return -1
    if codec == "hevc":
        return (nal[0] >> 1) & 0x3F
    return nal[0] & 0x1F


def split_annexb(data: bytes, sets_of: str | None = None) -> list[bytes]:
    """NAL units of an Annex B buffer (3- or 4-byte start codes).

    With ``sets_of`` (a codec), only its parameter sets: the other units, most of a packet's
    bytes, are not copied out.
    """
    kinds = _HEVC_PARAM_SETS if sets_of == "hevc" else _H264_PARAM_SETS
    nals: list[bytes] = []
    i = data.find(b"\x00\x00\x01")
    while i >= 0:
        begin = i + 3
        j = data.find(b"\x00\x00\x01", begin)
        if sets_of is None or nal_type(sets_of, data[begin : begin + 1]) in kinds:
            nal = data[begin : len(data) if j < 0 else j]
            # A 4-byte start code or trailing zero bytes leave zeros at the end of a NAL.
            nal = nal.rstrip(b"\x00") if j >= 0 else nal
            if nal:
                nals.append(nal)
        i = j
    return nals


def join_annexb(nals: list[bytes]) -> bytes:
    return b"".join(START_CODE + n for n in nals)


class AnnexBNormalizer:
    """Keeps one stream's parameter sets in-band on every keyframe, from segment to segment.

    ``extradata`` may hold Annex B sets (an MPEG-TS stream's, found by the probe) or be
    empty.  Sets seen in-band replace the remembered ones, so a stream whose sets change (a
    new period) keeps decoding.  Packets that need nothing are returned as they are.
    """

    def __init__(self, codec: str, extradata: bytes | None = None) -> None:
        self.codec = codec
        self.param_sets: list[bytes] = []
        if extradata:
            self.param_sets = split_annexb(extradata, codec)

    def convert(self, data: bytes, keyframe: bool) -> bytes:
        inband = split_annexb(data, self.codec)
        if inband:
            self.param_sets = _merge_param_sets(self.codec, self.param_sets, inband)
        elif keyframe and self.param_sets:
            nals = split_annexb(data)
            return join_annexb(_after_delimiters(self.codec, nals, self.param_sets))
        return data

    def extradata(self) -> bytes:
        return join_annexb(self.param_sets)


def _merge_param_sets(codec: str, old: list[bytes], new: list[bytes]) -> list[bytes]:
    kinds = {nal_type(codec, n) for n in new}
    return [n for n in old if nal_type(codec, n) not in kinds] + new


def _after_delimiters(codec: str, nals: list[bytes], sets: list[bytes]) -> list[bytes]:
    # Parameter sets go after an access unit delimiter (H.264 9, HEVC 35) if there is one.
    aud = 35 if codec == "hevc" else 9
    if nals and nal_type(codec, nals[0]) == aud:
        return [nals[0], *sets, *nals[1:]]
    return [*sets, *nals]


def end_of_sequence(codec: str) -> bytes:
    """An Annex B end-of-sequence NAL unit (H.264 type 10, HEVC EOS_NUT 36)."""
    return START_CODE + (b"\x48\x01" if codec == "hevc" else b"\x0a")
