"""Reads after promotion: read-your-writes, and stale reads (old region or going back in time).

A read declares in its invocation the ids it expects (writes acknowledged before it began) and
returns the ids it saw. After promotion, a read must see every write acknowledged since the
promotion (read-your-writes), must not be answered by the demoted region, and must not lose
an id that an earlier, already completed read had seen (stale).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from drkit.measure.history import Op
from drkit.measure.ops import (
    Pair,
    completed_in_order,
    of_kind,
    pair_ops,
    primary_before,
    promotion_time,
    value_field,
)
from drkit.measure.verdict import UNKNOWN, Verdict, checker


@dataclass(frozen=True)
class ReadAnomaly:
    """One read that broke the rule: which op, where it was answered, what was missing."""

    index: int
    mono: float
    region: str | None
    missing: tuple[str, ...]
    why: str


def _ids(value: object, key: str) -> set[str]:
    found = value_field(value, key)
    return {str(i) for i in found} if isinstance(found, list | tuple) else set()


def _ack_times(pairs: Sequence[Pair]) -> dict[str, float]:
    return {
        str(value_field(p.invoke.value, "id")): p.completion.mono
        for p in of_kind(pairs, "write")
        if p.type == "ok" and p.completion is not None
    }


@checker("read_your_writes")
def check_read_your_writes(ops: Sequence[Op], *, since: float | None = None) -> Verdict:
    """Every read after promotion sees the writes acknowledged (after promotion) before it."""
    start = since if since is not None else promotion_time(ops)
    scope = "since promotion" if start is not None else "over the whole history (no promotion)"
    start = start if start is not None else float("-inf")
    pairs = pair_ops(ops)
    acks = _ack_times(pairs)
    checked, anomalies = 0, []
    for read in _ok_reads(pairs, start):
        expected = _expected(read, acks, start)
        checked += bool(expected)
        missing = expected - _ids(_done(read).value, "ids")
        if missing:
            anomalies.append(_anomaly(read, missing, "did not see writes acknowledged before it"))
    return _verdict("read_your_writes", checked, anomalies, scope)


def _expected(read: Pair, acks: dict[str, float], start: float) -> set[str]:
    """Ids the read asked for that were acknowledged after ``start`` and before it began."""
    asked = _ids(read.invoke.value, "expect")
    return {i for i in asked if i in acks and start <= acks[i] <= read.invoke.mono}


def _ok_reads(pairs: Sequence[Pair], start: float) -> list[Pair]:
    return [p for p in of_kind(pairs, "read") if p.type == "ok" and p.invoke.mono >= start]


def _done(pair: Pair) -> Op:
    assert pair.completion is not None
    return pair.completion


def _anomaly(read: Pair, missing: set[str], why: str) -> ReadAnomaly:
    done = _done(read)
    return ReadAnomaly(done.index, done.mono, done.region, tuple(sorted(missing)), why)


@checker("stale_reads")
def check_stale_reads(
    ops: Sequence[Op], *, since: float | None = None, old_primary: str | None = None
) -> Verdict:
    """No read after promotion comes from the demoted region or loses an id already seen."""
    start = since if since is not None else promotion_time(ops)
    if start is None:
        return Verdict("stale_reads", UNKNOWN, _NO_PROMOTION)
    pairs = pair_ops(ops)
    demoted = old_primary or primary_before(pairs, start)
    reads = _ok_reads(pairs, start)
    seen_at = _first_seen(reads)
    anomalies = [a for r in reads if (a := _stale(r, demoted, seen_at)) is not None]
    return _verdict("stale_reads", len(reads), anomalies, f"since promotion (demoted: {demoted})")


_NO_PROMOTION = (
    "no promotion mark in the history, so 'after promotion' has no start; record it with "
    "history.recovery('promotion') or pass since="
)


def _first_seen(reads: Sequence[Pair]) -> dict[str, float]:
    """For each id, when one of ``reads`` first returned it.

    Only reads after promotion count: an id seen on the old primary and missing after the
    failover was lost with it, which the RPO checker reports, not a stale read.
    """
    seen: dict[str, float] = {}
    for read in completed_in_order(reads):
        for doc in _ids(_done(read).value, "ids"):
            seen.setdefault(doc, _done(read).mono)
    return seen


def _stale(read: Pair, demoted: str | None, seen_at: dict[str, float]) -> ReadAnomaly | None:
    if demoted is not None and _done(read).region == demoted:
        return _anomaly(read, set(), f"answered by the demoted region {demoted}")
    asked = _ids(read.invoke.value, "expect")
    before = {i for i in asked if seen_at.get(i, float("inf")) < read.invoke.mono}
    missing = before - _ids(_done(read).value, "ids")
    return _anomaly(read, missing, "lost ids an earlier read had seen") if missing else None


def _verdict(name: str, checked: int, anomalies: Sequence[ReadAnomaly], scope: str) -> Verdict:
    details = {"checked": checked, "anomalies": [a.__dict__ for a in anomalies[:100]]}
    if anomalies:
        first = anomalies[0]
        reason = (
            f"{len(anomalies)} of {checked} reads {scope} broke the rule; first: op "
            f"{first.index} from {first.region} {first.why} {list(first.missing)[:5]}"
        )
        return Verdict(name, False, reason, len(anomalies), 0, "reads", details=details)
    if checked == 0:
        reason = f"no read {scope} could be checked (none expected a write), so nothing was shown"
        return Verdict(name, UNKNOWN, reason, 0, 0, "reads", details=details)
    return Verdict(name, True, f"all {checked} reads {scope} held", 0, 0, "reads", details=details)
