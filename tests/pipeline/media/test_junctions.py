"""Audio where the source's runs meet: DASH Periods, HLS discontinuities, closed holes.

A new run's encoder primes its AAC ~21 ms before the run starts, and the old run's last
packet runs past its end.  The output must switch from one run to the other exactly at the
junction: the beep that starts with the new run's first frame stays on that frame, and the
samples around the junction are the source's own (no dropped packet, no silence).
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.media import export_clip
from pipeline.storage import Blobs
from pipeline.synthetic import ArchiveSpec
from pipeline.synthetic.frames import audio_samples
from tests.fixtures.media import MakeArchive, archive_spec
from tests.pipeline.media.helpers import AUDIO_FRAME, decode, resolve_frames

FIRST, COUNT = 37, 75  # 1.48 s - 4.48 s; the runs meet at 2.0 s (frame 50, a beep)
BOUNDARY = 50
SYNC = 0.002  # s; beep detection after AAC is good to about a millisecond


def _archive(make_archive: MakeArchive, source: str) -> Path:
    if source == "dash-periods":
        return make_archive("dash", periods=3)  # Periods start at 2 s and 4 s
    if source == "hls-ts":
        return make_archive("hls", container="ts", discontinuity_at=2.0)
    return make_archive("hls", container="fmp4", discontinuity_at=2.0)


def _pcm(path: Path) -> tuple[float, np.ndarray]:
    """The output's audio as played (edit list honoured): start time and mono samples."""
    with av.open(str(path)) as c:
        frames = [(float(f.time or 0.0), f.to_ndarray()[0]) for f in c.decode(audio=0)]
    start = frames[0][0]
    pcm = np.zeros(round((frames[-1][0] - start) * 48_000) + len(frames[-1][1]), np.float32)
    for t, samples in frames:
        i = round((t - start) * 48_000)
        pcm[i : i + len(samples)] = samples[: len(pcm) - i]
    return start, pcm


def _junction_error(path: Path, spec: ArchiveSpec, archive_at: float, at: float) -> float:
    """RMS of (output - source) over 60 ms around output time ``at`` (archive time
    ``archive_at``), relative to the source.

    Taken at the best alignment within +-1 ms: AAC and the container's priming handling
    may shift the whole track by a fraction of a millisecond, which is not what this checks.
    """
    start, pcm = _pcm(path)
    n = round(0.06 * 48_000)
    want = audio_samples(spec, round((archive_at - 0.02) * 48_000), n)
    lo = round((at - 0.02 - start) * 48_000)
    errors = []
    for shift in range(-48, 49):
        got = pcm[lo + shift : lo + shift + n]
        errors.append(float(np.sqrt(np.mean((got - want) ** 2)) / np.sqrt(np.mean(want**2))))
    return min(errors)


@pytest.mark.parametrize("suffix", ["mp4", "ts"])
@pytest.mark.parametrize("export_type", [0, 1])
@pytest.mark.parametrize("source", ["dash-periods", "hls-ts", "hls-fmp4"])
def test_audio_stays_in_sync_after_the_boundary(
    make_archive: MakeArchive, tmp_path: Path, source: str, export_type: int, suffix: str
) -> None:
    manifest = _archive(make_archive, source)
    spec = archive_spec(manifest)
    res = resolve_frames(manifest, spec, FIRST, COUNT)
    assert any(r.discontinuity for r in res.video)  # the clip really spans a boundary
    result = export_clip(Blobs(), res, tmp_path / f"j.{suffix}", export_type=export_type)
    d = decode(result.path, ignore_editlist=False)
    assert d.indices == list(range(FIRST, FIRST + COUNT))
    frame_time = dict(zip(d.indices, d.times, strict=True))
    boundary = frame_time[BOUNDARY]
    after = [b for b in d.beeps if boundary - AUDIO_FRAME <= b <= d.video_span[1] - AUDIO_FRAME]
    expected = [frame_time[k] for k in range(BOUNDARY, FIRST + COUNT, spec.beep_every)]
    assert len(after) == len(expected) >= 2
    for heard, frame in zip(after, expected, strict=True):
        assert abs(heard - frame) <= SYNC, (heard, frame)
    # The samples around the junction are the source's, not silence or a doubled packet.
    assert _junction_error(result.path, spec, BOUNDARY / 25, boundary) < 0.25
    assert d.audio_span is not None
    assert abs((d.audio_span[1] - d.audio_span[0]) - COUNT / 25) <= AUDIO_FRAME + 1e-3


