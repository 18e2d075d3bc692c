"""H.264 syntax the smart cut needs: SPS, PPS and slice headers (ITU-T H.264 7.3).

Only what locating and rewriting frame_num, the IDR fields and dec_ref_pic_marking()
needs is parsed; streams with slice groups, SP/SI slices or MVC extensions are
``Unsupported`` (the caller then re-encodes instead of copying).
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.media.bits import BitReader, unescape

HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}
NON_IDR, IDR, SPS, PPS = 1, 5, 7, 8


class Unsupported(Exception):
    """A stream feature the rewrite does not handle (internal: never leaves pipeline.media)."""


@dataclass(frozen=True)
class Sps:
    chroma_array_type: int
    separate_colour_plane: bool
    frame_num_bits: int
    poc_type: int
    poc_lsb_bits: int
    delta_pic_order_always_zero: bool
    ref_frames: int
    frame_mbs_only: bool


@dataclass(frozen=True)
class Pps:
    sps_id: int
    cabac: bool
    bottom_field_pic_order: bool
    ref_idx_defaults: tuple[int, int]
    weighted_pred: bool
    weighted_bipred: int
    deblocking_control: bool
    redundant_pic_cnt: bool


def parse_sps(nal: bytes) -> tuple[int, Sps]:
    r = BitReader(unescape(nal[1:]))
    profile = r.u(8)
    r.u(16)  # constraint flags, level
    sps_id = r.ue()
    chroma, separate = 1, False
    if profile in HIGH_PROFILES:
        chroma = r.ue()
        if chroma == 3:
            separate = bool(r.u(1))
        r.ue(), r.ue(), r.u(1)  # bit depths, qpprime_y_zero_transform_bypass
        if r.u(1):
            _skip_scaling_lists(r, 12 if chroma == 3 else 8)
    frame_num_bits = r.ue() + 4
    poc_type = r.ue()
    poc_lsb_bits, always_zero = 0, False
    if poc_type == 0:
        poc_lsb_bits = r.ue() + 4
    elif poc_type == 1:
        always_zero = bool(r.u(1))
        r.se(), r.se()
        for _ in range(r.ue()):
            r.se()
    ref_frames = r.ue()
    r.u(1), r.ue(), r.ue()  # gaps_in_frame_num_value_allowed_flag, size in macroblocks
    frame_mbs_only = bool(r.u(1))
    return sps_id, Sps(
        0 if separate else chroma,
        separate,
        frame_num_bits,
        poc_type,
        poc_lsb_bits,
        always_zero,
        ref_frames,
        frame_mbs_only,
    )


def _skip_scaling_lists(r: BitReader, count: int) -> None:
    for i in range(count):
        if not r.u(1):
            continue
        last = nxt = 8
        for _ in range(16 if i < 6 else 64):
            if nxt:
                nxt = (last + r.se() + 256) % 256
            last = nxt or last


def parse_pps(nal: bytes) -> tuple[int, Pps]:
    r = BitReader(unescape(nal[1:]))
    pps_id, sps_id = r.ue(), r.ue()
    cabac, bottom = bool(r.u(1)), bool(r.u(1))
    if r.ue():
        raise Unsupported("slice groups")
    refs = (r.ue() + 1, r.ue() + 1)
    weighted_pred, weighted_bipred = bool(r.u(1)), r.u(2)
    r.se(), r.se(), r.se()  # pic_init_qp, pic_init_qs, chroma_qp_index_offset
    deblocking = bool(r.u(1))
    r.u(1)  # constrained_intra_pred_flag
    redundant = bool(r.u(1))
    return pps_id, Pps(
        sps_id, cabac, bottom, refs, weighted_pred, weighted_bipred, deblocking, redundant
    )


class ParameterSets:
    """The SPS and PPS seen so far, by id (in-band on every keyframe, see nal.py)."""

    def __init__(self) -> None:
        self.sps: dict[int, Sps] = {}
        self.pps: dict[int, Pps] = {}

    def learn(self, nal: bytes) -> None:
        kind = nal[0] & 0x1F
        if kind == SPS:
            sps_id, sps = parse_sps(nal)
            self.sps[sps_id] = sps
        elif kind == PPS:
            pps_id, pps = parse_pps(nal)
            self.pps[pps_id] = pps

    def lookup(self, pps_id: int) -> tuple[Sps, Pps]:
        pps = self.pps.get(pps_id)
        sps = self.sps.get(pps.sps_id) if pps is not None else None
        if pps is None or sps is None:
            raise Unsupported("slice without its parameter sets")
        return sps, pps


Mmco = tuple[int, tuple[int, ...]]  # operation, its arguments


@dataclass
class SliceHeader:
    """A slice header's fields this module changes, and where they are (RBSP bit offsets)."""

    ref_idc: int
    slice_type: int  # 0 P, 1 B, 2 I, 3 SP, 4 SI
    frame_num: int
    frame_num_pos: int
    field: bool
    marking: tuple[int, int]  # [start, end) of dec_ref_pic_marking()
    mmco: list[Mmco] | None  # None: sliding window
    end: int  # the first bit after the header
    sps: Sps
    pps: Pps


