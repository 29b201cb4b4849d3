"""FailoverOrchestrator: pre-flight, fence, promote, switch DNS, wait out the TTL, verify.

Each phase is done for real through the target and timed. Fencing, promotion and the DNS
switch are recovery actions: they go through the run's ledger as such, so healing a fault or
`drkit rollback` never undoes them (only failback or `lab reset` does).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from drkit import paths
from drkit.errors import ConfigError, DrillError
from drkit.failover.result import FailoverResult, PhaseTiming
from drkit.failover.verifier import DRVerifier
from drkit.faults.base import RecoveryAction
from drkit.faults.ledger import Ledger
from drkit.targets.base import Health


class FailoverTarget(Protocol):
    """What the orchestrator needs of a target beyond the verifier's checks."""

    def region_of_db(self, config: Any) -> str: ...

    def dns_ttl(self) -> int: ...

    def fence(self, region: str) -> RecoveryAction: ...

    def promote(self, region: str) -> RecoveryAction: ...

    def switch_dns(self, region: str) -> RecoveryAction: ...

    def verify_serving(self, region: str, budget_s: float) -> Health: ...


class PhaseFailed(DrillError):
    """A failover phase could not be completed."""


@dataclass
class _Clock:
    """Times the phases of one failover."""

    started: float = field(default_factory=time.monotonic)
    phases: list[PhaseTiming] = field(default_factory=list)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[list[str]]:
        detail: list[str] = []
        began, began_wall = time.monotonic(), datetime.now(UTC)
        try:
            yield detail
        except Exception as exc:
            self.phases.append(
                PhaseTiming(name, began_wall, time.monotonic() - began, False, str(exc))
            )
            raise
        self.phases.append(
            PhaseTiming(name, began_wall, time.monotonic() - began, True, "; ".join(detail))
        )

    def elapsed_minutes(self) -> float:
        return (time.monotonic() - self.started) / 60


class FailoverOrchestrator:
    """Runs a failover from the monitor's primary region to its DR region."""

    def __init__(
        self,
        verifier: DRVerifier,
        *,
        ledger: Ledger | None = None,
        verify_budget_s: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.verifier = verifier
        self.ledger = ledger
        self.verify_budget_s = verify_budget_s
        self._sleep = sleep
        self.last_result: FailoverResult | None = None

    @property
    def target(self) -> FailoverTarget:
        return self.verifier.target  # type: ignore[return-value]

    def execute_failover(
        self, reason: str, *, force: bool = False, mode: str | None = None, fence: bool = True
    ) -> FailoverResult:
        """`fence=False` skips fencing the old region: only for negative controls, which must
        show that without it an old primary acknowledges writes after a heal."""
        if not isinstance(reason, str) or not reason.strip():
            raise ConfigError(
                "execute_failover needs a reason, e.g. 'Hard drive failure in "
                "US-EAST-1'; it is recorded in the ledger and the report"
            )
        if self.ledger is not None:
            return self._run(reason, force, self.ledger, mode, fence)
        run_id = paths.new_run_id()
        run_dir = paths.runs_dir() / run_id
        # A ledger of recovery actions only: a failover is what a run with open faults needs,
        # so it must not be refused by them (its own state folder holds no one else's faults).
        with Ledger(
            run_dir, run_id=run_id, state_dir=run_dir / "state", handle_signals=False
        ) as ledger:
            return self._run(reason, force, ledger, mode, fence)

    def _run(
        self, reason: str, force: bool, ledger: Ledger, mode: str | None, fence: bool = True
    ) -> FailoverResult:
        clock = _Clock()
        monitor = self.verifier.monitor
        source = self.target.region_of_db(monitor.primary_config)
        destination = self.target.region_of_db(monitor.dr_config)
        errors: list[str] = []
        health: dict[str, Any] = {}
        try:
            with clock.phase("pre-flight") as note:
                health = self.verifier.run_health_checks(mode=mode)
                note.append(
                    f"{health['mode']}: "
                    + ("ready" if health["ready"] else "NOT ready: " + "; ".join(health["issues"]))
                )
                if not health["ready"] and not force:
                    raise PhaseFailed("pre-flight refused: " + "; ".join(health["issues"]))
                if not health["ready"]:
                    errors.append("forced past a failed pre-flight: " + "; ".join(health["issues"]))
            if fence:
                self._recover(clock, ledger, "fencing", lambda: self.target.fence(source))
            else:
                errors.append(f"{source} was not fenced (a negative control's choice)")
            self._recover(clock, ledger, "promotion", lambda: self.target.promote(destination))
            cached_ttl = self.target.dns_ttl()  # what resolvers cached the old answer for
            self._recover(clock, ledger, "dns switch", lambda: self.target.switch_dns(destination))
            with clock.phase("propagation wait") as note:
                ttl = max(cached_ttl, self.target.dns_ttl())
                self._sleep(ttl)  # cached answers of the old record expire after its TTL
                note.append(
                    f"waited {ttl}s: the old record's TTL {cached_ttl}s, the new one's "
                    f"{self.target.dns_ttl()}s"
                )
            with clock.phase("verification") as note:
                budget = self.verify_budget_s or max(10.0, 4 * self.target.dns_ttl())
                served = self.target.verify_serving(destination, budget)
                note.append(served.detail)
                if not served.ok:
                    raise PhaseFailed(f"verification failed: {served.detail}")
        except Exception as exc:  # a failover always returns its account, whatever broke
            errors.append(
                str(exc) if isinstance(exc, DrillError) else f"{type(exc).__name__}: {exc}"
            )
        if _fenced_but_unfinished(clock):
            errors.append(
                f"{source} remains fenced although the failover did not finish; fail back "
                "(on the lab: `drkit lab reset`)"
            )
        return self._result(reason, force, health, clock, errors, source, destination)

    def _recover(
        self, clock: _Clock, ledger: Ledger, phase: str, build: Callable[[], RecoveryAction]
    ) -> None:
        with clock.phase(phase) as note:
            action = build()
            record = ledger.apply(action)
            note.append(f"{action.describe()} (ledger record {record.id})")

    def _result(
        self,
        reason: str,
        force: bool,
        health: dict[str, Any],
        clock: _Clock,
        errors: list[str],
        source: str,
        destination: str,
    ) -> FailoverResult:
        measured = health.get("replication_lag_seconds")
        lag = float(measured) if measured is not None else math.nan  # never a made-up 0
        phases = 6 if any(p.name == "fencing" for p in clock.phases) else 5
        success = all(p.ok for p in clock.phases) and len(clock.phases) == phases
        result = FailoverResult(
            success=success,
            rto_minutes=clock.elapsed_minutes(),
            data_loss_minutes=lag / 60,
            timestamp=datetime.now(UTC),
            errors=tuple(errors),
            mode=str(health.get("mode", "unknown")),
            phases=tuple(clock.phases),
            reason=reason,
            forced=force,
            source_region=source,
            target_region=destination,
            detail={"preflight": health},
        )
        self.last_result = result
        return result


def _fenced_but_unfinished(clock: _Clock) -> bool:
    done = {p.name for p in clock.phases if p.ok}
    return "fencing" in done and "verification" not in done


def execute_failover(
    verifier_or_orchestrator: DRVerifier | FailoverOrchestrator, reason: str
) -> FailoverResult:
    """A failover in one call, from a verifier or an orchestrator."""
    orchestrator = (
        verifier_or_orchestrator
        if isinstance(verifier_or_orchestrator, FailoverOrchestrator)
        else FailoverOrchestrator(verifier_or_orchestrator)
    )
    return orchestrator.execute_failover(reason)
