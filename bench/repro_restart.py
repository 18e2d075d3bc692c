"""Repro (issue 8, goal 5 bench): a worker restarted after a split job never got ready.

Seen once in bench/split.py: two workers finished a split job (chunks on export.transcodes),
were stopped by SIGTERM right after "outcome=uploading", and the next lone worker logged
"ShortWaitConsumerThread: Starting..." and nothing for 120 s.  This loops that sequence
against one embedded broker: two workers run a split job, SIGTERM, a lone worker starts and
runs a short whole job, SIGTERM; every start's time to its ready line is printed, and a start
that is not ready in ``--ready`` s stops the loop (its log, at --loglevel debug, shows where
faust waited).

    python bench/repro_restart.py [--work /tmp/bench/work] [--cycles 5] [--settle 10]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from common import bench_archive
from split import WorkerDidNotStart, post, start_worker

DEBUG = ("--loglevel", "debug")


def spawn(name: str, env: dict[str, str], logs: Path, ready_s: float) -> tuple[Any, str, float]:
    """A worker at debug level with a data dir of its own, its URL and its start-up time."""
    with open(logs / f"{name}.log", "a") as log:
        log.write(f"==== start {time.strftime('%H:%M:%S')}\n")
    env = env | {"EXPORT_DATA_DIR": str(logs / name)}
    t0 = time.perf_counter()
    try:
        proc, url = start_worker(name, env, logs, ready_s=ready_s, options=DEBUG)
    except WorkerDidNotStart as e:
        raise SystemExit(f"{e} (after {time.perf_counter() - t0:.1f} s)") from None
    return proc, url, time.perf_counter() - t0


def run(
    names: list[str], env: dict[str, str], body: dict[str, Any], logs: Path, ready_s: float
) -> list[float]:
    procs, urls, took = [], [], []
    try:
        for name in names:
            proc, url, t = spawn(name, env, logs, ready_s)
            procs.append(proc)
            urls.append(url)
            took.append(t)
        time.sleep(4.0)
        answer = post(urls[0], body)
        while answer.get("ErrorCode") == 1:
            time.sleep(0.1)
            answer = post(urls[-1], body)
        if answer.get("ErrorCode") != 5:
            raise SystemExit(f"job failed: {answer}")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(60)
    return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path("var/bench"))
    ap.add_argument("--cycles", type=int, default=5)
    ap.add_argument("--settle", type=float, default=10.0, help="s between a stop and a start")
    ap.add_argument("--ready", type=float, default=120.0, help="s a start may take")
    args = ap.parse_args()
    work: Path = args.work.resolve()
    mpd, spec = bench_archive(work, 130)
    logs = work / "restart-runs"
    logs.mkdir(parents=True, exist_ok=True)
    from service.broker import EmbeddedBroker

    with EmbeddedBroker(log_path=logs / "broker.log") as broker:
        base = {
            "EXPORT_KAFKA_BOOTSTRAP": broker.bootstrap,
            "EXPORT_ARCHIVE_URL": str(work),
            "EXPORT_OUTPUT_URL": str(logs / "exports"),
            "EXPORT_ENCODE_THREADS": "1",
            "EXPORT_MAX_TRANSCODES": "1",
            "EXPORT_DRAIN_TIMEOUT_MS": "0",
        }
        stamp = int(time.time())
        for i in range(args.cycles):
            for arm, names, split, seconds in (
                ("split", ["w0", "w1"], 2, 8),
                ("whole", ["w0"], 0, 2),
            ):
                body = {
                    "ServiceCaller": "bench",
                    "StartPos": spec.start_pos_ms(125),
                    "Duration": seconds * 1000,
                    "LivePath": f"{mpd.parent.name}/{mpd.name}",
                    "FetchMedia": True,
                    "export_type": 1,
                    "FileName": f"{arm}-{stamp}-{i}.mp4",
                }
                env = base | {"EXPORT_SPLIT_SECONDS": str(split)}
                took = run(names, env, body, logs, args.ready)
                print(
                    f"cycle {i} {arm}: ready in " + ", ".join(f"{t:.1f} s" for t in took),
                    flush=True,
                )
                time.sleep(args.settle)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
