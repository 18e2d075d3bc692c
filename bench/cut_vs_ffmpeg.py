"""Benchmark: ``mediaexport thumb/cut`` side by side with the ffmpeg command a script would use.

Both run as child processes on the same generated DASH archive in the same run, so the
printed ratios (mediaexport / ffmpeg) compare like with like on this machine. Each output is
also judged by the frame-exact rule (README, "The media core"): a fresh decoder with MP4 edit
lists ignored, the first frame must be the wanted one (read from the frame's barcode) and the
frame count must be exact.

    python bench/cut_vs_ffmpeg.py [--seconds 60] [--width 1280 --height 720] [--repeat 3]

ffmpeg is the baseline only (Debian: ``apt-get install -y ffmpeg``); the service never runs it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from common import Judged, judge_clip, judge_thumb, run_child

from pipeline.synthetic import ArchiveSpec, write_dash


@dataclass
class Run:
    seconds: float
    peak_rss_mb: float
    first_frame: int | None
    frames: int
    ok: bool


def measure(cmd: list[str], repeat: int) -> tuple[float, float]:
    """Median wall time and worst peak RSS over ``repeat`` runs."""
    runs = [run_child(cmd) for _ in range(repeat)]
    return statistics.median(t for t, _ in runs), max(m for _, m in runs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0, help="archive length")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--repeat", type=int, default=3, help="runs per case (median time)")
    ap.add_argument("--keep", type=Path, default=None, help="keep outputs in this folder")
    args = ap.parse_args()
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        print("ffmpeg is the baseline: apt-get install -y ffmpeg", file=sys.stderr)
        return 2

    work = args.keep or Path(tempfile.mkdtemp(prefix="mediaexport-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    spec = ArchiveSpec(
        seconds=args.seconds, width=args.width, height=args.height, preset="veryfast", crf=23
    )
    t0 = time.perf_counter()
    mpd = write_dash(work / "archive", spec)
    print(
        f"archive: {spec.width}x{spec.height} {float(spec.fps):g} fps, {spec.seconds:g} s, "
        f"GOP {spec.gop_frames}, written in {time.perf_counter() - t0:.1f} s -> {mpd}"
    )

    fps = spec.fps
    # Start mid-GOP (the hard case for stream copy): 12 frames after a keyframe.
    first = (int(spec.seconds * fps) // 3 // spec.gop_frames) * spec.gop_frames + 12
    start_s = float(Fraction(first) / fps)
    start_pos = spec.start_pos_ms(first)
    me = [sys.executable, "-m", "service.cli"]
    ff = [ffmpeg, "-v", "error", "-y", "-ss", f"{start_s:.6f}", "-i", str(mpd)]

    out = work / "out"
    out.mkdir(exist_ok=True)
    copy = ["-c", "copy"]
    x264 = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-c:a", "aac"]
    long_ms = int(spec.seconds * 1000 * 0.6)
    # (name, mediaexport args, ffmpeg args, judge); two lengths show whether memory stays flat
    cases: list[tuple[str, list[str], list[str], Callable[[], tuple[Judged, Judged]]]] = [
        (
            "thumbnail",
            ["thumb", str(mpd), "--start-pos", str(start_pos), "-o", str(out / "me.jpg")],
            ["-frames:v", "1", "-q:v", "2", str(out / "ff.jpg")],
            lambda: (judge_thumb(out / "me.jpg", first), judge_thumb(out / "ff.jpg", first)),
        )
    ]
    for export_type, ff_codec, duration_ms in (
        (0, copy, 10_000),
        (0, copy, long_ms),
        (1, x264, 10_000),
    ):
        me_out = out / f"me-{export_type}-{duration_ms}.mp4"
        ff_out = out / f"ff-{export_type}-{duration_ms}.mp4"
        frames = round(Fraction(duration_ms, 1000) * fps)
        me_args = ["cut", str(mpd), "--start-pos", str(start_pos), "--duration", str(duration_ms)]
        ff_args = ["-t", f"{duration_ms / 1000:.3f}", *ff_codec, "-movflags", "+faststart"]
        cases.append(
            (
                f"cut type {export_type}, {duration_ms / 1000:g} s",
                [*me_args, "--type", str(export_type), "-o", str(me_out)],
                [*ff_args, str(ff_out)],
                lambda a=me_out, b=ff_out, n=frames: (  # type: ignore[misc]
                    judge_clip(a, first, n),
                    judge_clip(b, first, n),
                ),
            )
        )

    rows: list[tuple[str, Run, Run]] = []
    for name, me_args, ff_args, judge in cases:
        m_time, m_rss = measure([*me, *me_args], args.repeat)
        f_time, f_rss = measure([*ff, *ff_args], args.repeat)
        m_judged, f_judged = judge()
        rows.append((name, Run(m_time, m_rss, *m_judged), Run(f_time, f_rss, *f_judged)))

    print(
        f"\nwanted first frame {first} (StartPos {start_pos}); correctness judged with "
        "ignore_editlist=1 and a fresh decoder\n"
    )
    head = (
        f"{'case':<22} {'mediaexport s':>13} {'ffmpeg s':>9} {'time x':>7} "
        f"{'RSS MiB':>8} {'ff RSS':>7} {'RSS x':>6}  correct (first/frames)"
    )
    print(head)
    print("-" * len(head))
    for name, m, f in rows:
        print(
            f"{name:<22} {m.seconds:>13.3f} {f.seconds:>9.3f} {m.seconds / f.seconds:>7.2f} "
            f"{m.peak_rss_mb:>8.0f} {f.peak_rss_mb:>7.0f} {m.peak_rss_mb / f.peak_rss_mb:>6.2f}  "
            f"mediaexport {'OK' if m.ok else 'WRONG'} ({m.first_frame}/{m.frames}), "
            f"ffmpeg {'OK' if f.ok else 'WRONG'} ({f.first_frame}/{f.frames})"
        )
    print(
        "\n"
        + json.dumps(
            {
                name: {
                    "time_ratio": round(m.seconds / f.seconds, 3),
                    "rss_ratio": round(m.peak_rss_mb / f.peak_rss_mb, 3),
                    "mediaexport_correct": m.ok,
                    "ffmpeg_correct": f.ok,
                }
                for name, m, f in rows
            }
        )
    )
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
