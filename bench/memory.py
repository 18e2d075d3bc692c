"""Memory: peak RSS flat in clip length for every export type, and the `up` service's RSS
over 500 sequential jobs.

    python bench/memory.py [--work var/bench] [--quick] [--jobs 500] [--every 25]
    python bench/memory.py --trace      # tracemalloc snapshots of `up`, diffed (slow)

Part 1 runs ``python -m service.cli cut`` (types 0, 1, 2) at two or three clip lengths and
``thumb`` near the start and near the end of the 190 s 1080p bench archive, each in a fresh
process, and prints long/short peak RSS.  Part 2 starts a real ``mediaexport up`` (its own
embedded broker, the bench archive as its EXPORT_ARCHIVE_URL) and POSTs jobs one after the
other: thumbnails of distinct frames, every 10th a 4 s type 0 clip, every 50th a 2 s type 1
clip (between samples), sampling the RSS of `up` (now and its peak) and of its broker every
``--every`` jobs.  ``--trace`` runs `up` under tracemalloc from the first sample after
job 100 (or half-way) to the end and prints what was allocated then and is still alive
(Python allocations only: FFmpeg's and glibc's do not show there, RSS does).
Not part of `make test`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
import urllib.request
from pathlib import Path
from typing import Any

from common import Judged, bench_archive, exact, goal, judge_clip, judge_thumb, run_child

from pipeline.synthetic import ArchiveSpec

ROOT = Path(__file__).resolve().parent.parent
FLAT_TARGET = 1.1  # long/short peak RSS
GROWTH_TARGET = 0.05  # RSS growth of `up` from half-way to the end
# The documented bound (README, Performance: Memory) on `up`'s peak over 500 sequential
# jobs: its peak without the worker cache (474 MiB measured, a type 1 job's transcode on top
# of the imports) plus the cache's budget (EXPORT_CACHE_MB, 256 by default), which is true
# memory since pictures are trimmed as they are decoded and glibc's mmap threshold stays
# fixed (the two parked thumbnail decoders, ~13 MiB each at 1080p, fit in the margin).
NO_CACHE_PEAK_MIB = 474
CACHE_MB = 256
ARCHIVE_S = 190
LIVE_PATH = f"archive-{ARCHIVE_S}s/stream.mpd"
OFFSET_FRAMES = 112  # clips start 12 frames after the third keyframe (GOP 50)


# -- part 1: one process per export, peak RSS by clip length ---------------------------------


def lengths(quick: bool) -> dict[str, tuple[int, ...]]:
    """Clip lengths in seconds per export type (type 2 at 1080p is slow)."""
    if quick:
        return {"0": (10, 60), "1": (10, 30), "2": (5, 15)}
    return {"0": (10, 60, 180), "1": (10, 60, 180), "2": (10, 30)}


def cut_command(
    mpd: Path, spec: ArchiveSpec, export_type: str, seconds: int, out: Path
) -> list[str]:
    start = spec.start_pos_ms(OFFSET_FRAMES)
    cmd = [sys.executable, "-m", "service.cli", "cut", str(mpd), "--start-pos", str(start)]
    return [*cmd, "--duration", str(seconds * 1000), "--type", export_type, "-o", str(out)]


def flatness(mpd: Path, spec: ArchiveSpec, out_dir: Path, quick: bool) -> None:
    fps = int(spec.fps)
    print("\n== peak RSS of one export process by clip length (fresh process each)")
    for export_type, secs in lengths(quick).items():
        peaks = []
        for seconds in secs:
            out = out_dir / f"cut{export_type}-{seconds}s.mp4"
            took, peak = run_child(cut_command(mpd, spec, export_type, seconds, out))
            peaks.append(peak)
            print(f"type {export_type} {seconds:>4} s: {peak:6.0f} MiB peak, {took:6.1f} s")
            exact(
                f"memory type {export_type} {seconds} s",
                judge_clip(out, OFFSET_FRAMES, seconds * fps),
            )
        ratio = peaks[-1] / peaks[0]
        goal(
            f"memory type {export_type} peak RSS {secs[-1]} s / {secs[0]} s",
            f"{ratio:.2f} ({peaks[-1]:.0f} / {peaks[0]:.0f} MiB)",
            f"≤ {FLAT_TARGET}",
            ratio <= FLAT_TARGET,
        )
    peaks = []
    # A thumbnail has no length: what could grow is the distance into the archive.
    points = (10, ARCHIVE_S - 10)
    for second in points:
        frame = second * fps + 12
        out = out_dir / f"thumb-{second}s.jpg"
        cmd = [sys.executable, "-m", "service.cli", "thumb", str(mpd)]
        cmd += ["--start-pos", str(spec.start_pos_ms(frame)), "-o", str(out)]
        took, peak = run_child(cmd)
        peaks.append(peak)
        print(f"thumb at {second:>3} s: {peak:6.0f} MiB peak, {took:6.1f} s")
        exact(f"memory thumb at {second} s", judge_thumb(out, frame))
    ratio = peaks[-1] / peaks[0]
    goal(
        f"memory thumb peak RSS at {points[-1]} s / at {points[0]} s",
        f"{ratio:.2f} ({peaks[-1]:.0f} / {peaks[0]:.0f} MiB)",
        f"≤ {FLAT_TARGET}",
        ratio <= FLAT_TARGET,
    )


# -- part 2: the `up` service under sequential jobs ------------------------------------------


def serve(args: argparse.Namespace) -> int:
    """`mediaexport up`; with ``--snapshots``, SIGUSR2 starts tracemalloc and writes a
    first snapshot there, and the next SIGUSR2 a second: what the second holds was
    allocated in between and is still alive (tracing from the start would slow every job
    of the warm-up several times over)."""
    from service.cli import main

    if args.snapshots:
        folder = Path(args.snapshots)
        taken = [0]

        def dump(_sig: int, _frame: object) -> None:
            if not tracemalloc.is_tracing():
                tracemalloc.start(8)
            taken[0] += 1
            tmp = folder / f".snap-{taken[0]}"
            tracemalloc.take_snapshot().dump(str(tmp))
            tmp.rename(folder / f"snap-{taken[0]}")

        signal.signal(signal.SIGUSR2, dump)
    return main(["up", "--port", str(args.port), "--data-dir", args.data_dir])


def start_up(
    work: Path, data: Path, snapshots: Path | None, env_extra: list[str]
) -> subprocess.Popen[str]:
    from service.broker import free_port

    env = {k: v for k, v in os.environ.items() if not k.startswith("EXPORT_")}
    env["EXPORT_CACHE_MB"] = str(CACHE_MB)  # the budget the bound counts (--env overrides)
    env |= {"PYTHONPATH": str(ROOT), "EXPORT_ARCHIVE_URL": str(work.resolve())}
    env |= dict(item.split("=", 1) for item in env_extra)
    cmd = [sys.executable, __file__, "serve", "--port", str(free_port()), "--data-dir", str(data)]
    if snapshots is not None:
        cmd += ["--snapshots", str(snapshots)]
    log = (data.parent / "up.log").open("w")  # its job lines: kept out of the bench's output
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log, text=True)


def body(k: int, spec: ArchiveSpec) -> tuple[dict[str, Any], str, int]:
    """Job ``k`` (1-based): (POST body, kind, first frame).  Thumbnails at distinct frames;
    every 10th job a 4 s type 0 clip, every 50th a 2 s type 1 clip."""
    frames = ARCHIVE_S * int(spec.fps) - 250  # room for a clip after any start
    frame = (k * 97) % frames + 12  # 97 is prime to `frames`: no point twice in 500 jobs
    request: dict[str, Any] = {"LivePath": LIVE_PATH, "StartPos": spec.start_pos_ms(frame)}
    if k % 10 != 3:  # clips off the sample points (multiples of 5): a sample sees a thumbnail
        return request | {"Duration": 1000, "FetchMedia": False}, "thumb", frame
    export_type, ms = (1, 2000) if k % 50 == 13 else (0, 4000)
    media = {
        "Duration": ms,
        "FetchMedia": True,
        "export_type": export_type,
        "FileName": f"c{k}.mp4",
    }
    return request | media, f"type {export_type}", frame


def http(url: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    payload = None if data is None else json.dumps(data).encode()
    with urllib.request.urlopen(url, data=payload, timeout=120) as resp:
        answer: dict[str, Any] = json.loads(resp.read())
    return answer


def run_job(url: str, request: dict[str, Any]) -> dict[str, Any]:
    """POST one job and poll it until it is answered (0 thumbnail, 5 media)."""
    answer = http(url + "/export", request)
    deadline = time.monotonic() + 300
    while answer.get("ErrorCode") == 1 and time.monotonic() < deadline:
        time.sleep(0.1)
        answer = http(f"{url}/export/{answer['JobId']}")
    if answer.get("ErrorCode") not in (0, 5):
        raise SystemExit(f"job not answered: {request} -> {answer}")
    return answer


def rss_mib(pid: int) -> tuple[float, float, float, int]:
    """(RSS of ``pid``, its peak RSS so far, RSS of its children, its threads), MiB."""
    own = peak = children = 0.0
    threads = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines())
        except (OSError, ValueError):
            continue
        rss = int(fields.get("VmRSS", "0 kB").split()[0]) / 1024
        if status.parent.name == str(pid):
            own, threads = rss, int(fields["Threads"])
            peak = int(fields["VmHWM"].split()[0]) / 1024
        elif fields.get("PPid", "").strip() == str(pid):
            children += rss
    return own, peak, children, threads


def judge_job(data: Path, answer: dict[str, Any], kind: str, frame: int) -> Judged:
    """The job's output, judged like the offline ones (first frame, frame count)."""
    exports = data / "exports"
    if kind == "thumb":
        return judge_thumb(exports / "export" / answer["ImagePath"].lstrip("/"), frame)
    frames = 50 if kind == "type 1" else 100
    return judge_clip(exports / answer["VideoPath"].lstrip("/"), frame, frames)


