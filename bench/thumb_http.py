"""Warm HTTP thumbnails of a running `mediaexport up` against one ffmpeg thumbnail process.

    python bench/thumb_http.py [--work var/bench] [--quick]

Starts two `mediaexport up` services side by side (each with its own embedded Tansu broker),
both reading the 1080p bench archive (bench/common.py) as their local archive: ON with local
delivery (EXPORT_LOCAL_DELIVERY=on, the default: agents/local.py), OFF without.  Then, in one
run and interleaved (ffmpeg, ON, OFF, then the reverse), for distinct GOPs:

- ``ffmpeg -ss T -i stream.mpd -frames:v 1 -q:v 2 out.jpg`` (a whole process, as a script
  would run it) against ``POST /export`` with FetchMedia false (a warm thumbnail);
- the next frame of the GOP just served (end to end, HTTP);
- per hop and per stage, from each job's export.completed timings (bench/hops.py);
- 20 thumbnail POSTs at once, of 20 other GOPs, on each service (p50, p99).

Each JPEG is judged by its barcode (read from the service's output folder via ImagePath).
Prints GOAL/EXACT lines (bench/common.py).  Not part of `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import bench_archive, exact, goal, judge_thumb, run_child
from hops import HOPS, STAGES, completed_events, cpu_s, hops_of, stats

ROOT = Path(__file__).resolve().parent.parent
GOP = 50  # frames (bench/common.py's archive: 25 fps, 2 s GOPs)
OFFSET = 12  # the wanted frame, this many frames after the GOP's keyframe
FPS = 25
BURST = 20


@dataclass
class Service:
    name: str
    data: Path
    proc: subprocess.Popen[str]
    url: str = ""
    bootstrap: str = ""
    answers: dict[str, float] = field(default_factory=dict)  # job_id -> answer epoch ms
    cold_ms: list[float] = field(default_factory=list)
    second_ms: list[float] = field(default_factory=list)
    burst_ms: list[float] = field(default_factory=list)
    burst_cpu_s: tuple[float, float] = (0.0, 0.0)  # the burst's CPU: `up`, its broker
    hops: dict[str, list[float]] = field(default_factory=dict)
    cold_jobs: set[str] = field(default_factory=set)


def start(name: str, local: str, work: Path, root: Path) -> Service:
    from service.broker import free_port

    env = {k: v for k, v in os.environ.items() if not k.startswith("EXPORT_")}
    env |= {
        "PYTHONPATH": str(ROOT),
        "EXPORT_ARCHIVE_URL": str(work.resolve()),
        "EXPORT_LOCAL_DELIVERY": local,
    }
    data = root / name
    cmd = [sys.executable, "-m", "service.cli", "up", "--port", str(free_port())]
    cmd += ["--data-dir", str(data)]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    return Service(name, data, proc)


def wait_ready(svc: Service) -> None:
    assert svc.proc.stdout is not None
    line = svc.proc.stdout.readline()  # `ready http://H:P kafka=H:P data=DIR`
    if not line.startswith("ready "):
        raise SystemExit(f"{svc.name}: no ready line (exit {svc.proc.poll()}): {line!r}")
    parts = line.split()
    svc.url, svc.bootstrap = parts[1], parts[2].removeprefix("kafka=")


def start_time(frame: int) -> str:
    ms = frame * 1000 // FPS
    return f"0:{ms // 60000:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def post(svc: Service, live_path: str, frame: int) -> tuple[float, Path, str]:
    """POST a thumbnail of ``frame``; (round trip ms, the JPEG's path, JobId)."""
    body = {"LivePath": live_path, "StartTime": start_time(frame), "Duration": 1000}
    data = json.dumps(body | {"FetchMedia": False}).encode()
    started = time.perf_counter()
    with urllib.request.urlopen(svc.url + "/export", data=data, timeout=120) as resp:
        answer = json.loads(resp.read())
    while answer.get("ErrorCode") == 1:  # not done within EXPORT_SYNC_WAIT_MS: poll on
        time.sleep(0.02)
        with urllib.request.urlopen(f"{svc.url}/export/{answer['JobId']}", timeout=60) as resp:
            answer = json.loads(resp.read())
    took = (time.perf_counter() - started) * 1000
    if answer.get("ErrorCode") != 0:
        raise SystemExit(f"{svc.name}: frame {frame} not answered in the response: {answer}")
    svc.answers[answer["JobId"]] = time.time() * 1000
    image = svc.data / "exports" / "export" / answer["ImagePath"].lstrip("/")
    return took, image, answer["JobId"]


def ffmpeg_thumb(mpd: Path, frame: int, out: Path) -> float:
    cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-ss", f"{frame / FPS:.3f}"]
    cmd += ["-i", str(mpd), "-frames:v", "1", "-q:v", "2", str(out)]
    return run_child(cmd)[0] * 1000


def sequential(
    services: list[Service], mpd: Path, live: str, gops: range, tmp: Path
) -> list[float]:
    """Distinct GOPs, interleaved with ffmpeg; returns ffmpeg's times (ms)."""
    ffmpeg_ms: list[float] = []
    for i, gop in enumerate(gops):
        frame = gop * GOP + OFFSET
        arms: list[Any] = ["ffmpeg", *services]
        for arm in arms if i % 2 == 0 else arms[::-1]:
            if arm == "ffmpeg":
                out = tmp / f"ffmpeg-{frame}.jpg"
                ffmpeg_ms.append(ffmpeg_thumb(mpd, frame, out))
                exact(f"ffmpeg thumbnail frame {frame}", judge_thumb(out, frame))
                continue
            took, image, job_id = post(arm, live, frame)
            arm.cold_ms.append(took)
            arm.cold_jobs.add(job_id)
            exact(f"{arm.name} thumbnail frame {frame}", judge_thumb(image, frame))
            took, image, _ = post(arm, live, frame + 1)  # the GOP just served
            arm.second_ms.append(took)
            exact(f"{arm.name} second frame {frame + 1}", judge_thumb(image, frame + 1))
    return ffmpeg_ms


def burst(svc: Service, live: str, gops: range) -> None:
    frames = [gop * GOP + OFFSET for gop in gops]
    own, broker = cpu_s(svc.proc.pid)
    with ThreadPoolExecutor(len(frames)) as pool:
        results = list(pool.map(lambda f: post(svc, live, f), frames))
    own_now, broker_now = cpu_s(svc.proc.pid)
    svc.burst_cpu_s = (own_now - own, broker_now - broker)
    for frame, (took, image, _) in zip(frames, results, strict=True):
        svc.burst_ms.append(took)
        exact(f"{svc.name} concurrent frame {frame}", judge_thumb(image, frame))


def collect_hops(svc: Service) -> None:
    events = asyncio.run(completed_events(svc.bootstrap))
    for job_id in svc.cold_jobs:
        if job_id in events:
            for name, ms in hops_of(events[job_id], svc.answers[job_id]).items():
                svc.hops.setdefault(name, []).append(ms)


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def report(on: Service, off: Service, ffmpeg_ms: list[float]) -> None:
    print(f"\n== {len(ffmpeg_ms)} distinct GOPs, interleaved; ms (median / p90)")
    print(f"{'':<28}{'ON med':>8}{'ON p90':>8}{'OFF med':>9}{'OFF p90':>9}")
    names = [*HOPS, *(f"{stage} (stage)" for stage in STAGES)]
    rows = [(n, on.hops.get(n, []), off.hops.get(n, [])) for n in names]
    rows += [("thumbnail (HTTP POST)", on.cold_ms, off.cold_ms)]
    rows += [("second frame, same GOP", on.second_ms, off.second_ms)]
    for name, a, b in rows:
        if a and b:
            (ma, pa), (mb, pb) = stats(a), stats(b)
            print(f"{name:<28}{ma:8.0f}{pa:8.0f}{mb:9.0f}{pb:9.0f}")
    fm, fp = stats(ffmpeg_ms)
    print(f"{'ffmpeg thumbnail process':<28}{fm:8.0f}{fp:8.0f}")
    for svc in (on, off):
        p50, p99 = pct(svc.burst_ms, 0.5), pct(svc.burst_ms, 0.99)
        own, broker = (1000 * c / BURST for c in svc.burst_cpu_s)
        print(
            f"{BURST} at once, {svc.name}: p50 {p50:.0f} ms, p99 {p99:.0f} ms; CPU per job: "
            f"`up` {own:.0f} ms, its broker {broker:.0f} ms"
        )
    ratio = fm / stats(on.cold_ms)[0]
    goal(
        "warm HTTP thumbnail vs ffmpeg process (median, distinct GOPs)",
        f"{ratio:.2f}x faster ({stats(on.cold_ms)[0]:.0f} vs {fm:.0f} ms)",
        ">= 2x faster",
        ratio >= 2,
    )
    second = stats(on.second_ms)[0]
    goal(
        "second frame of the GOP just served (median)", f"{second:.0f} ms", "<= 40 ms", second <= 40
    )
    p99 = pct(on.burst_ms, 0.99)
    goal(f"{BURST} concurrent thumbnail POSTs, p99", f"{p99:.0f} ms", "< 1500 ms", p99 < 1500)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("var/bench"))
    parser.add_argument("--quick", action="store_true", help="5 GOPs instead of 9")
    args = parser.parse_args()
    mpd, _spec = bench_archive(args.work, 60.0)
    mpd = mpd.resolve()  # ffmpeg finds the segments next to an absolute manifest path
    live = str(mpd.relative_to(args.work.resolve()))
    gops = range(1, 6 if args.quick else 10)
    with tempfile.TemporaryDirectory(prefix="thumb-http-") as tmp:
        root = Path(tmp)
        services = [start("ON", "on", args.work, root), start("OFF", "off", args.work, root)]
        try:
            for svc in services:
                wait_ready(svc)
            for svc in services:  # warm: imports, the first container open, the first fetches
                post(svc, live, OFFSET)
                post(svc, live, OFFSET + 1)
                svc.answers.clear()
            ffmpeg_ms = sequential(services, mpd, live, gops, root)
            for svc in services:
                burst(svc, live, range(10, 10 + BURST))
            for svc in services:
                collect_hops(svc)
        finally:
            for svc in services:
                svc.proc.terminate()
            for svc in services:
                svc.proc.wait(90)
    report(services[0], services[1], ffmpeg_ms)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