@pytest.mark.parametrize("kind", ["dash", "hls"])
def test_closed_hole_keeps_the_audio_in_place(
    make_archive: MakeArchive, tmp_path: Path, kind: str
) -> None:
    # 2-4 s is missing: frame 49 is followed by frame 100 on the output.  The audio of the
    # first ~11 ms after the hole lies in the missing segment (packets straddle 4.0 s), so
    # beep 100 loses its head; beep 125 must sit on its frame.
    manifest = make_archive(kind, gap=(2.0, 4.0))
    spec = archive_spec(manifest)
    res = resolve_frames(manifest, spec, FIRST, 100)
    result = export_clip(Blobs(), res, tmp_path / "g.mp4", export_type=0)
    d = decode(result.path, ignore_editlist=False)
    frame_time = dict(zip(d.indices, d.times, strict=True))
    for k, tolerance in ((100, AUDIO_FRAME), (125, SYNC)):
        heard = [b for b in d.beeps if abs(b - frame_time[k]) <= 2 * AUDIO_FRAME]
        assert len(heard) == 1 and abs(heard[0] - frame_time[k]) <= tolerance, (k, heard)
    assert d.audio_span is not None
    assert abs((d.audio_span[1] - d.audio_span[0]) - len(d.indices) / 25) <= AUDIO_FRAME + 1e-3


def test_no_junction_keeps_the_audio_copied(make_archive: MakeArchive, tmp_path: Path) -> None:
    # Without a junction every audio packet is the source's own, byte for byte.
    manifest = make_archive("dash")
    spec = archive_spec(manifest)
    res = resolve_frames(manifest, spec, FIRST, COUNT)
    result = export_clip(Blobs(), res, tmp_path / "c.mp4", export_type=0)
    with av.open(str(result.path)) as c:
        out = [bytes(p) for p in c.demux(audio=0) if p.size]
    source: set[bytes] = set()
    for ref in res.audio:
        assert ref.init_url is not None
        joined = tmp_path / "segment.mp4"
        joined.write_bytes(Path(ref.init_url).read_bytes() + Path(ref.url).read_bytes())
        with av.open(str(joined)) as c:
            source |= {bytes(p) for p in c.demux(audio=0) if p.size}
    assert len(out) > 100 and all(p in source for p in out)


def _with_mp2_audio(src_dir: Path, dst_dir: Path) -> None:
    """Copy an HLS/TS archive, its AAC re-encoded as MP2 (a codec the output cannot copy)."""
    import io
    import shutil
    from fractions import Fraction

    shutil.copytree(src_dir, dst_dir)
    for ts in dst_dir.rglob("*.ts"):
        out_buf = io.BytesIO()
        with (
            av.open(io.BytesIO(ts.read_bytes()), "r") as inp,
            av.open(out_buf, "w", format="mpegts") as out,
        ):
            vin, ain = inp.streams.video[0], inp.streams.audio[0]
            vout = out.add_stream_from_template(vin)
            aout = out.add_stream("mp2", rate=48_000, layout="mono")
            aout.codec_context.time_base = Fraction(1, 48_000)
            dec = av.CodecContext.create("aac", "r")
            assert isinstance(dec, av.AudioCodecContext)
            dec.extradata = ain.codec_context.extradata
            chunks = av.AudioResampler(format="s16", layout="mono", rate=48_000, frame_size=1152)
            for pkt in inp.demux(vin, ain):
                if pkt.size == 0 or pkt.pts is None:
                    continue
                if pkt.stream is vin:
                    pkt.stream = vout
                    out.mux(pkt)
                    continue
                for f in dec.decode(pkt):
                    f.pts, f.time_base = (
                        round(pkt.pts * pkt.time_base * 48_000),
                        Fraction(1, 48_000),
                    )
                    for g in chunks.resample(f):
                        out.mux(aout.encode(g))
            for g in chunks.resample(None):
                out.mux(aout.encode(g))
            out.mux(aout.encode(None))
        ts.write_bytes(out_buf.getvalue())


@pytest.mark.parametrize("discontinuity", [None, 2.0])
def test_audio_that_cannot_be_copied_is_encoded_in_sync(
    make_archive: MakeArchive, tmp_path: Path, discontinuity: float | None
) -> None:
    manifest = make_archive("hls", container="ts", discontinuity_at=discontinuity)
    spec = archive_spec(manifest)
    _with_mp2_audio(manifest.parent, tmp_path / "mp2")
    res = resolve_frames(tmp_path / "mp2" / manifest.name, spec, FIRST, COUNT)
    result = export_clip(Blobs(), res, tmp_path / "m.mp4", export_type=0)
    assert result.audio_codec == "aac"
    d = decode(result.path, ignore_editlist=False)
    assert d.indices == list(range(FIRST, FIRST + COUNT))
    frame_time = dict(zip(d.indices, d.times, strict=True))
    expected = [frame_time[k] for k in range(BOUNDARY, FIRST + COUNT, spec.beep_every)]
    heard = [b for b in d.beeps if b >= frame_time[BOUNDARY] - AUDIO_FRAME]
    assert len(heard) == len(expected)
    assert all(abs(h - e) <= SYNC for h, e in zip(heard, expected, strict=True))
    assert d.audio_span is not None
    assert abs((d.audio_span[1] - d.audio_span[0]) - COUNT / 25) <= AUDIO_FRAME + 1e-3
