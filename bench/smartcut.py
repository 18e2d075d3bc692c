"""Issue 8, goal 3: the export_type 0 smart cut of a 60 s 1080p clip within 3x of ffmpeg's
``-c copy``, frame-exact, with the quality of its re-encoded edges.

    python bench/smartcut.py [--work var/bench] [--repeat 5] [--presets ultrafast,superfast]
    python bench/smartcut.py --quick

On the shared 1080p25 archive (bench/common.py; 70 s, so a 60 s clip that starts 12 frames
after a keyframe fits), paired A B A B in one run: ``mediaexport cut --type 0`` against
``ffmpeg -ss T -i stream.mpd -t D -c copy``.  ffmpeg's copy starts at the keyframe before T
(it is fast because it is wrong: its EXACT line says so).  Then, per edge preset, the PSNR of
the re-encoded edge frames against the source frames (Y planes), their size and the cut's
time; and a phase breakdown of one instrumented cut (decode, encode, demux, mux, facts).

The children run with the project's bytecode compiled once beforehand (as an installed
service has it); this environment sets PYTHONDONTWRITEBYTECODE, which would otherwise make
every child compile the modules it imports (~0.1 s).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from common import bench_archive, compile_project, exact, goal, judge_clip, median, run_child

from pipeline.manifest import RangeRequest, resolve
from pipeline.media.source import SegmentFetcher
from pipeline.storage import Blobs
from pipeline.synthetic import ArchiveSpec, read_frame_index

ROOT = Path(__file__).resolve().parent.parent
# The children run this checkout's code whatever the installed (editable) package points at.
CHILD_ENV = {"PYTHONPATH": str(ROOT)}
TARGET = 3.0
LOSSLESS = 99.0  # the PSNR reported for identical planes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--work", type=Path, default=ROOT / "var" / "bench")
    ap.add_argument("--repeat", type=int, default=5, help="A B pairs")
    ap.add_argument("--presets", default="ultrafast,superfast,veryfast")
    ap.add_argument("--quick", action="store_true", help="2 pairs, one preset")
    ap.add_argument("--phases-child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phases_child:
        return phases_child(*args.phases_child)
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        print("ffmpeg is the baseline: apt-get install -y ffmpeg", file=sys.stderr)
        return 2
    repeat = 2 if args.quick else args.repeat
    presets = args.presets.split(",")[:1] if args.quick else args.presets.split(",")
    compile_project()

    work = args.work.resolve()
    mpd, spec = bench_archive(work, 70.0)
    first = spec.gop_frames + 12
    frames = round(60 * spec.fps)
    start_pos, duration_ms = spec.start_pos_ms(first), 60_000
    out = work / "smartcut"
    out.mkdir(parents=True, exist_ok=True)
    me_out, ff_out = out / "me.mp4", out / "ff.mp4"
    me = [sys.executable, "-m", "service.cli", "cut", str(mpd), "--start-pos", str(start_pos)]
    me += ["--duration", str(duration_ms), "--type", "0", "-o", str(me_out)]
    ff = [ffmpeg, "-v", "error", "-y", "-ss", f"{float(Fraction(first) / spec.fps):.6f}"]
    ff += ["-i", str(mpd), "-t", "60", "-c", "copy", str(ff_out)]
    print(f"cut: frames {first}..{first + frames - 1} ({frames}), StartPos {start_pos}, 60 s")

    times: dict[str, list[float]] = {"me": [], "ff": []}
    rss: dict[str, float] = {"me": 0.0, "ff": 0.0}
    for _ in range(repeat):  # A B A B: load on the machine falls on both alike
        for name, cmd in (("me", me), ("ff", ff)):
            t, m = run_child(cmd, CHILD_ENV)
            times[name].append(t)
            rss[name] = max(rss[name], m)
    me_t, ff_t = median(times["me"]), median(times["ff"])
    ratio = me_t / ff_t
    print(f"mediaexport cut --type 0: {fmt(times['me'])}, peak RSS {rss['me']:.0f} MiB")
    print(f"ffmpeg -c copy:           {fmt(times['ff'])}, peak RSS {rss['ff']:.0f} MiB")
    print(
        f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores"
    )
    exact("smartcut type 0, 60 s", judge_clip(me_out, first, frames))
    exact("ffmpeg -c copy, 60 s (starts at the keyframe before)", judge_clip(ff_out, first, frames))

    for preset in presets:
        env = {**CHILD_ENV, "EXPORT_EDGE_H264_PRESET": preset}
        target = out / f"me-{preset}.mp4"
        cmd = [*me[:-1], str(target)]
        runs = [run_child(cmd, env) for _ in range(max(1, repeat // 2))]
        psnr, count, size = edge_quality(target, mpd, spec, start_pos, duration_ms)
        print(
            f"edge preset {preset:<10} cut {median([t for t, _ in runs]):.3f} s, "
            f"peak RSS {max(m for _, m in runs):.0f} MiB, {count} edge frames {size / 1e3:.0f} kB, "
            f"PSNR Y vs source mean {np.mean(psnr):.2f} dB, min {min(psnr):.2f} dB"
        )
    for preset in presets:
        print(f"phases of one instrumented cut, edge preset {preset} (s):")
        phases(mpd, start_pos, duration_ms, out / "phases.mp4", preset)
    goal(
        "smart cut 60 s 1080p vs ffmpeg -c copy (paired)",
        f"{ratio:.2f}x ({me_t:.3f} s vs {ff_t:.3f} s)",
        f"<= {TARGET:g}x",
        ratio <= TARGET,
    )
    return 0


def fmt(values: list[float]) -> str:
    return f"median {median(values):.3f} s ({', '.join(f'{v:.3f}' for v in values)})"


def edge_quality(
    path: Path, mpd: Path, spec: ArchiveSpec, start_pos: int, duration_ms: int
) -> tuple[list[float], int, int]:
    """PSNR (dB, Y plane) of every re-encoded output frame against its source frame, the
    number of those frames, and their bytes.

    The re-encoded frames are the head (up to the output's second keyframe, the first copied
    one) and the tail (from the last keyframe on, an IDR of the tail's encoder) unless the
    tail was copied (its frames then decode identical to the source's); the source frames
    are decoded from the first and last segment of the range."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        packets = [p for p in c.demux(stream) if p.size]
        codec, record = stream.codec_context.name, stream.codec_context.extradata
    keys = [i for i, p in enumerate(packets) if p.is_keyframe]
    head = packets[: keys[1]]
    tail = packets[keys[-1] :] if keys[-1] > keys[1] else []
    source = source_frames(mpd, start_pos, duration_ms)
    psnr = [_psnr(y_plane(f), source[read_frame_index(f)]) for f in decode(codec, record, head)]
    tail_psnr = [
        _psnr(y_plane(f), source[read_frame_index(f)]) for f in decode(codec, record, tail)
    ]
    if tail_psnr and all(x == LOSSLESS for x in tail_psnr):
        tail, tail_psnr = [], []  # copied, not re-encoded
    psnr += tail_psnr
    return psnr, len(psnr), sum(p.size for p in head + tail)


def source_frames(mpd: Path, start_pos: int, duration_ms: int) -> dict[int | None, np.ndarray]:
    res = resolve(Blobs(), str(mpd), RangeRequest(start_pos, None, duration_ms))
    fetcher = SegmentFetcher(Blobs())
    frames: dict[int | None, np.ndarray] = {}
    for ref in (res.video[0], res.video[-1]):
        with av.open(io.BytesIO(fetcher.fetch(ref))) as c:
            for f in c.decode(video=0):
                frames[read_frame_index(f)] = y_plane(f)
    return frames


def decode(codec: str, record: bytes | None, packets: list[av.Packet]) -> list[av.VideoFrame]:
    """A fresh decoder from the first packet (a keyframe) on; MP4 samples need the record."""
    ctx = av.CodecContext.create(codec, "r")
    ctx.extradata = record
    frames: list[av.VideoFrame] = []
    for p in packets:
        frames += ctx.decode(p)  # type: ignore[arg-type]
    return frames + ctx.decode(None)  # type: ignore[operator]


def y_plane(f: av.VideoFrame) -> np.ndarray:
    plane = f.planes[0]
    rows = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)
    return rows[:, : f.width].astype(np.float64)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a - b) ** 2).mean())
    return LOSSLESS if mse == 0 else 10 * float(np.log10(255**2 / mse))


