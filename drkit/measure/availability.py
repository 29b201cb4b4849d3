"""Availability timeline (which region served when, and when nothing did) and flapping."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from drkit.measure.history import Op
from drkit.measure.ops import Pair, completed_in_order, of_kind, pair_ops
from drkit.measure.rto import RTO_OBJECTIVE
from drkit.measure.verdict import UNKNOWN, Verdict, checker


@dataclass(frozen=True)
class Segment:
    """A stretch of time served by ``region``; ``region`` None means nothing answered."""

    region: str | None
    start: float
    end: float
    wall_start: float
    ops: int

    @property
    def duration(self) -> float:
        return self.end - self.start


def availability_timeline(ops: Sequence[Op], kind: str = "read") -> tuple[Segment, ...]:
    """Consecutive completions of ``kind`` grouped by who answered (fail/info: nobody)."""
    done = of_kind(completed_in_order(pair_ops(ops)), kind)
    segments: list[Segment] = []
    for pair in done:
        op = pair.completion
        assert op is not None
        region = op.region if pair.type == "ok" else None
        if segments and segments[-1].region == region:
            last = segments[-1]
            segments[-1] = Segment(region, last.start, op.mono, last.wall_start, last.ops + 1)
        else:
            if segments:
                last = segments[-1]
                segments[-1] = Segment(last.region, last.start, op.mono, last.wall_start, last.ops)
            segments.append(Segment(region, op.mono, op.mono, op.wall, 1))
    return tuple(segments)


@checker("availability")
def check_availability(
    ops: Sequence[Op], *, kind: str = "read", objective: float = RTO_OBJECTIVE
) -> Verdict:
    """The longest stretch with no successful ``kind`` operation, against ``objective``."""
    timeline = availability_timeline(ops, kind)
    if not timeline:
        return Verdict("availability", UNKNOWN, f"no completed {kind} operation in the history")
    outages = [s.duration for s in timeline if s.region is None]
    longest = max(outages, default=0.0)
    served = sum(s.ops for s in timeline if s.region is not None)
    total = sum(s.ops for s in timeline)
    details = {"timeline": [asdict(s) for s in timeline], "served": served, "total": total}
    valid = longest <= objective
    reason = (
        f"longest {kind} outage {longest:.3f}s ({'within' if valid else 'exceeds'} "
        f"{objective:g}s); {served}/{total} {kind}s served, by {_served_by(timeline)}"
    )
    return Verdict("availability", valid, reason, longest, objective, "s", details=details)


def _served_by(timeline: Sequence[Segment]) -> str:
    regions = [s.region or "nobody" for s in timeline]
    return " -> ".join(regions[:12]) + (" -> ..." if len(regions) > 12 else "")


def region_switches(pairs: Sequence[Pair]) -> int:
    """How many times the answering region changed among successful operations."""
    regions = [
        p.completion.region for p in completed_in_order(pairs) if p.type == "ok" and p.completion
    ]
    return sum(1 for a, b in itertools.pairwise(regions) if a != b)


@checker("flapping")
def check_flapping(
    ops: Sequence[Op], *, allowed: int = 1, kinds: Sequence[str] = ("read", "write")
) -> Verdict:
    """Region switches per kind (the worst kind counts) against ``allowed`` (one failover)."""
    pairs = pair_ops(ops)
    counts = {k: region_switches(of_kind(pairs, k)) for k in kinds if _served(pairs, k)}
    if not counts:
        return Verdict("flapping", UNKNOWN, "no successful operation, so no region was seen")
    worst = max(counts.values())
    valid = worst <= allowed
    per_kind = ", ".join(
        f"{k}s switched {c} time{'' if c == 1 else 's'}" for k, c in counts.items()
    )
    reason = f"{per_kind}; {'at most' if valid else 'more than'} {allowed} allowed"
    return Verdict("flapping", valid, reason, worst, allowed, "switches", details=counts)


def _served(pairs: Sequence[Pair], kind: str) -> bool:
    return any(p.type == "ok" for p in of_kind(pairs, kind))


@checker("error_tail")
def check_error_tail(ops: Sequence[Op], *, bound_s: float) -> Verdict:
    """The connection-pool tail: once the new primary's service answered its first operation
    after the promotion, how long failed or unknown operations (reads and writes) went on,
    against ``bound_s``; with the p95 latency of successful ones in its first second and after.
    """
    from drkit.measure.ops import promotion_time

    promoted = promotion_time(ops)
    if promoted is None:
        return Verdict("error_tail", False, "no promotion mark in the history", None, bound_s)
    after = [
        p
        for p in completed_in_order(pair_ops(ops))
        if p.invoke.kind in ("read", "write")
        and p.completion is not None
        and p.completion.mono >= promoted
    ]
    ok = [p for p in after if p.type == "ok"]
    if not ok:
        return Verdict("error_tail", False, "nothing succeeded after the promotion", None, bound_s)
    start = ok[0].completion.mono  # type: ignore[union-attr]
    failed = [p for p in after if p.type != "ok" and p.invoke.mono >= start]
    tail = max((p.completion.mono for p in failed), default=start) - start  # type: ignore[union-attr]

    def p95(pairs: list[Pair]) -> float | None:
        lat = sorted(p.completion.mono - p.invoke.mono for p in pairs)  # type: ignore[union-attr]
        return round(lat[int(len(lat) * 0.95)] * 1000, 1) if lat else None

    early = p95([p for p in ok if p.invoke.mono < start + 1.0])
    late = p95([p for p in ok if p.invoke.mono >= start + 1.0])
    return Verdict(
        "error_tail",
        tail <= bound_s,
        f"after the new primary's first answer, {len(failed)} operations failed, the last "
        f"{tail:.2f}s after it (bound {bound_s:g}s); p95 latency {early} ms in the first "
        f"second, {late} ms after",
        round(tail, 3),
        bound_s,
        "s",
        None,
        {"failed": len(failed), "p95_first_second_ms": early, "p95_after_ms": late},
    )
