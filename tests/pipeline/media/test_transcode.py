"""export_type 1/2: the encoder's threads, and the encoder thread behind the decoder.

The encoders write their options into the stream (x264's and x265's info SEI), so the
threading they actually ran with is read back from the output, not assumed.
"""

from __future__ import annotations

import re
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.media import export_clip
from pipeline.media.encode import TIME_BASE
from pipeline.media.encoder_thread import QUEUE_FRAMES, EncoderThread
from pipeline.media.options import EncodeOptions
from pipeline.storage import Blobs
from tests.fixtures.media import archive_spec
from tests.pipeline.media.helpers import decode, resolve_frames

_WAIT = 30.0  # s; generous bound for a thread to reach a state on a busy machine


def _encoder_options(path: Path) -> str:
    """The option string the encoder wrote into its info SEI."""
    data = path.read_bytes().decode("latin-1")
    found = re.search(r"options: ([ -~]+)", data)
    assert found is not None, "no encoder info SEI in the output"
    return found.group(1)


def _clip(archive: Path, tmp_path: Path, export_type: int, options: EncodeOptions) -> Path:
    spec = archive_spec(archive)
    res = resolve_frames(archive, spec, 12, 60)
    result = export_clip(Blobs(), res, tmp_path / "c.mp4", export_type=export_type, options=options)
    assert decode(result.path).indices == list(range(12, 72))
    return result.path


def test_x264_runs_frame_threads_as_under_ffmpeg(dash_archive: Path, tmp_path: Path) -> None:
    opts = _encoder_options(_clip(dash_archive, tmp_path, 1, EncodeOptions()))
    assert " sliced_threads=0 " in f" {opts} "


def test_one_encode_thread_means_one_x264_thread(dash_archive: Path, tmp_path: Path) -> None:
    opts = _encoder_options(_clip(dash_archive, tmp_path, 1, EncodeOptions(threads=1)))
    assert re.search(r"(^| )threads=1 ", opts), opts


def test_one_encode_thread_also_sizes_the_x265_pool(dash_archive: Path, tmp_path: Path) -> None:
    opts = _encoder_options(_clip(dash_archive, tmp_path, 2, EncodeOptions(threads=1)))
    assert "frame-threads=1" in opts.split() and "numa-pools=1" in opts.split(), opts


# -- the encoder thread on its own ------------------------------------------------------------
class _Owner:
    """Stands for the Transcoder: the thread lives as long as it does."""


def _x264() -> av.VideoCodecContext:
    ctx = av.CodecContext.create("libx264", "w")
    assert isinstance(ctx, av.VideoCodecContext)
    ctx.width, ctx.height, ctx.pix_fmt = 64, 64, "yuv420p"
    ctx.time_base, ctx.framerate = TIME_BASE, Fraction(25)
    ctx.options = {"preset": "ultrafast"}
    return ctx


def _frame() -> av.VideoFrame:
    rgb = np.zeros((64, 64, 3), np.uint8)
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")


def test_every_frame_put_comes_out_encoded_once_in_order() -> None:
    owner = _Owner()
    worker = EncoderThread(owner, _x264(), 64, 64)
    packets: list[av.Packet] = []
    for i in range(30):
        worker.put(_frame(), i * 3600)
        packets += worker.take()
    packets += worker.finish()
    assert sorted(-1 if p.pts is None else p.pts for p in packets) == [i * 3600 for i in range(30)]
    assert not worker.thread.is_alive()


class _BlockingEncoder:
    """An encoder that holds the first frame until released: what a slow x264 looks like."""

    time_base = TIME_BASE

    def __init__(self) -> None:
        self.release = threading.Event()

    def encode(self, frame: av.VideoFrame | None) -> list[av.Packet]:
        self.release.wait(_WAIT)
        return []


def test_the_decoder_runs_at_most_a_few_frames_ahead_of_the_encoder() -> None:
    owner = _Owner()
    encoder = _BlockingEncoder()
    worker = EncoderThread(owner, encoder, 64, 64)  # type: ignore[arg-type]
    queued = 0

    def feed() -> None:
        nonlocal queued
        for i in range(QUEUE_FRAMES * 4):
            worker.put(_frame(), i)
            queued += 1

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    deadline = time.monotonic() + _WAIT
    while queued < QUEUE_FRAMES + 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # room to run further ahead, if it could
    assert queued == QUEUE_FRAMES + 1  # one in the encoder, the queue full
    encoder.release.set()
    feeder.join(_WAIT)
    assert queued == QUEUE_FRAMES * 4
    worker.finish()


def test_an_encoder_failure_reaches_the_caller() -> None:
    decoder = av.CodecContext.create("h264", "r")  # encode() on it raises
    worker = EncoderThread(_Owner(), decoder, 64, 64)
    with pytest.raises(Exception) as err:
        for i in range(QUEUE_FRAMES * 4):
            worker.put(_frame(), i)
        worker.finish()
    assert worker.error is not None and err.value is worker.error


def test_a_thread_whose_export_failed_part_way_ends() -> None:
    owner = _Owner()
    worker = EncoderThread(owner, _x264(), 64, 64)
    worker.put(_frame(), 0)
    del owner  # the export raised: nobody will call finish()
    worker.thread.join(_WAIT)
    assert not worker.thread.is_alive()