def snapshot(proc: subprocess.Popen[str], folder: Path, n: int) -> tracemalloc.Snapshot:
    proc.send_signal(signal.SIGUSR2)
    path = folder / f"snap-{n}"
    while not path.exists():
        time.sleep(0.2)
    return tracemalloc.Snapshot.load(str(path))


def soak(args: argparse.Namespace, spec: ArchiveSpec) -> None:
    jobs = 100 if args.quick else args.jobs
    every = 10 if args.quick else args.every
    with tempfile.TemporaryDirectory(prefix="memory-") as tmp:
        snaps = Path(tmp) / "snaps" if args.trace else None
        if snaps is not None:
            snaps.mkdir()
        data = Path(tmp) / "data"
        proc = start_up(args.work, data, snaps, args.env)
        try:
            curve, traced = drive(proc, data, spec, jobs, every, snaps)
        finally:
            proc.terminate()
            proc.wait(120)
    budget = dict(item.split("=", 1) for item in args.env).get("EXPORT_CACHE_MB", CACHE_MB)
    report(curve, jobs, NO_CACHE_PEAK_MIB + int(budget))
    if traced:
        show_growth(*traced)


Sample = tuple[int, float, float, float, int]  # jobs done, RSS of `up`, its peak, broker, threads


def drive(
    proc: subprocess.Popen[str],
    data: Path,
    spec: ArchiveSpec,
    jobs: int,
    every: int,
    snaps: Path | None,
) -> tuple[list[Sample], tuple[tracemalloc.Snapshot, tracemalloc.Snapshot] | None]:
    assert proc.stdout is not None
    line = proc.stdout.readline()  # `ready http://H:P kafka=H:P data=DIR`
    if not line.startswith("ready "):
        raise SystemExit(f"`up` gave no ready line (exit {proc.poll()}): {line!r}")
    url = line.split()[1]
    curve: list[Sample] = [(0, *rss_mib(proc.pid))]
    print(f"\n== `up` RSS over {jobs} sequential jobs (MiB)", flush=True)
    print(
        f"{'jobs':>5} {'up':>6} {'peak':>6} {'broker':>7} {'threads':>7} {'wrong':>6}", flush=True
    )
    first = None
    judged: dict[str, list[Judged]] = {}
    for k in range(1, jobs + 1):
        request, kind, frame = body(k, spec)
        judged.setdefault(kind, []).append(judge_job(data, run_job(url, request), kind, frame))
        wrong = sum(not j[2] for js in judged.values() for j in js)
        if k % every == 0 or k == jobs:
            curve.append((k, *rss_mib(proc.pid)))
            _, up, peak, broker, threads = curve[-1]
            print(f"{k:>5} {up:6.0f} {peak:6.0f} {broker:7.0f} {threads:>7} {wrong:>6}", flush=True)
            if snaps is not None and first is None and k >= min(100, jobs // 2):
                first = snapshot(proc, snaps, 1)
    for kind, js in judged.items():  # one line per kind: the last output, all of them right
        bad = sum(not j[2] for j in js)
        exact(f"memory `up` {kind} ({len(js)} jobs, {bad} wrong)", (*js[-1][:2], bad == 0))
    if snaps is None or first is None:
        return curve, None
    return curve, (first, snapshot(proc, snaps, 2))


def report(curve: list[Sample], jobs: int, bound_mib: int) -> None:
    end, peak = curve[-1][1], curve[-1][2]
    half = min(curve, key=lambda s: abs(s[0] - jobs / 2))
    goal(
        f"memory `up` peak RSS over {jobs} jobs",
        f"{peak:.0f} MiB (start {curve[0][1]:.0f}, end {end:.0f}, broker {curve[-1][3]:.0f})",
        f"≤ {bound_mib} MiB (no-cache {NO_CACHE_PEAK_MIB} + cache budget)",
        peak <= bound_mib,
    )
    # The peak only rises on a new high: flat from half-way on means it levelled off.
    growth = peak / half[2] - 1
    goal(
        f"memory `up` peak RSS growth job {half[0]} → {jobs}",
        f"{growth:+.1%} ({half[2]:.0f} → {peak:.0f} MiB)",
        f"≤ {GROWTH_TARGET:.0%}",
        growth <= GROWTH_TARGET,
    )
    # RSS now depends on the last jobs (a clip's buffers, freed memory glibc keeps a while):
    # samples alternate with what ran just before them, so a median of an odd and an even
    # number of them differs by that alone; the highest sample of each quarter does not.
    third = [s[1] for s in curve if jobs / 2 <= s[0] < jobs * 3 / 4]
    last = [s[1] for s in curve if s[0] >= jobs * 3 / 4]
    if third and last:
        before, after = max(third), max(last)
        growth = after / before - 1
        goal(
            f"memory `up` RSS growth (highest sample) jobs {jobs // 2}-{jobs * 3 // 4} → last"
            " quarter",
            f"{growth:+.1%} ({before:.0f} → {after:.0f} MiB)",
            f"≤ {GROWTH_TARGET:.0%}",
            growth <= GROWTH_TARGET,
        )


def show_growth(first: tracemalloc.Snapshot, last: tracemalloc.Snapshot) -> None:
    keep = [tracemalloc.Filter(False, tracemalloc.__file__)]
    first, last = first.filter_traces(keep), last.filter_traces(keep)
    total = sum(s.size for s in last.statistics("filename")) - sum(
        s.size for s in first.statistics("filename")
    )
    print(f"\n== Python allocations grown between the two snapshots: {total / 2**20:+.2f} MiB")
    for diff in last.compare_to(first, "lineno")[:15]:
        print(
            f"{diff.size_diff / 1024:+9.0f} KiB {diff.count_diff:+7d} blocks  {diff.traceback[0]}"
        )
    print("-- the biggest by traceback:")
    for diff in last.compare_to(first, "traceback")[:3]:
        print(f"{diff.size_diff / 1024:+9.0f} KiB {diff.count_diff:+7d} blocks")
        for frame in diff.traceback.format()[-12:]:
            print("    " + frame)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    srv = sub.add_parser("serve", help="(internal) `mediaexport up`, optionally traced")
    srv.add_argument("--port", type=int, required=True)
    srv.add_argument("--data-dir", required=True)
    srv.add_argument("--snapshots", default=None)
    parser.add_argument("--work", type=Path, default=Path("var/bench"), help="archive folder")
    parser.add_argument("--quick", action="store_true", help="shorter clips, 100 jobs")
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--every", type=int, default=25, help="sample RSS every N jobs")
    parser.add_argument("--trace", action="store_true", help="tracemalloc diff of `up`")
    parser.add_argument("--only", choices=("flat", "up"), default=None, help="one part")
    parser.add_argument(
        "--env", action="append", default=[], metavar="K=V", help="for `up`: MALLOC_ARENA_MAX=2"
    )
    args = parser.parse_args()
    if args.command == "serve":
        return serve(args)
    mpd, spec = bench_archive(args.work, ARCHIVE_S)
    if args.only != "up" and not args.trace:
        with tempfile.TemporaryDirectory(prefix="memory-") as tmp:
            flatness(mpd, spec, Path(tmp), args.quick)
    if args.only != "flat":
        soak(args, spec)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
