"""Benchmark the drill catalog on the lab: each scenario's wall time, its measured RTO, and
RTO/floor where a failover automation is timed (floor = detection (health interval x failure
threshold) + the failover's own promotion time + DNS TTL).

Each scenario runs as a user runs it, `pytest drills -k <scenario>`, in a child process against
a lab this script brings up once (its own state folder and port base); figures come from the
run folder's `verdicts/*.json`. Prints figures; asserts nothing about time.

    .venv/bin/python bench/bench_drills.py [--runs 3] [--port-base 29600] [-k region_outage]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from drkit.config import LabPorts, LabSettings
from drkit.lab.lab import Lab
from drkit.lab.lock import LOCK_ENV, lab_lock

ROOT = Path(__file__).resolve().parent.parent


def spread(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"{min(values):7.2f} {statistics.median(values):7.2f} {max(values):7.2f}"


def run_catalog(selection: str | None, runs_dir: Path, env: dict[str, str]) -> dict[str, Any]:
    """One pytest run of the (selected) catalog; per scenario: duration, outcome, verdicts."""
    junit = runs_dir / "junit.xml"
    args = [sys.executable, "-m", "pytest", "drills", "-q", "-p", "no:cacheprovider"]
    args += ["--junitxml", str(junit), *(["-k", selection] if selection else [])]
    env = {**env, "DRKIT_RUNS_DIR": str(runs_dir)}
    start = time.monotonic()
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    wall = time.monotonic() - start
    cases = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        problem = case.find("failure") if case.find("failure") is not None else case.find("error")
        cases[case.get("name", "?")] = {
            "time": float(case.get("time", 0)),
            "failed": problem is not None,
            "message": (problem.get("message") or "")[:300] if problem is not None else "",
        }
    summaries = [json.loads(p.read_text()) for p in runs_dir.glob("*/verdicts/*.json")]
    for summary in summaries:
        if summary["name"] in cases:
            cases[summary["name"]]["summary"] = summary
    if done.returncode not in (0, 1):
        print(done.stdout[-3000:], done.stderr[-3000:], file=sys.stderr)
    return {"wall": wall, "cases": cases}


def rto_and_floor(summary: dict[str, Any]) -> tuple[float | None, float | None]:
    verdicts = {v["checker"]: v for v in summary.get("verdicts", [])}
    rto = verdicts.get("rto", {}).get("value")
    phases, profile = summary.get("failover_phases") or {}, summary.get("profile") or {}
    if rto is None or "promotion" not in phases or "detection" in phases:
        return rto, None  # no automation timed (an operator's failover has no floor)
    detection = profile["health_interval_s"] * profile["failure_threshold"]
    return rto, detection + phases["promotion"] + profile["dns_ttl_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--port-base", type=int, default=29600)
    parser.add_argument("-k", dest="selection", default=None, help="pytest -k expression")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="drkit-bench-drills-", dir="/var/tmp"))
    os.chmod(home, 0o755)
    env = {**os.environ, "DRKIT_HOME": str(home), "DRKIT_LAB_PORT_BASE": str(args.port_base)}
    os.environ.update(DRKIT_HOME=str(home), DRKIT_LAB_PORT_BASE=str(args.port_base))
    lab = Lab(home, LabSettings(ports=LabPorts(args.port_base)))
    results = []
    try:
        with lab_lock(home, "bench-drills"):
            env[LOCK_ENV] = os.environ[LOCK_ENV]
            lab.up()
            for i in range(args.runs):
                results.append(run_catalog(args.selection, home / f"runs-{i}", env))
            lab.down(purge=True)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    names = sorted({name for r in results for name in r["cases"]})
    print(f"drill catalog on the lab, {args.runs} runs (min / median / max)")
    print(f"{'scenario':70} {'wall s':>23} {'RTO s':>23} {'RTO/floor':>23} failed")
    for name in names:
        cases = [r["cases"][name] for r in results if name in r["cases"]]
        timed = [rto_and_floor(c.get("summary", {})) for c in cases]
        rtos = [r for r, _ in timed if r is not None]
        ratios = [r / f for r, f in timed if r is not None and f]
        failed = sum(c["failed"] for c in cases)
        shown = name if len(name) <= 70 else f"{name[:58]}...{name[-9:]}"
        print(
            f"{shown:70} {spread([c['time'] for c in cases]):>23} {spread(rtos):>23} "
            f"{spread(ratios):>23} {failed}/{len(cases)}"
        )
        for message in sorted({c["message"] for c in cases if c["failed"]}):
            print(f"    failed: {message}")
    print(f"whole catalog, pytest wall time (s): {spread([r['wall'] for r in results])}")


if __name__ == "__main__":
    main()
