"""RPO: how far back the surviving data reaches, from the writes acknowledged and then lost.

Given the final read of the surviving database (id -> content hash), an acknowledged write is
lost when its id is absent or its content differs. RPO is 0 when none is lost; otherwise it is
the span from the oldest lost acknowledgement to the disaster (or to the newest lost
acknowledgement, when the old primary kept acknowledging after the disaster). Writes whose
outcome is unknown are reported apart and never counted as lost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from drkit.measure.history import Op
from drkit.measure.ops import (
    Disaster,
    Pair,
    find_disaster,
    of_kind,
    pair_ops,
    promotion_time,
    value_field,
    writer_period,
)
from drkit.measure.verdict import UNKNOWN, Verdict, checker

RPO_OBJECTIVE = 60 * 60.0
FinalRead = Mapping[str, str | None]
"""Ids present in the surviving database after failover, each with its content hash (or None)."""


@dataclass(frozen=True)
class LostWrite:
    """An acknowledged write missing (or changed) after failover."""

    id: str
    ack_mono: float
    ack_wall: float
    region: str | None
    commit_time: float | None
    why: str
    after_disaster: bool


@dataclass(frozen=True)
class RpoMeasurement:
    """What the RPO checker measured; ``rpo`` is None when it cannot be computed."""

    disaster: Disaster | None
    acknowledged: int
    lost: tuple[LostWrite, ...]
    indeterminate_present: tuple[str, ...]
    indeterminate_absent: tuple[str, ...]
    failed_but_present: tuple[str, ...]
    rpo: float | None
    error_bar: float | None

    @property
    def lost_ids(self) -> tuple[str, ...]:
        return tuple(w.id for w in self.lost)


def measure_rpo(
    ops: Sequence[Op], final: FinalRead, *, period: float | None = None
) -> RpoMeasurement:
    """Classify every write against the final read and compute the RPO."""
    writes = of_kind(pair_ops(ops), "write")
    disaster = find_disaster(ops)
    acked = [p for p in writes if p.type == "ok"]
    lost = tuple(sorted(_lost(acked, final, disaster), key=lambda w: w.ack_mono))
    unsure = [_doc_id(p) for p in writes if p.type == "info"]
    failed = [_doc_id(p) for p in writes if p.type == "fail"]
    return RpoMeasurement(
        disaster=disaster,
        acknowledged=len(acked),
        lost=lost,
        indeterminate_present=tuple(i for i in unsure if i in final),
        indeterminate_absent=tuple(i for i in unsure if i not in final),
        failed_but_present=tuple(i for i in failed if i in final),
        rpo=_rpo(lost, disaster),
        error_bar=period if period is not None else writer_period(ops),
    )


def _doc_id(pair: Pair) -> str:
    return str(value_field(pair.invoke.value, "id"))


def _lost(acked: Sequence[Pair], final: FinalRead, disaster: Disaster | None) -> list[LostWrite]:
    lost = []
    for pair in acked:
        why = _missing_reason(pair, final)
        if why is not None and pair.completion is not None:
            done = pair.completion
            after = disaster is not None and done.mono > disaster.mono
            commit = value_field(done.value, "commit_time")
            lost.append(
                LostWrite(_doc_id(pair), done.mono, done.wall, done.region, commit, why, after)
            )
    return lost


def _missing_reason(pair: Pair, final: FinalRead) -> str | None:
    doc_id = _doc_id(pair)
    if doc_id not in final:
        return "absent"
    expected, found = value_field(pair.invoke.value, "hash"), final[doc_id]
    if expected is not None and found is not None and expected != found:
        return "content differs"
    return None


def _rpo(lost: Sequence[LostWrite], disaster: Disaster | None) -> float | None:
    if not lost:
        return 0.0
    if disaster is None:
        return None
    return max(disaster.mono, lost[-1].ack_mono) - lost[0].ack_mono


@checker("rpo")
def check_rpo(
    ops: Sequence[Op],
    final: FinalRead | None,
    *,
    objective: float = RPO_OBJECTIVE,
    period: float | None = None,
) -> Verdict:
    """RPO against ``objective`` seconds; ``final`` is the surviving database's id -> hash."""
    if final is None:
        return Verdict("rpo", UNKNOWN, _NO_FINAL_READ, objective=objective)
    m = measure_rpo(ops, final, period=period)
    details = {**asdict(m), "lost_ids": list(m.lost_ids), "lost_count": len(m.lost)}
    if m.rpo is None:
        reason = (
            f"{len(m.lost)} acknowledged writes lost ({_ids(m.lost_ids)}) but no fault is marked "
            "as the disaster, so RPO has no reference time; mark it with disaster=True"
        )
        return Verdict("rpo", UNKNOWN, reason, None, objective, "s", m.error_bar, details)
    valid = m.rpo <= objective
    return Verdict(
        "rpo", valid, _reason(m, objective, valid), m.rpo, objective, "s", m.error_bar, details
    )


_NO_FINAL_READ = (
    "no final read of the surviving database was given, so lost writes cannot be known; "
    "read the ids and content hashes after failover and pass them to check_rpo"
)


def _reason(m: RpoMeasurement, objective: float, valid: bool) -> str:
    unsure = len(m.indeterminate_present) + len(m.indeterminate_absent)
    tail = f"; {unsure} writes of unknown outcome apart ({len(m.indeterminate_absent)} absent)"
    if not m.lost:
        return f"RPO 0: none of {m.acknowledged} acknowledged writes was lost{tail}"
    late = sum(w.after_disaster for w in m.lost)
    late_note = f", {late} of them acknowledged after the disaster (split brain?)" if late else ""
    verdict = "within" if valid else "exceeds"
    bar = f" (+-{m.error_bar:.3f}s)" if m.error_bar is not None else ""
    return (
        f"RPO {m.rpo:.3f}s{bar} {verdict} the {objective:g}s objective: {len(m.lost)} of "
        f"{m.acknowledged} acknowledged writes lost ({_ids(m.lost_ids)}){late_note}{tail}"
    )


def _ids(ids: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f", ... {len(ids) - limit} more" if len(ids) > limit else "")


@checker("split_brain")
def check_split_brain(ops: Sequence[Op], *, since: float | None = None) -> Verdict:
    """After promotion, only one region may acknowledge writes; two writers is split brain."""
    start = since if since is not None else promotion_time(ops)
    if start is None:
        reason = "no promotion mark in the history, so there is no 'after promotion' to check"
        return Verdict("split_brain", UNKNOWN, reason, unit="regions")
    acked = [p for p in of_kind(pair_ops(ops), "write") if p.type == "ok" and p.completion]
    by_region: dict[str, list[str]] = {}
    for pair in acked:
        if pair.completion is not None and pair.completion.mono > start:
            by_region.setdefault(str(pair.completion.region), []).append(_doc_id(pair))
    details = {"acknowledged_by": by_region}
    if len(by_region) <= 1:
        who = next(iter(by_region), "no region")
        reason = f"after promotion only {who} acknowledged writes"
        return Verdict("split_brain", True, reason, len(by_region), 1, "regions", details=details)
    listing = "; ".join(f"{r}: {len(ids)} ({_ids(ids, 3)})" for r, ids in sorted(by_region.items()))
    reason = f"after promotion {len(by_region)} regions acknowledged writes: {listing}"
    return Verdict("split_brain", False, reason, len(by_region), 1, "regions", details=details)
