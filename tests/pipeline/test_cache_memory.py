"""The cache's memory is what it counts: pictures copied out of their decoder's pool, and
glibc told to give freed pictures back."""

from __future__ import annotations

import platform
from fractions import Fraction

import av
import numpy as np
import pytest

from pipeline.cache import owned_picture, return_freed_memory


def decoded_pictures(width: int, height: int, count: int) -> list[av.VideoFrame]:
    """``count`` pictures of a little clip, encoded and decoded again (pool-backed)."""
    encoder = av.CodecContext.create("mpeg4", "w")
    assert isinstance(encoder, av.VideoCodecContext)
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base = Fraction(1, 25)
    packets = []
    for i in range(count):
        image = np.full((height * 3 // 2, width), 16 + 20 * i, dtype=np.uint8)
        image[: height // 2, : width // 3] = 200  # something that is not flat
        frame = av.VideoFrame.from_ndarray(image, format="yuv420p")
        frame.pts = i
        packets += encoder.encode(frame)
    packets += encoder.encode(None)
    decoder = av.CodecContext.create("mpeg4", "r")
    pictures = [f for p in [*packets, None] for f in decoder.decode(p)]
    assert all(isinstance(f, av.VideoFrame) for f in pictures)
    return pictures  # type: ignore[return-value]


@pytest.mark.parametrize("width", [96, 98])  # 98: a stride the decoder may pad otherwise
def test_owned_picture_has_the_same_pixels_and_times_in_buffers_of_its_own(
    width: int,
) -> None:
    pictures = decoded_pictures(width, 64, 3)
    copies = [owned_picture(f) for f in pictures]
    for picture, copy in zip(pictures, copies, strict=True):
        assert (copy.width, copy.height, copy.format.name) == (width, 64, "yuv420p")
        assert copy.pts == picture.pts
        assert (copy.colorspace, copy.color_range) == (picture.colorspace, picture.color_range)
        assert np.array_equal(copy.to_ndarray(), picture.to_ndarray())
        assert all(
            c.buffer_ptr != p.buffer_ptr for c, p in zip(copy.planes, picture.planes, strict=True)
        )


def test_owned_picture_outlives_its_decoder_and_originals() -> None:
    pictures = decoded_pictures(64, 48, 2)
    expected = pictures[-1].to_ndarray()
    copy = owned_picture(pictures[-1])
    del pictures
    assert np.array_equal(copy.to_ndarray(), expected)


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)
def test_glibc_accepts_the_fixed_mmap_threshold() -> None:
    assert return_freed_memory()
