"""What a failover returns: success, timed phases, and figures labelled for what they are."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

PHASES = ("pre-flight", "fencing", "promotion", "dns switch", "propagation wait", "verification")


@dataclass(frozen=True)
class PhaseTiming:
    name: str
    started_at: datetime
    duration_s: float
    ok: bool
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "started_at": self.started_at.isoformat(),
            "duration_s": round(self.duration_s, 4),
            "ok": self.ok,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class FailoverResult:
    """The orchestrator's own account of a failover.

    `rto_minutes` is the orchestrator's wall time from its start to the verified write;
    `data_loss_minutes` is an estimate from the last known replication lag (labelled so):
    the drills measure the real RTO and RPO black-box from their histories.
    """

    success: bool
    rto_minutes: float
    data_loss_minutes: float
    timestamp: datetime
    errors: tuple[str, ...] = ()
    mode: str = "planned"
    phases: tuple[PhaseTiming, ...] = ()
    reason: str = ""
    forced: bool = False
    source_region: str = ""
    target_region: str = ""
    data_loss_is_estimate: bool = True
    detail: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FailoverResult:
        """The inverse of `to_dict` (the watcher reports its failover in its status file)."""
        loss = data.get("data_loss_minutes")
        return cls(
            success=bool(data["success"]),
            rto_minutes=float(data["rto_minutes"]),
            data_loss_minutes=math.nan if loss is None else float(loss),
            timestamp=datetime.fromisoformat(data["timestamp"]),
            errors=tuple(data.get("errors", ())),
            mode=str(data.get("mode", "planned")),
            phases=tuple(
                PhaseTiming(
                    p["name"],
                    datetime.fromisoformat(p["started_at"]),
                    float(p["duration_s"]),
                    bool(p["ok"]),
                    str(p.get("detail", "")),
                )
                for p in data.get("phases", ())
            ),
            reason=str(data.get("reason", "")),
            forced=bool(data.get("forced", False)),
            source_region=str(data.get("source_region", "")),
            target_region=str(data.get("target_region", "")),
            data_loss_is_estimate=bool(data.get("data_loss_is_estimate", True)),
            detail=dict(data.get("detail", {})),
        )

    def phase(self, name: str) -> PhaseTiming | None:
        return next((p for p in self.phases if p.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "success": self.success,
            "rto_minutes": self.rto_minutes,
            "data_loss_minutes": (
                self.data_loss_minutes if math.isfinite(self.data_loss_minutes) else None
            ),
            "data_loss_is_estimate": self.data_loss_is_estimate,
            "timestamp": self.timestamp.isoformat(),
            "errors": list(self.errors),
            "mode": self.mode,
            "reason": self.reason,
            "forced": self.forced,
            "source_region": self.source_region,
            "target_region": self.target_region,
            "phases": [p.to_dict() for p in self.phases],
            "detail": dict(self.detail),
        }
