"""Every issue-8 benchmark in one run, then one table of their GOAL and EXACT lines.

    python bench/all.py [--quick] [--work var/bench]      # = make bench-all [ARGS=--quick]

Runs each script of :data:`SCRIPTS` that exists, one after the other (never two at once:
they time themselves), with ``--quick`` and ``--work`` passed through, shows its output as
it comes, and finally prints the machine (cores, load average, CPU model) and the table of
every ``GOAL ... | MET|MISSED`` and ``EXACT ... | OK|WRONG`` line (bench/common.py's
formats).  A missing script or one that exits non-zero is named in the table.  Exits 1 when
any goal is missed, any output is wrong, or any script failed or is missing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
# Issue 8's scripts, in the order its goals are listed.
SCRIPTS = ("thumb_cache", "thumb_http", "smartcut", "transcode", "split", "memory")
VERDICTS = {"GOAL": ("MET", "MISSED"), "EXACT": ("OK", "WRONG")}


@dataclass
class Outcome:
    script: str
    status: str  # "ran", "missing", "failed (exit N)"
    seconds: float = 0.0
    lines: list[str] = field(default_factory=list)  # its GOAL and EXACT lines


def run(script: str, args: list[str]) -> Outcome:
    path = BENCH / f"{script}.py"
    if not path.exists():
        return Outcome(script, "missing")
    print(f"\n######## bench/{script}.py {' '.join(args)}", flush=True)
    # The checkout's own packages first, whatever the interpreter has installed.
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))
    }
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, str(path), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        print(line, end="", flush=True)
        if line.split(" ", 1)[0] in VERDICTS:
            lines.append(line.rstrip("\n"))
    code = proc.wait()
    status = "ran" if code == 0 else f"failed (exit {code})"
    return Outcome(script, status, time.monotonic() - started, lines)


def machine() -> list[str]:
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout.strip()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"cores {os.cpu_count()}, nproc {nproc or '?'}, CPU {model}",
        f"load average (1, 5, 15 min) {load}",
    ]


def table(outcomes: list[Outcome], load_before: str) -> bool:
    """Print the summary; True when every goal is met, every output exact, every script ran."""
    print("\n======== issue 8 benchmarks")
    for line in machine():
        print(line)
    print(f"load average before the run {load_before}")
    good = True
    for out in outcomes:
        print(
            f"\n-- bench/{out.script}.py: {out.status}"
            + (f" in {out.seconds:.0f} s" if out.seconds else "")
        )
        good &= out.status == "ran"
        for line in out.lines:
            print(line)
            kind = line.split(" ", 1)[0]
            good &= line.rsplit("|", 1)[-1].strip() == VERDICTS[kind][0]
    counts = {
        verdict: sum(line.endswith(f"| {verdict}") for out in outcomes for line in out.lines)
        for pair in VERDICTS.values()
        for verdict in pair
    }
    missing = [out.script for out in outcomes if out.status == "missing"]
    print("\n" + ", ".join(f"{n} {verdict}" for verdict, n in counts.items()))
    if missing:
        print("missing scripts: " + ", ".join(f"bench/{name}.py" for name in missing))
    return good


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="each script's short run")
    parser.add_argument("--work", default=None, help="archive folder (each script's default)")
    parser.add_argument("--only", nargs="+", choices=SCRIPTS, default=SCRIPTS, help="a subset")
    args = parser.parse_args()
    passed = ["--quick"] if args.quick else []
    if args.work:
        passed += ["--work", args.work]
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    outcomes = [run(script, passed) for script in args.only]
    return 0 if table(outcomes, load_before) else 1


if __name__ == "__main__":
    raise SystemExit(main())
