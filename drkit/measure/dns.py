"""DNS convergence after a record switch, judged from the clients' reads.

Clients resolve the public name through their own TTL-honouring caches, so after the switch
some keep reaching the old region until their cached answer expires. The verdicts: the last
read the old region answered came at most TTL + slack after the switch (and at least half the
TTL after it, or no cache was exercised), and afterwards every client reads from the new region.
"""

from __future__ import annotations

from collections.abc import Sequence

from drkit.measure.history import Op
from drkit.measure.observations import observations
from drkit.measure.ops import of_kind, pair_ops, phase_marks, value_field
from drkit.measure.verdict import Verdict

TTL = "dns ttl"


def _switch(ops: Sequence[Op]) -> float | None:
    marks = phase_marks(ops, after=float("-inf"))
    mark = marks.get("dns_switch")
    return mark.mono if mark is not None else None


def _reads(ops: Sequence[Op]) -> list[tuple[float, str | None]]:
    """(completion time, answering region) of every successful read."""
    return [
        (p.completion.mono, p.completion.region)
        for p in of_kind(pair_ops(ops), "read")
        if p.type == "ok" and p.completion is not None
    ]


def stale_window(ops: Sequence[Op], old: str) -> tuple[float | None, float | None]:
    """(switch time, seconds from the switch to the last read `old` answered after it)."""
    switch = _switch(ops)
    if switch is None:
        return None, None
    stale = [t for t, region in _reads(ops) if region == old and t > switch]
    return switch, (max(stale) - switch if stale else 0.0)


def check_stale_reads_bounded(ops: Sequence[Op], old: str, slack_s: float) -> Verdict:
    """Reads still reached `old` after the switch for at most the record's TTL + slack."""
    ttls = observations(ops, TTL)
    switch, window = stale_window(ops, old)
    if switch is None or window is None:
        return Verdict("dns_stale_reads", False, "no DNS switch is marked in the history")
    if not ttls:
        return Verdict("dns_stale_reads", False, "the record's TTL was not recorded")
    ttl = float(value_field(ttls[-1].value, "ttl_s"))
    bound = ttl + slack_s
    clients = {p.invoke.process.rsplit("-", 1)[0] for p in of_kind(pair_ops(ops), "read")}
    valid = ttl / 2 <= window <= bound
    hollow = "" if window >= ttl / 2 else "; under half the TTL: no client held a cached answer"
    return Verdict(
        "dns_stale_reads",
        valid,
        f"{old} answered reads for {window:.2f}s after the DNS switch (TTL {ttl:g}s + slack "
        f"{slack_s:g}s = {bound:g}s; {len(clients)} clients){hollow}",
        round(window, 3),
        bound,
    )


def check_converged(ops: Sequence[Op], new: str, slack_s: float) -> Verdict:
    """Once TTL + slack has passed since the switch, every read was answered by `new`."""
    ttls = observations(ops, TTL)
    switch = _switch(ops)
    if switch is None or not ttls:
        return Verdict("dns_converged", False, "no DNS switch or no TTL in the history")
    settled = switch + float(value_field(ttls[-1].value, "ttl_s")) + slack_s
    after = [(t, region) for t, region in _reads(ops) if t > settled]
    elsewhere = [region for _, region in after if region != new]
    if not after:
        return Verdict(
            "dns_converged", False, "no read completed after TTL + slack; nothing to judge"
        )
    valid = not elsewhere
    return Verdict(
        "dns_converged",
        valid,
        f"{len(after) - len(elsewhere)} of {len(after)} reads after TTL + slack were answered "
        f"by {new}" + (f"; others by {sorted(set(map(str, elsewhere)))}" if elsewhere else ""),
        len(elsewhere),
        0,
        "reads",
    )
