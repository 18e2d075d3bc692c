"""Bit-level reading and writing of H.264/HEVC RBSPs, and emulation prevention."""

from __future__ import annotations

import re

_ESCAPE = re.compile(rb"\x00\x00(?=[\x00-\x03])")


def unescape(nal: bytes) -> bytes:
    # In a valid NAL every 00 00 03 is an emulation prevention byte, and scanning resumes
    # after it, which is exactly what bytes.replace does.
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


def escape(rbsp: bytes) -> bytes:
    out = _ESCAPE.sub(b"\x00\x00\x03", rbsp)
    return out + b"\x03" if out.endswith(b"\x00") else out


class BitReader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.value = int.from_bytes(data, "big")
        self.size = len(data) * 8
        self.pos = 0

    def u(self, n: int) -> int:
        if self.pos + n > self.size:
            raise ValueError("header runs past the end of the NAL unit")
        self.pos += n
        return (self.value >> (self.size - self.pos)) & ((1 << n) - 1)

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("Exp-Golomb code longer than 32 bits")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k % 2 else -(k // 2)


class BitWriter:
    def __init__(self) -> None:
        self.value = 0
        self.size = 0

    def put(self, value: int, n: int) -> None:
        self.value, self.size = (self.value << n) | value, self.size + n

    def ue(self, value: int) -> None:
        n = (value + 1).bit_length()
        self.put(value + 1, 2 * n - 1)

    def copy(self, r: BitReader, start: int, end: int) -> None:
        """Append the reader's bits [start, end)."""
        n = end - start
        self.put((r.value >> (r.size - end)) & ((1 << n) - 1), n)
