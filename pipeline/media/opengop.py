"""Starting a copy on an H.264 open-GOP I picture: rewrite it into an IDR.

An open-GOP I picture (NAL type 1, announced by a recovery point SEI) cannot follow
re-encoded pictures as it is: its source SPS may only become active at an IDR, its
frame_num and picture order count continue the GOP before, and FFmpeg's decoder drops it
(out of order, or a frame_num gap) after the edge encoder's pictures.  An I picture
decodes from nothing, so it becomes an IDR by its slice headers alone: NAL type 5,
frame_num 0, an idr_pic_id, IDR reference marking.  The pictures copied after it get
their frame_num moved by the same amount (same width, patched in place), so the DPB
holds what it held in the source; picture order counts stay the source's (after an IDR
they are relative to its lsb, so they keep their order).
"""

from __future__ import annotations

from pipeline.errors import MediaError
from pipeline.media.bits import BitReader, BitWriter, escape, unescape
from pipeline.media.h264 import (
    IDR,
    NON_IDR,
    Mmco,
    ParameterSets,
    SliceHeader,
    Unsupported,
    frame_num_at,
    parse_slice_header,
)
from pipeline.media.nal import START_CODE, split_annexb


def rebuild(nal: bytes, h: SliceHeader, r: BitReader, *, idr: bool, frame_num: int) -> bytes:
    """``nal`` with a new frame_num and, for an IDR, IDR fields; else h.mmco as marking."""
    w = BitWriter()
    w.copy(r, 0, h.frame_num_pos)
    w.put(frame_num, h.sps.frame_num_bits)
    after = h.frame_num_pos + h.sps.frame_num_bits
    fields = after + (0 if h.sps.frame_mbs_only else 1 + int(h.field))
    w.copy(r, after, fields)
    if idr:
        w.ue(0)  # idr_pic_id
    w.copy(r, fields, h.marking[0])
    if idr:
        w.put(0, 2)  # no_output_of_prior_pics_flag, long_term_reference_flag
    elif h.ref_idc:
        _write_marking(w, h.mmco)
    if h.pps.cabac:
        # CABAC slice data starts byte-aligned after cabac_alignment_one_bits: kept as it is.
        w.copy(r, h.marking[1], h.end)
        pad = -w.size % 8
        w.put((1 << pad) - 1, pad)
        body = w.value.to_bytes(w.size // 8, "big") + r.data[-(-h.end // 8) :]
    else:
        # CAVLC slice data follows the header bit for bit: it moves with it.
        w.copy(r, h.marking[1], r.size)
        pad = -w.size % 8
        w.put(0, pad)
        body = w.value.to_bytes(w.size // 8, "big").rstrip(b"\x00")  # stop bit stays
    kind = IDR if idr else nal[0] & 0x1F
    return bytes([(nal[0] & 0xE0) | kind]) + escape(body)


def _write_marking(w: BitWriter, mmco: list[Mmco] | None) -> None:
    if mmco is None:
        w.put(0, 1)
        return
    w.put(1, 1)
    for op, args in mmco:
        w.ue(op)
        for a in args:
            w.ue(a)
    w.ue(0)


def with_frame_num(nal: bytes, sets: ParameterSets, shift: int) -> bytes:
    """``nal`` (a non-IDR slice) with its frame_num moved back by ``shift``, in place."""
    # Only the first bytes change: escape again just a prefix that ends on a byte which is
    # neither zero nor preceded by zero, so the rest's emulation prevention is unchanged.
    cut = 24
    while cut < len(nal) and (nal[cut - 1] == 0 or nal[cut - 2] == 0):
        cut += 1
    rbsp = unescape(nal[1:cut])
    r = BitReader(rbsp)
    _, sps, _ = frame_num_at(r, sets)
    bits = sps.frame_num_bits
    old = r.u(bits)
    if r.pos + 8 > r.size and cut < len(nal):  # the prefix's last byte must stay as it is
        raise Unsupported("slice header prefix too short")
    new = (old - shift) % (1 << bits)
    patched = r.value ^ ((old ^ new) << (r.size - r.pos))
    return nal[:1] + escape(patched.to_bytes(len(rbsp), "big")) + nal[cut:]


class CopyRun:
    """Rewrites the access units of one run of copied H.264 GOPs (Annex B, in order).

    The run starts on a keyframe.  An IDR is taken as it is.  An open-GOP I picture
    becomes an IDR, and the run's later pictures get frame_num - (its frame_num) until the
    next IDR; in the first few reference pictures after it, marking operations on pictures
    from before it (x264 drops its pyramid B-frames that way) are removed, since the IDR
    already emptied the DPB.
    """

    def __init__(self) -> None:
        self.sets = ParameterSets()
        self.shift = 0
        self.checks = 0  # reference pictures left that may name pre-IDR pictures

    def first(self, data: bytes) -> bytes:
        """The run's keyframe; raises Unsupported when it cannot start a copy."""
        out: list[bytes] = []
        for nal in split_annexb(data):
            self.sets.learn(nal)
            if nal[0] & 0x1F == NON_IDR:
                r = BitReader(unescape(nal[1:]))
                h = parse_slice_header(nal, r, self.sets)
                if h.slice_type != 2 or h.field:
                    raise Unsupported("open-GOP keyframe that is not a frame of I slices")
                self.shift, self.checks = h.frame_num, h.sps.ref_frames
                nal = rebuild(nal, h, r, idr=True, frame_num=0)
            out.append(nal)
        return b"".join(START_CODE + n for n in out)

    def next(self, data: bytes) -> bytes:
        """A later picture of the run."""
        if self.shift == 0 and self.checks == 0:
            return data
        try:
            return self._picture(data)
        except (Unsupported, ValueError) as e:
            # Its keyframe parsed, so this is a damaged picture, not an unknown feature.
            raise MediaError(f"cannot renumber a copied picture: {e}", obj="video") from e

    def _picture(self, data: bytes) -> bytes:
        out: list[bytes] = []
        referenced = False
        for nal in split_annexb(data):
            kind = nal[0] & 0x1F
            self.sets.learn(nal)
            if kind == IDR:
                self.shift = self.checks = 0
            elif kind == NON_IDR:
                referenced = referenced or bool(nal[0] >> 5)
                nal = self._slice(nal)
            out.append(nal)
        if referenced and self.checks:
            self.checks -= 1
        return b"".join(START_CODE + n for n in out)

    def _slice(self, nal: bytes) -> bytes:
        if not (self.checks and nal[0] >> 5):
            return with_frame_num(nal, self.sets, self.shift)
        r = BitReader(unescape(nal[1:]))
        try:
            h = parse_slice_header(nal, r, self.sets)
        except Unsupported:  # its marking cannot be read: it names no pre-IDR picture here
            return with_frame_num(nal, self.sets, self.shift)
        frame_num = (h.frame_num - self.shift) % (1 << h.sps.frame_num_bits)
        if h.mmco and not h.field:
            # picNumX = CurrPicNum - (difference_of_pic_nums_minus1 + 1); below 0 it names
            # a picture from before the IDR (no frame_num wrap this close after it).
            h.mmco = [m for m in h.mmco if m[0] not in (1, 3) or frame_num - m[1][0] - 1 >= 0]
        return rebuild(nal, h, r, idr=False, frame_num=frame_num)


def convertible(data: bytes) -> bool:
    """Whether the keyframe ``data`` (Annex B, parameter sets in-band) can start a copy."""
    try:
        CopyRun().first(data)
    except (Unsupported, ValueError):
        return False
    return True
