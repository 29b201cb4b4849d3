"""Benchmark the lab's life cycle: cold and warm `lab up`, `reset` after a promotion, memory.

Runs the real `drkit` CLI in a throw-away state folder on its own ports and prints figures
(min / median / max over the repetitions). It asserts nothing about time.

    .venv/bin/python bench/bench_lab.py [--runs 3] [--port-base 29400]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from drkit.config import LabPorts, LabSettings
from drkit.lab.lab import Lab


def drkit(env: dict[str, str], *args: str) -> float:
    start = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "drkit.cli", *args], env=env, check=True, capture_output=True
    )
    return time.monotonic() - start


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = {pid}, [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def rss_mib(pids: set[int]) -> float:
    total_kib = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
        except OSError:
            continue
    return total_kib / 1024


def lab_rss(lab: Lab) -> float:
    """Resident memory of every process the lab runs (pid files, postmasters and children)."""
    roots = [c.pid() for c in lab.database.clusters.values()]
    for pid_file in (lab.state / "run").glob("*.pid"):
        try:
            roots.append(int(pid_file.read_text().split()[0]))
        except (OSError, ValueError, IndexError):
            continue
    pids: set[int] = set()
    for root in roots:
        if root is not None:
            pids |= descendants(root)
    return rss_mib(pids)


def database_tier(home: Path, base: int, runs: int) -> dict[str, list[float]]:
    """The database tier alone (Toxiproxy and the PostgreSQL pair), in process."""
    lab = Lab(home, LabSettings(ports=LabPorts(base)))
    lab.services = lambda: []  # type: ignore[method-assign]  # measure this tier only
    figures: dict[str, list[float]] = {"cold": [], "warm": [], "reset": []}
    for _ in range(runs):
        lab.down(purge=True)
        figures["cold"].append(timed(lab.up))
        lab.down()
        figures["warm"].append(timed(lab.up))
        db = lab.database
        db.tools.run("pg_ctl", "-D", str(db.west.node.data_dir), "-w", "-s", "promote")
        figures["reset"].append(timed(lab.reset))
    lab.down(purge=True)
    return figures


def timed(fn: Callable[[], object]) -> float:
    start = time.monotonic()
    fn()
    return time.monotonic() - start


def figure(name: str, values: list[float], unit: str = "s", goal: str = "") -> None:
    print(
        f"{name:34} min {min(values):6.2f}{unit}  median {statistics.median(values):6.2f}{unit}"
        f"  max {max(values):6.2f}{unit}  {goal}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--port-base", type=int, default=29400)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="drkit-bench-", dir="/var/tmp"))
    os.chmod(home, 0o755)
    env = {**os.environ, "DRKIT_HOME": str(home), "DRKIT_LAB_PORT_BASE": str(args.port_base)}
    env.pop("DRKIT_LAB_RUN", None)
    lab = Lab(home, LabSettings(ports=LabPorts(args.port_base)))
    cold, warm, reset, rss = [], [], [], []
    try:
        for _ in range(args.runs):
            drkit(env, "lab", "down", "--purge")
            cold.append(drkit(env, "lab", "up"))
            rss.append(lab_rss(lab))
            drkit(env, "lab", "down")
            warm.append(drkit(env, "lab", "up"))
            db = lab.database
            db.tools.run("pg_ctl", "-D", str(db.west.node.data_dir), "-w", "-s", "promote")
            reset.append(drkit(env, "lab", "reset"))
    finally:
        drkit(env, "lab", "down", "--purge")
        shutil.rmtree(home, ignore_errors=True)
    tier_home = Path(tempfile.mkdtemp(prefix="drkit-bench-db-", dir="/var/tmp"))
    os.chmod(tier_home, 0o755)
    try:
        tier = database_tier(tier_home, args.port_base + 100, args.runs)
    finally:
        shutil.rmtree(tier_home, ignore_errors=True)
    print(f"database tier alone (Toxiproxy + PostgreSQL pair, in process), {args.runs} runs")
    figure("cold up (initdb, basebackup)", tier["cold"], goal="goal <= 6 s")
    figure("warm up (data kept)", tier["warm"], goal="goal <= 2 s")
    figure("reset after a promotion", tier["reset"], goal="goal <= 2 s")
    print(f"whole lab, every component, {lab.settings.ports.base} ports (CLI wall time)")
    figure("cold lab up (with the 5,000-doc seed)", cold)
    figure("warm lab up (data kept)", warm)
    figure("lab reset after a promotion", reset)
    figure("lab resident memory", rss, unit="MiB")


if __name__ == "__main__":
    main()
