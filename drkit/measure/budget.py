"""The timing profile's own budget beside the regulatory objective.

budget = detection interval x threshold + promotion + DNS TTL + stated slack. A lab never
breaches the 15-minute objective, but a regression in the failover path breaches the budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from drkit.measure.history import Op
from drkit.measure.rto import Phase, measure_rto
from drkit.measure.verdict import UNKNOWN, Verdict, checker


@dataclass(frozen=True)
class Budget:
    """The profile's failover budget, in seconds."""

    detection_interval: float
    threshold: int
    promotion: float
    ttl: float
    slack: float

    @property
    def detection(self) -> float:
        return self.detection_interval * self.threshold

    @property
    def total(self) -> float:
        return self.detection + self.promotion + self.ttl + self.slack


def _measured_parts(phases: Sequence[Phase]) -> dict[str, float]:
    """Measured phases grouped as the budget's terms."""
    by_name = {p.name: p.duration for p in phases}
    return {
        "detection": by_name.get("detection", 0.0),
        "promotion": sum(by_name.get(n, 0.0) for n in ("decision", "fencing", "promotion")),
        "ttl": by_name.get("dns_switch", 0.0) + by_name.get("client_convergence", 0.0),
    }


@checker("budget")
def check_budget(
    ops: Sequence[Op], budget: Budget, *, n: int = 5, new_writer: str | None = None
) -> Verdict:
    """Measured RTO against ``budget.total``; names the terms that ran over."""
    m = measure_rto(ops, n=n, new_writer=new_writer)
    if m.rto is None:
        return Verdict(
            "budget", UNKNOWN, "RTO was not measured (see the rto verdict)", objective=budget.total
        )
    parts = _measured_parts(m.phases)
    allowed = {"detection": budget.detection, "promotion": budget.promotion, "ttl": budget.ttl}
    over = [f"{k} {parts[k]:.3f}s > {allowed[k]:g}s" for k in allowed if parts[k] > allowed[k]]
    valid = m.rto <= budget.total
    reason = (
        f"RTO {m.rto:.3f}s {'within' if valid else 'exceeds'} the profile budget "
        f"{budget.total:g}s (detection {budget.detection:g} + promotion {budget.promotion:g} "
        f"+ TTL {budget.ttl:g} + slack {budget.slack:g})"
        + (f"; over their share: {', '.join(over)}" if over else "")
    )
    details = {"budget": asdict(budget), "measured": parts, "allowed": allowed}
    return Verdict("budget", valid, reason, m.rto, budget.total, "s", m.error_bar, details)
