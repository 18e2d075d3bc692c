"""What every issue-8 benchmark shares: the generated 1080p archive, child-process timing
with peak memory, the frame-exact judges, and the goal lines ``bench/all.py`` collects.

A goal line is printed as ``GOAL <name> | measured <x> | target <y> | MET|MISSED`` so one
run of every script can be read (and grepped) as one table.  Run the scripts from the
repository root (``python bench/<name>.py``); this module is imported as ``common``.
"""

from __future__ import annotations

import compileall
import os
import statistics
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av

from pipeline.synthetic import ArchiveSpec, read_frame_index, write_dash

ROOT = Path(__file__).resolve().parent.parent

# The archive: 1080p25 H.264, 2 s segments and GOPs, AAC audio.
BENCH_SPEC = dict(width=1920, height=1080, fps=Fraction(25), preset="veryfast", crf=18)

Judged = tuple[int | None, int, bool]  # first frame index, frame count, correct


def bench_archive(work: Path, seconds: float = 60.0) -> tuple[Path, ArchiveSpec]:
    """The DASH archive in ``work/archive-<seconds>s`` (written once, reused by later runs
    with the same ``work``); returns its MPD and spec."""
    spec = ArchiveSpec(seconds=seconds, **BENCH_SPEC)  # type: ignore[arg-type]
    folder = work / f"archive-{seconds:g}s"
    mpd = folder / "stream.mpd"
    if not mpd.exists():
        t0 = time.perf_counter()
        write_dash(folder, spec)
        print(f"archive written in {time.perf_counter() - t0:.1f} s -> {mpd}", flush=True)
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    print(
        f"archive: {spec.width}x{spec.height} {float(spec.fps):g} fps, {seconds:g} s, "
        f"GOP {spec.gop_frames}, {size * 8 / seconds / 1e6:.1f} Mbit/s",
        flush=True,
    )
    return mpd, spec


# A child's ru_maxrss starts at its parent's resident size (the forked copy counts until
# exec), so each command is started from a tiny launcher that reports the grandchild's own.
_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
sys.stdout.write(f"{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss}")
"""


def compile_project() -> None:
    """Compile the project's bytecode once, as an installed service has it: this environment
    sets PYTHONDONTWRITEBYTECODE, which would otherwise make every timed child process
    compile each module it imports (~0.1 s of a ~0.25 s command)."""
    for package in ("pipeline", "service"):
        compileall.compile_dir(ROOT / package, quiet=1)


def run_child(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall time (s) and peak RSS (MiB) of one command."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-S", "-c", _LAUNCHER, *cmd],
        capture_output=True,
        check=False,
        env=None if env is None else os.environ | env,
    )
    elapsed = time.perf_counter() - start
    code, maxrss_kib = proc.stdout.decode().split()
    if int(code) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr.decode()}")
    return elapsed, int(maxrss_kib) / 1024


def paired(a: list[str], b: list[str], repeat: int) -> tuple[list[float], list[float]]:
    """Wall times of ``a`` and ``b`` run alternately (A B A B ...), so load on the machine
    falls on both sides alike."""
    times_a: list[float] = []
    times_b: list[float] = []
    for _ in range(repeat):
        times_a.append(run_child(a)[0])
        times_b.append(run_child(b)[0])
    return times_a, times_b


def median(values: list[float]) -> float:
    return statistics.median(values)


def judge_clip(path: Path, first: int, frames: int) -> Judged:
    """Fresh decoder, MP4 edit lists ignored: the first frame and the count must be exact."""
    with av.open(str(path), options={"ignore_editlist": "1"}) as c:
        indices = [read_frame_index(f) for f in c.decode(video=0)]
    got_first = indices[0] if indices else None
    return got_first, len(indices), got_first == first and len(indices) == frames


def judge_thumb(path: Path, first: int) -> Judged:
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
    got = read_frame_index(frame)
    return got, 1, got == first


def goal(name: str, measured: str, target: str, met: bool) -> None:
    print(f"GOAL {name} | measured {measured} | target {target} | {'MET' if met else 'MISSED'}")


def exact(name: str, judged: Judged) -> None:
    first, count, ok = judged
    print(f"EXACT {name} | first frame {first}, {count} frames | {'OK' if ok else 'WRONG'}")
