"""Benchmark: history append throughput and checker throughput; prints figures, asserts nothing.

    .venv/bin/python bench/bench_checkers.py [--ops 100000] [--drill-minutes 10]

A synthetic drill at the design's rates (writer and probe at 20 operations per second each,
so 80 history records per second) with a replication link cut, a region loss, an outage,
recovery marks and a failover to the other region. The goal for a 10-minute drill's history
is a full check in under one second.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from drkit.measure import (
    Budget,
    History,
    Op,
    check_availability,
    check_budget,
    check_flapping,
    check_read_your_writes,
    check_rpo,
    check_rto,
    check_split_brain,
    check_stale_reads,
    content_hash,
    load_history,
)
from drkit.measure.ops import forget_pairing
from drkit.measure.verdict import Verdict

EAST, WEST = "us-east-1", "us-west-2"
RATE = 20.0  # operations per second, per client


class SyntheticClock:
    """Monotonic time that the generator moves by hand; wall time follows it."""

    def __init__(self) -> None:
        self.mono = 1000.0

    def __call__(self) -> tuple[float, float]:
        return 1_800_000_000.0 + self.mono, self.mono


def _region_at(t: float, seconds: float) -> str | None:
    disaster, recovered = 0.4 * seconds, 0.4 * seconds + 12.0
    if t < disaster:
        return EAST
    return WEST if t >= recovered else None


def synthetic_drill(history: History, clock: SyntheticClock, seconds: float) -> dict[str, str]:
    """Record a drill of ``seconds`` into ``history``; returns the surviving database's read."""
    start, period = clock.mono, 1.0 / RATE
    final: dict[str, str] = {}
    marks = _phase_marks(0.4 * seconds)
    for n in range(int(seconds * RATE)):
        t = n * period
        clock.mono = start + t
        if n == int(0.3 * seconds * RATE):
            _fault(history, "replication link cut", disaster=False)
        if n == int(0.4 * seconds * RATE):
            _fault(history, "us-east-1 down", disaster=True)
        while marks and t >= marks[0][1]:
            history.recovery(marks.pop(0)[0])
        _write(history, clock, f"d{n:07d}", _region_at(t, seconds), final, t < 0.3 * seconds)
        _read(history, clock, f"d{n - 1:07d}", _region_at(t, seconds))
    return final


def _phase_marks(disaster: float) -> list[tuple[str, float]]:
    """When each recovery phase ends, seconds into the drill."""
    durations = [("detection", 1.5), ("decision", 0.2), ("fencing", 0.1), ("promotion", 0.4),
                 ("dns_switch", 0.1)]  # fmt: skip
    marks, at = [], disaster
    for name, duration in durations:
        at += duration
        marks.append((name, at))
    return marks


def _fault(history: History, name: str, *, disaster: bool) -> None:
    op = history.invoke("nemesis", "fault", {"fault": name, "f": "inject", "disaster": disaster})
    history.complete(op, "ok")


def _write(
    history: History, clock: SyntheticClock, doc: str, region: str | None,
    final: dict[str, str], replicated: bool,
) -> None:  # fmt: skip
    payload_hash = content_hash(doc)
    op = history.invoke("writer-0", "write", {"id": doc, "hash": payload_hash})
    clock.mono += 0.004
    if region is None:
        history.complete(op, "fail", error="refused")
        return
    history.complete(op, "ok", {"id": doc, "commit_time": clock()[0]}, region=region)
    if replicated or region == WEST:
        final[doc] = payload_hash


def _read(history: History, clock: SyntheticClock, doc: str, region: str | None) -> None:
    op = history.invoke("probe-0", "read", {"query": doc, "expect": [doc]})
    clock.mono += 0.003
    if region is None:
        history.complete(op, "fail", error="refused")
    else:
        history.complete(op, "ok", {"ids": [doc]}, region=region)


def seconds_for(ops: int) -> float:
    """Drill length that yields about ``ops`` history records (4 per writer/probe tick)."""
    return ops / (4 * RATE)