# -- phase breakdown ------------------------------------------------------------------------
def phases(mpd: Path, start_pos: int, duration_ms: int, target: Path, preset: str) -> None:
    cmd = [sys.executable, __file__, "--phases-child", str(mpd), str(start_pos)]
    cmd += [str(duration_ms), str(target)]
    t0 = time.perf_counter()
    env = os.environ | CHILD_ENV | {"EXPORT_EDGE_H264_PRESET": preset}
    proc = subprocess.run(cmd, capture_output=True, check=True, cwd=ROOT, env=env)
    report = {"process wall": time.perf_counter() - t0, **json.loads(proc.stdout)}
    print("  " + ", ".join(f"{k} {v:.3f}" for k, v in report.items()))


class _Timed:
    """A codec context whose decode/encode calls add their wall time to ``spent[name]``."""

    def __init__(self, inner: object, name: str, spent: dict[str, float]) -> None:
        self.inner, self.name, self.spent = inner, name, spent

    def __getattr__(self, attr: str) -> object:
        value = getattr(self.inner, attr)
        if attr not in ("decode", "encode"):
            return value

        def timed(*a: object) -> object:
            t0 = time.perf_counter()
            try:
                return value(*a)
            finally:
                self.spent[self.name] += time.perf_counter() - t0

        return timed

    def __setattr__(self, attr: str, value: object) -> None:
        if attr in ("inner", "name", "spent"):
            object.__setattr__(self, attr, value)
        else:
            setattr(self.inner, attr, value)


