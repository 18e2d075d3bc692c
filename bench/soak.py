"""Soak: the chaos test (tests/ingress/test_chaos.py) over many seeds and rounds, for figures.

    python bench/soak.py --runs 10 --rounds 8      # ~24 jobs and 8 SIGKILLs per run

Each run is one pytest process with its own broker and workers; the script prints one line
per run (jobs, kills, workers started, pass/fail) and a total.  Not part of `make test`: it
takes minutes per run.  Add S3 faults with the storage fault proxy's own soak
(tests/pipeline/test_storage_faults.py) when outputs are on S3.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINE = re.compile(r"(\d+) jobs, (\d+) kills, (\d+) workers started: 0 lost, 0 twice")


def run_once(seed: int, rounds: int) -> tuple[bool, str, float]:
    env = dict(os.environ, EXPORT_TEST_CHAOS_SEED=str(seed), EXPORT_TEST_CHAOS_ROUNDS=str(rounds))
    cmd = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider"]
    cmd += ["tests/ingress/test_chaos.py", "-o", "addopts=", "--timeout=3600"]
    started = time.monotonic()
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    took = time.monotonic() - started
    found = LINE.search(out.stdout)
    summary = found.group(0) if found else out.stdout.strip().splitlines()[-1:][0:1]
    return out.returncode == 0, str(summary), took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    passed = jobs = kills = 0
    for k in range(args.runs):
        ok, summary, took = run_once(args.seed + k, args.rounds)
        passed += ok
        m = LINE.search(summary)
        if m:
            jobs, kills = jobs + int(m.group(1)), kills + int(m.group(2))
        print(f"seed {args.seed + k}: {'ok' if ok else 'FAILED'} in {took:.0f} s: {summary}")
    print(f"{passed}/{args.runs} runs passed; {jobs} jobs, {kills} SIGKILLs in the passing runs")
    return 0 if passed == args.runs else 1


if __name__ == "__main__":
    raise SystemExit(main())
