"""pipeline/media/encode.py new_decoder: EXPORT_ENCODE_THREADS=1 makes the decoder one thread."""

from __future__ import annotations

from pipeline.media.encode import new_decoder


def test_one_encode_thread_makes_the_whole_clip_decoder_one_thread() -> None:
    assert new_decoder("h264", whole_clip=True, threads=1).thread_count == 1


def test_no_thread_setting_leaves_the_count_to_libavcodec() -> None:
    assert new_decoder("h264", whole_clip=True).thread_count == 0
