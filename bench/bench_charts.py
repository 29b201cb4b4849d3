"""Benchmark: time per evidence chart on a 10k-op history; prints figures, asserts nothing.

    .venv/bin/python bench/bench_charts.py [--ops 10000] [--runs 5] [--history PATH]
                                           [--runs-dir reports/runs]

The history is bench_checkers' synthetic drill (writer and probe at 20 operations per second,
a link cut, a region loss, recovery marks, a failover) with a replication sample every 0.5 s,
or a recorded one (--history). The goal is under 0.5 s per chart. The first chart drawn in a
process also pays matplotlib's import, which is printed apart.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench_checkers import SyntheticClock, seconds_for, synthetic_drill

from drkit.evidence.charts import (
    TrendPoint,
    lag_chart,
    load_trend,
    rto_waterfall,
    timeline_chart,
    trend_chart,
)
from drkit.measure import History, Op, load_history
from drkit.measure.history import OBSERVER_PROCESS

GOAL_S = 0.5
TREND_DRILL = "test_the_primary_database_in_useast1_crashes_and_the_watcher_fails_over"


def synthetic_history(count: int) -> tuple[Op, ...]:
    """bench_checkers' synthetic drill of about ``count`` ops, with replication samples."""
    clock = SyntheticClock()
    history = History(None, clock=clock)
    synthetic_drill(history, clock, seconds_for(count))
    ops = history.ops
    return _with_lag_samples(ops, ops[0].mono, ops[-1].mono)


def _with_lag_samples(ops: Sequence[Op], start: float, end: float) -> tuple[Op, ...]:
    """A replication sample every 0.5 s: lag grows from the link cut (30%) to the disaster."""
    samples, at = [], start
    cut, disaster = start + 0.3 * (end - start), start + 0.4 * (end - start)
    while at < end:
        lag = max(0.0, min(at, disaster) - cut)
        value = {"check": "replication", "lag_s": lag, "lag_upper_s": lag + 0.5,
                 "lag_bytes": int(lag * 65536), "alarm": "ALARM" if lag > 5 else "OK"}  # fmt: skip
        samples.append(Op(0, OBSERVER_PROCESS, "ok", "health", value, at, at, "us-west-2"))
        at += 0.5
    merged = sorted([*ops, *samples], key=lambda op: op.mono)
    return tuple(replace(op, index=i) for i, op in enumerate(merged))


def synthetic_trend(count: int) -> list[TrendPoint]:
    start = datetime(2026, 11, 26, tzinfo=UTC)
    return [
        TrendPoint(f"run{n}", start + timedelta(hours=n), 2.0 + (n % 3) * 0.3,
                   0.0 if n % 4 else None, 0.05, "pass" if n % 5 else "fail", 900.0, 6.5, 3600.0)
        for n in range(count)
    ]  # fmt: skip


def timed(runs: int, draw: Callable[[], object]) -> tuple[list[float], object]:
    timings, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = draw()
        timings.append(time.perf_counter() - started)
    return timings, result


def report(label: str, timings: Sequence[float], result: object) -> None:
    if isinstance(result, bytes):
        size = f"{len(result) / 1024:4.0f} KiB PNG"
    else:
        size = f"{len(result)} points" if isinstance(result, list) else "None (nothing to draw)"
    verdict = "ok" if statistics.median(timings) < GOAL_S else f"over the {GOAL_S} s goal"
    print(
        f"  {label:34s} min {min(timings):.3f}  median {statistics.median(timings):.3f}  "
        f"max {max(timings):.3f} s  {size}  {verdict}"
    )


def bench(ops: Sequence[Op], runs: int, runs_dir: Path) -> None:
    span = ops[-1].mono - ops[0].mono
    print(f"charts of a {len(ops):,}-op history ({span:,.0f} s), {runs} runs each:")
    first, _ = timed(1, lambda: timeline_chart(ops, title="first chart"))
    print(f"  {'first chart (imports matplotlib)':34s} {first[0]:.3f} s")
    charts: dict[str, Callable[[], object]] = {
        "timeline_chart": lambda: timeline_chart(ops, title="timeline"),
        "lag_chart": lambda: lag_chart(ops, title="lag", threshold_s=5.0),
        "rto_waterfall": lambda: rto_waterfall(ops, title="rto", objective_s=900, budget_s=6.5),
        "trend_chart (10 runs)": lambda: trend_chart(synthetic_trend(10), title="trend"),
    }
    if runs_dir.is_dir():
        charts[f"load_trend ({runs_dir.name})"] = lambda: load_trend(runs_dir, TREND_DRILL)
    for label, draw in charts.items():
        report(label, *timed(runs, draw))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--ops", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--history", type=Path, help="a recorded history instead")
    parser.add_argument("--runs-dir", type=Path, default=Path("reports/runs"))
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {load:.2f}\n")
    ops = load_history(args.history).ops if args.history else synthetic_history(args.ops)
    bench(ops, args.runs, args.runs_dir)


if __name__ == "__main__":
    main()
