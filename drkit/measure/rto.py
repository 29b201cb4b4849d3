"""RTO: from the disaster to the first acknowledged write on the new writer that holds.

"Holds" means it is followed by ``n`` (default 5) consecutive successful writes on the same
new writer. The span is split into phases at the recorded recovery marks (detection,
decision, fencing, promotion, DNS switch) plus client convergence; error bar = writer period.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from drkit.measure.history import Op
from drkit.measure.ops import (
    CONVERGENCE,
    PHASES,
    Disaster,
    Pair,
    find_disaster,
    of_kind,
    pair_ops,
    phase_marks,
    primary_before,
    writer_period,
)
from drkit.measure.verdict import UNKNOWN, Verdict, checker

RTO_OBJECTIVE = 15 * 60.0


@dataclass(frozen=True)
class Phase:
    """One slice of the recovery: ``name`` from ``start`` to ``end`` (monotonic seconds)."""

    name: str
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class RtoMeasurement:
    """What the RTO checker measured; ``rto`` is None when no lasting recovery was seen."""

    disaster: Disaster | None
    old_primary: str | None
    new_writer: str | None
    recovered_mono: float | None
    recovered_wall: float | None
    rto: float | None
    phases: tuple[Phase, ...]
    error_bar: float | None
    observed_after_disaster: float | None
    consecutive: int


def measure_rto(
    ops: Sequence[Op], *, n: int = 5, new_writer: str | None = None, period: float | None = None
) -> RtoMeasurement:
    """Measure the RTO; ``new_writer`` pins the region, else any region but the old primary."""
    pairs = pair_ops(ops)
    disaster = find_disaster(ops)
    bar = period if period is not None else writer_period(ops)
    if disaster is None:
        return RtoMeasurement(None, None, new_writer, None, None, None, (), bar, None, n)
    old = primary_before(pairs, disaster.mono)
    # Invocation order: a write sent to the old region before recovery that times out later
    # says nothing about writes sent after it, so it must not break their streak.
    after = [p for p in of_kind(pairs, "write") if _end(p) > disaster.mono]
    first = _first_lasting_success(after, n, new_writer, old)
    observed = max(op.mono for op in ops) - disaster.mono
    if first is None or first.completion is None:
        return RtoMeasurement(disaster, old, new_writer, None, None, None, (), bar, observed, n)
    done = first.completion
    phases = _phases(ops, disaster.mono, done.mono)
    return RtoMeasurement(
        disaster, old, done.region, done.mono, done.wall, done.mono - disaster.mono, phases, bar,
        observed, n,
    )  # fmt: skip


def _end(pair: Pair) -> float:
    return pair.end if pair.end is not None else float("inf")


def _first_lasting_success(
    writes: Sequence[Pair], n: int, pinned: str | None, old: str | None
) -> Pair | None:
    """The first ok write on an eligible region followed by ``n`` more ok writes there, in
    invocation order."""
    start: int | None = None
    for i, pair in enumerate(writes):
        region = _region(pair)
        eligible = pair.type == "ok" and (region == pinned if pinned else region != old)
        if not eligible:
            start = None
            continue
        if start is None or _region(writes[start]) != region:
            start = i
        if i - start >= n:
            return writes[start]
    return None


def _region(pair: Pair) -> str | None:
    return pair.completion.region if pair.completion else None


def _phases(ops: Sequence[Op], disaster: float, recovered: float) -> tuple[Phase, ...]:
    """Consecutive phases ending at each recovery mark (clipped to the RTO span), in time order."""
    marks = phase_marks(ops, disaster)
    ends = sorted((min(marks[name].mono, recovered), name) for name in PHASES if name in marks)
    phases: list[Phase] = []
    start = disaster
    for end, name in ends:
        phases.append(Phase(name, start, max(end, start)))
        start = max(end, start)
    phases.append(Phase(CONVERGENCE, start, recovered))
    return tuple(phases)


@checker("rto")
def check_rto(
    ops: Sequence[Op],
    *,
    objective: float = RTO_OBJECTIVE,
    n: int = 5,
    new_writer: str | None = None,
    period: float | None = None,
) -> Verdict:
    """RTO against ``objective`` seconds; unknown when the disaster or the recovery is unseen."""
    m = measure_rto(ops, n=n, new_writer=new_writer, period=period)
    details = asdict(m)
    if m.disaster is None:
        return Verdict("rto", UNKNOWN, _NO_DISASTER, objective=objective, details=details)
    if m.rto is None:
        return _unrecovered(m, objective, details)
    valid = m.rto <= objective
    phases = ", ".join(f"{p.name} {p.duration:.3f}s" for p in m.phases)
    reason = (
        f"first lasting write on {m.new_writer} {m.rto:.3f}s {_pm(m.error_bar)} after "
        f"'{m.disaster.fault}' {'within' if valid else 'exceeds'} the {objective:g}s objective"
        f" ({phases}){_extra_marks(m.disaster)}"
    )
    return Verdict("rto", valid, reason, m.rto, objective, "s", m.error_bar, details)


_NO_DISASTER = (
    "the history has no fault marked as the disaster, so RTO has no start; inject the fault "
    "that takes the primary out with disaster=True"
)


def _unrecovered(m: RtoMeasurement, objective: float, details: dict[str, object]) -> Verdict:
    observed = m.observed_after_disaster or 0.0
    seen = f"no write on a new writer followed by {m.consecutive} more successes in {observed:.3f}s"
    if observed > objective:
        reason = f"{seen} after the disaster: the {objective:g}s objective is exceeded"
        return Verdict("rto", False, reason, observed, objective, "s", m.error_bar, details)
    reason = (
        f"{seen} after the disaster, and the history ends before the {objective:g}s objective; "
        "recovery was not observed (run the writer until failover completes)"
    )
    return Verdict("rto", UNKNOWN, reason, None, objective, "s", m.error_bar, details)


def _pm(bar: float | None) -> str:
    return f"(+-{bar:.3f}s)" if bar is not None else "(error bar unknown: fewer than 2 writes)"


def _extra_marks(disaster: Disaster) -> str:
    if disaster.marks == 1:
        return ""
    return f"; note: {disaster.marks} faults were marked disaster, the first one counts"
