"""Facts every checker reads off a history: paired operations, the disaster, the writer period."""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from drkit.measure.history import Op

PHASES = ("detection", "decision", "fencing", "promotion", "dns_switch")
CONVERGENCE = "client_convergence"


@dataclass(frozen=True)
class Pair:
    """An invocation and its completion; ``completion`` is None when the history ends first."""

    invoke: Op
    completion: Op | None

    @property
    def type(self) -> str:
        """ok, fail, info; an op that never completed counts as info (outcome unknown)."""
        return self.completion.type if self.completion is not None else "info"

    @property
    def end(self) -> float | None:
        return self.completion.mono if self.completion is not None else None


def pair_ops(ops: Iterable[Op]) -> tuple[Pair, ...]:
    """Pair each invoke with the next completion of the same process, in invocation order.

    A completion with no open invocation is ignored (recorded alone, e.g. recovery marks).
    The pairing of the last immutable history seen is kept, since every checker asks for it.
    """
    global _last_paired
    if isinstance(ops, tuple) and _last_paired is not None and _last_paired[0] is ops:
        return _last_paired[1]
    pairs = _pair(ops)
    if isinstance(ops, tuple):
        _last_paired = (ops, pairs)
    return pairs


_last_paired: tuple[tuple[Op, ...], tuple[Pair, ...]] | None = None


def forget_pairing() -> None:
    """Drop the kept pairing (benchmarks measure checkers cold with it)."""
    global _last_paired
    _last_paired = None


def _pair(ops: Iterable[Op]) -> tuple[Pair, ...]:
    invokes: list[Op] = []
    completions: list[Op | None] = []
    open_by_process: dict[str, int] = {}
    for op in ops:
        if op.type == "invoke":
            open_by_process[op.process] = len(invokes)
            invokes.append(op)
            completions.append(None)
        elif (at := open_by_process.pop(op.process, None)) is not None:
            completions[at] = op
    return tuple(map(Pair, invokes, completions))


def of_kind(pairs: Iterable[Pair], kind: str) -> list[Pair]:
    return [p for p in pairs if p.invoke.kind == kind]


def completed_in_order(pairs: Iterable[Pair]) -> list[Pair]:
    """Pairs that completed, sorted by completion time (monotonic), then history order."""
    done = [(p.completion.mono, p.completion.index, p) for p in pairs if p.completion is not None]
    done.sort()  # indexes are unique, so two Pairs are never compared
    return [p for _, _, p in done]


def value_field(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, dict) else None


@dataclass(frozen=True)
class Disaster:
    """The injection that took the primary out: when (both clocks) and what."""

    mono: float
    wall: float
    fault: str
    marks: int


def find_disaster(ops: Sequence[Op]) -> Disaster | None:
    """The first fault injection marked ``disaster``; earlier faults (a link cut) are not it."""
    marks = [
        op
        for op in ops
        if op.kind == "fault"
        and op.is_invoke
        and value_field(op.value, "f") == "inject"
        and value_field(op.value, "disaster") is True
    ]
    if not marks:
        return None
    first = marks[0]
    return Disaster(first.mono, first.wall, str(value_field(first.value, "fault")), len(marks))


def writer_period(ops: Sequence[Op]) -> float | None:
    """The writer's period, estimated as the median gap between successive write invocations."""
    starts = sorted(op.mono for op in ops if op.kind == "write" and op.is_invoke)
    gaps = [b - a for a, b in itertools.pairwise(starts) if b > a]
    return statistics.median(gaps) if gaps else None


def phase_marks(ops: Sequence[Op], after: float) -> dict[str, Op]:
    """The first completion mark of each recovery phase at or after ``after``."""
    marks: dict[str, Op] = {}
    for op in ops:
        if op.kind != "recovery" or op.is_invoke or op.type != "ok" or op.mono < after:
            continue
        phase = value_field(op.value, "phase")
        if isinstance(phase, str) and phase not in marks:
            marks[phase] = op
    return marks


def primary_before(pairs: Sequence[Pair], moment: float) -> str | None:
    """The region that acknowledged the last write completed before ``moment``."""
    acked = [p for p in of_kind(completed_in_order(pairs), "write") if p.type == "ok"]
    before = [p for p in acked if p.end is not None and p.end <= moment]
    return before[-1].completion.region if before and before[-1].completion else None


def promotion_time(ops: Sequence[Op]) -> float | None:
    """When the promotion mark was recorded (after the disaster, when there is one)."""
    disaster = find_disaster(ops)
    mark = phase_marks(ops, disaster.mono if disaster else float("-inf")).get("promotion")
    return mark.mono if mark else None