def phases_child(mpd: str, start_pos: str, duration_ms: str, target: str) -> int:
    import pipeline.media.clip as clip
    import pipeline.media.edge as edge
    from pipeline.media import export_clip
    from pipeline.media.edgequeue import EdgeQueue
    from pipeline.media.source import TrackDemuxer
    from pipeline.media.writer import ClipWriter

    spent = dict.fromkeys(("decode", "encode", "demux", "mux", "wait_for_edges", "facts"), 0.0)

    def wrap(owner: object, attr: str, phase: str) -> None:
        real = getattr(owner, attr)

        def timed(*a: object, **k: object) -> object:
            t0 = time.perf_counter()
            try:
                return real(*a, **k)
            finally:
                spent[phase] += time.perf_counter() - t0

        setattr(owner, attr, timed)

    new_decoder, edge_encoder = edge.new_decoder, edge.edge_encoder
    edge.new_decoder = lambda codec: _Timed(new_decoder(codec), "decode", spent)  # type: ignore[assignment]
    edge.edge_encoder = lambda *a: _Timed(edge_encoder(*a), "encode", spent)  # type: ignore[assignment]
    wrap(TrackDemuxer, "load", "demux")
    for attr in ("mux_video", "mux_audio", "close"):
        wrap(ClipWriter, attr, "mux")
    wrap(EdgeQueue, "finish", "wait_for_edges")
    wrap(clip, "describe", "facts")
    t0 = time.perf_counter()
    res = resolve(Blobs(), mpd, RangeRequest(int(start_pos), None, int(duration_ms)))
    t1 = time.perf_counter()
    from pipeline.settings import Settings

    export_clip(Blobs(), res, Path(target), export_type=0, options=Settings.from_env().encode)
    t2 = time.perf_counter()
    report = {"resolve": t1 - t0, **spent, "export_clip wall": t2 - t1}
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
