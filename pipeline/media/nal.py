"""H.264/HEVC bitstream plumbing: length-prefixed (MP4) <-> Annex B, parameter sets.

Everything the media work handles internally is Annex B with the parameter sets in-band on
every keyframe.  That one format decodes with a fresh decoder, muxes into MPEG-TS as is, and
muxes into MP4 (the mov muxer converts start codes to lengths and keeps the in-band sets), so
re-encoded and copied pictures can carry different SPS/PPS without confusing a decoder.
"""

from __future__ import annotations

START_CODE = b"\x00\x00\x00\x01"

_H264_PARAM_SETS = {7, 8}  # SPS, PPS
_HEVC_PARAM_SETS = {32, 33, 34}  # VPS, SPS, PPS


def nal_type(codec: str, nal: bytes) -> int:
    if not nal:
        return -1
    if codec == "hevc":
        return (nal[0] >> 1) & 0x3F
    return nal[0] & 0x1F


def is_param_set(codec: str, nal: bytes) -> bool:
    kinds = _HEVC_PARAM_SETS if codec == "hevc" else _H264_PARAM_SETS
    return nal_type(codec, nal) in kinds


def split_annexb(data: bytes) -> list[bytes]:
    """NAL units of an Annex B buffer (3- or 4-byte start codes)."""
    nals: list[bytes] = []
    i = data.find(b"\x00\x00\x01")
    while i >= 0:
        begin = i + 3
        j = data.find(b"\x00\x00\x01", begin)
        end = len(data) if j < 0 else j
        nal = data[begin:end]
        # A 4-byte start code or trailing zero bytes leave zeros at the end of a NAL.
        nal = nal.rstrip(b"\x00") if j >= 0 else nal
        if nal:
            nals.append(nal)
        i = j
    return nals


def split_length_prefixed(data: bytes, length_size: int) -> list[bytes]:
    nals: list[bytes] = []
    i = 0
    while i + length_size <= len(data):
        n = int.from_bytes(data[i : i + length_size], "big")
        i += length_size
        if n <= 0 or i + n > len(data):
            raise ValueError("NAL length runs past the end of the sample")
        nals.append(data[i : i + n])
        i += n
    if i != len(data):
        raise ValueError("trailing bytes after the last NAL unit")
    return nals


def join_annexb(nals: list[bytes]) -> bytes:
    return b"".join(START_CODE + n for n in nals)


def parse_avcc(extradata: bytes) -> tuple[int, list[bytes]]:
    """(NAL length size, [SPS..., PPS...]) from an AVCDecoderConfigurationRecord."""
    length_size = (extradata[4] & 0x03) + 1
    sets: list[bytes] = []
    i = 5
    for count_mask in (0x1F, 0xFF):
        count = extradata[i] & count_mask
        i += 1
        for _ in range(count):
            n = int.from_bytes(extradata[i : i + 2], "big")
            sets.append(extradata[i + 2 : i + 2 + n])
            i += 2 + n
    return length_size, sets


def parse_hvcc(extradata: bytes) -> tuple[int, list[bytes]]:
    """(NAL length size, [VPS, SPS, PPS, ...]) from an HEVCDecoderConfigurationRecord."""
    length_size = (extradata[21] & 0x03) + 1
    arrays = extradata[22]
    sets: list[bytes] = []
    i = 23
    for _ in range(arrays):
        i += 1  # array_completeness, reserved, NAL_unit_type
        count = int.from_bytes(extradata[i : i + 2], "big")
        i += 2
        for _ in range(count):
            n = int.from_bytes(extradata[i : i + 2], "big")
            sets.append(extradata[i + 2 : i + 2 + n])
            i += 2 + n
    return length_size, sets


class AnnexBNormalizer:
    """Turns one stream's packets into Annex B with parameter sets on every keyframe.

    ``extradata`` may be an avcC/hvcC record (MP4), Annex B (TS) or empty; parameter sets
    seen in-band replace the remembered ones, so a stream whose sets change (a new period)
    keeps decoding.
    """

    def __init__(self, codec: str, extradata: bytes | None) -> None:
        self.codec = codec
        self.length_size: int | None = None
        self.param_sets: list[bytes] = []
        if extradata:
            if extradata[0] == 1 and len(extradata) > 7:
                parse = parse_hvcc if codec == "hevc" else parse_avcc
                self.length_size, self.param_sets = parse(extradata)
            else:
                self.param_sets = [n for n in split_annexb(extradata) if is_param_set(codec, n)]

    def convert(self, data: bytes, keyframe: bool) -> bytes:
        if self.length_size is not None:
            nals = split_length_prefixed(data, self.length_size)
        else:
            nals = split_annexb(data)
        inband = [n for n in nals if is_param_set(self.codec, n)]
        if inband:
            self.param_sets = _merge_param_sets(self.codec, self.param_sets, inband)
        elif keyframe and self.param_sets:
            nals = _after_delimiters(self.codec, nals, self.param_sets)
        return join_annexb(nals)

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