BUDGET = Budget(detection_interval=0.5, threshold=3, promotion=0.5, ttl=1.0, slack=10.0)


def checkers(final: dict[str, str]) -> dict[str, Callable[[Sequence[Op]], Verdict]]:
    return {
        "rto": check_rto,
        "rpo": lambda ops: check_rpo(ops, final),
        "read_your_writes": check_read_your_writes,
        "stale_reads": check_stale_reads,
        "split_brain": check_split_brain,
        "availability": check_availability,
        "flapping": check_flapping,
        "budget": lambda ops: check_budget(ops, BUDGET),
    }


def best_of(runs: int, fn: Callable[[], object]) -> float:
    """The fastest of ``runs`` cold runs (checkers share one pairing per history: dropped)."""
    timings = []
    for _ in range(runs):
        forget_pairing()
        started = time.perf_counter()
        fn()
        timings.append(time.perf_counter() - started)
    return min(timings)


def bench_append(count: int, folder: Path) -> None:
    print(f"history append, {count:,} records (invoke + complete pairs):")
    for label, path in [("in memory", None), ("streamed to disk, chained", folder / "h.jsonl")]:
        if path is not None and path.exists():
            path.unlink()
        history = History(path)
        started = time.perf_counter()
        for n in range(count // 2):
            op = history.invoke("writer-0", "write", {"id": f"d{n}", "hash": "0" * 64})
            history.complete(op, "ok", {"id": f"d{n}", "commit_time": 0.0}, region=EAST)
        history.close()
        elapsed = time.perf_counter() - started
        print(f"  {label:28s} {count / elapsed:12,.0f} records/s  ({elapsed:.3f} s)")


def bench_checkers(count: int, folder: Path) -> None:
    clock, path = SyntheticClock(), folder / "drill.jsonl"
    with History(path, clock=clock) as history:
        final = synthetic_drill(history, clock, seconds_for(count))
    ops = history.ops
    print(f"\ncheckers on a {len(ops):,}-record history ({seconds_for(count):,.0f} s drill):")
    for name, check in checkers(final).items():
        verdict = check(ops)
        elapsed = best_of(3, lambda: check(ops))  # noqa: B023 (called before the loop moves on)
        print(
            f"  {name:18s} {len(ops) / elapsed:12,.0f} ops/s  ({elapsed:.3f} s)  -> {verdict.valid}"
        )
    elapsed = best_of(3, lambda: load_history(path))
    print(f"  {'load + verify file':18s} {len(ops) / elapsed:12,.0f} ops/s  ({elapsed:.3f} s)")


def bench_drill(minutes: float, folder: Path) -> None:
    clock, path = SyntheticClock(), folder / "ten.jsonl"
    with History(path, clock=clock) as history:
        final = synthetic_drill(history, clock, minutes * 60)
    every = checkers(final).values()
    checks = best_of(3, lambda: [check(history.ops) for check in every])
    loading = best_of(3, lambda: load_history(path))
    size = path.stat().st_size / 1e6
    print(f"\na {minutes:g}-minute drill ({len(history):,} records, {size:.1f} MB on disk):")
    print(f"  all {len(every)} checkers, in memory      {checks:.3f} s   (goal: under 1 s)")
    print(f"  load + verify the file         {loading:.3f} s")
    print(f"  load, verify and check         {loading + checks:.3f} s")
    for verdict in (check(history.ops) for check in every):
        print(f"    {verdict.summary()[:110]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--ops", type=int, default=100_000)
    parser.add_argument("--drill-minutes", type=float, default=10.0)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {load:.2f}\n")
    with tempfile.TemporaryDirectory(prefix="drkit-bench-") as tmp:
        bench_append(args.ops, Path(tmp))
        bench_checkers(args.ops, Path(tmp))
        bench_drill(args.drill_minutes, Path(tmp))


if __name__ == "__main__":
    main()