def frame_num_at(r: BitReader, sets: ParameterSets) -> tuple[int, Sps, Pps]:
    r.ue()  # first_mb_in_slice
    slice_type = r.ue() % 5
    sps, pps = sets.lookup(r.ue())
    if sps.separate_colour_plane:
        r.u(2)
    return slice_type, sps, pps


def parse_slice_header(nal: bytes, r: BitReader, sets: ParameterSets) -> SliceHeader:
    """The header of a non-IDR slice ``nal`` read from ``r`` (over its RBSP)."""
    slice_type, sps, pps = frame_num_at(r, sets)
    if slice_type > 2:
        raise Unsupported("SP/SI slices")
    pos = r.pos
    frame_num = r.u(sps.frame_num_bits)
    field = not sps.frame_mbs_only and bool(r.u(1))
    if field:
        r.u(1)  # bottom_field_flag
    _skip_order_count(r, sps, pps, field)
    if pps.redundant_pic_cnt:
        r.ue()
    refs = _skip_prediction(r, slice_type, pps)
    if (pps.weighted_pred and slice_type == 0) or (pps.weighted_bipred == 1 and slice_type == 1):
        _skip_weights(r, sps, refs[: 2 if slice_type == 1 else 1])
    start = r.pos
    mmco = _ref_pic_marking(r) if nal[0] >> 5 else None
    marking = (start, r.pos)
    if pps.cabac and slice_type != 2:
        r.ue()  # cabac_init_idc
    r.se()  # slice_qp_delta
    if pps.deblocking_control and r.ue() != 1:
        r.se(), r.se()
    return SliceHeader(
        nal[0] >> 5, slice_type, frame_num, pos, field, marking, mmco, r.pos, sps, pps
    )


def _skip_order_count(r: BitReader, sps: Sps, pps: Pps, field: bool) -> None:
    if sps.poc_type == 0:
        r.u(sps.poc_lsb_bits)
        if pps.bottom_field_pic_order and not field:
            r.se()
    elif sps.poc_type == 1 and not sps.delta_pic_order_always_zero:
        r.se()
        if pps.bottom_field_pic_order and not field:
            r.se()


def _skip_prediction(r: BitReader, slice_type: int, pps: Pps) -> tuple[int, int]:
    """Skip direct/ref-count/list-modification fields; returns the active ref counts."""
    refs = pps.ref_idx_defaults
    if slice_type == 2:
        return refs
    if slice_type == 1:
        r.u(1)  # direct_spatial_mv_pred_flag
    if r.u(1):  # num_ref_idx_active_override_flag
        refs = (r.ue() + 1, r.ue() + 1 if slice_type == 1 else refs[1])
    for _ in range(2 if slice_type == 1 else 1):
        if r.u(1):  # ref_pic_list_modification_flag
            while (op := r.ue()) != 3:
                if op > 5:
                    raise Unsupported(f"ref_pic_list_modification op {op}")
                r.ue()
    return refs


def _skip_weights(r: BitReader, sps: Sps, refs: tuple[int, ...]) -> None:
    """pred_weight_table() for the lists in use (``refs``: their active sizes)."""
    r.ue()  # luma_log2_weight_denom
    chroma = sps.chroma_array_type != 0
    if chroma:
        r.ue()
    for count in refs:
        for _ in range(count):
            if r.u(1):
                r.se(), r.se()
            if chroma and r.u(1):
                r.se(), r.se(), r.se(), r.se()


def _ref_pic_marking(r: BitReader) -> list[Mmco] | None:
    """A non-IDR dec_ref_pic_marking(): its operations, or None for the sliding window."""
    if not r.u(1):
        return None
    ops: list[Mmco] = []
    while (op := r.ue()) != 0:
        args = {1: 1, 2: 1, 3: 2, 4: 1, 5: 0, 6: 1}.get(op)
        if args is None:
            raise Unsupported(f"memory_management_control_operation {op}")
        ops.append((op, tuple(r.ue() for _ in range(args))))
    return ops
