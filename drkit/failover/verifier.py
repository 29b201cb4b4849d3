"""DRVerifier: the pre-flight checks that decide whether a failover may go ahead.

A **planned** switchover (primary reachable) checks everything live. An **unplanned**
failover (primary unreachable) judges from the DR side and from the last monitor sample taken
before the failure, whose age is itself a check: replication cannot be "connected" to a lost
region.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from drkit.errors import ConfigError
from drkit.failover.monitor import ReplicationMonitor, ReplicationStatus
from drkit.targets.base import Target

FAILOVER_LAG_THRESHOLD_S = 600.0
CONSISTENCY_THRESHOLD = 0.99


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    observed: Any
    threshold: Any
    issue: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "observed": self.observed,
            "threshold": self.threshold,
        }


def _check(name: str, passed: bool, observed: Any, threshold: Any, issue: str) -> Check:
    return Check(name, passed, observed, threshold, "" if passed else issue)


class DRVerifier:
    """Runs the pre-flight checks; `run_health_checks()` returns the contract's dict."""

    def __init__(
        self,
        monitor: ReplicationMonitor,
        *,
        target: Target | None = None,
        lag_threshold_s: float = FAILOVER_LAG_THRESHOLD_S,
        consistency_threshold: float = CONSISTENCY_THRESHOLD,
        max_sample_age_s: float | None = None,
    ) -> None:
        self.monitor = monitor
        self._target = target
        self.lag_threshold_s = lag_threshold_s
        self.consistency_threshold = consistency_threshold
        profile = monitor.profile
        self.max_sample_age_s = max_sample_age_s or max(60.0, 20 * profile.health_interval_s)
        self.last_good_sample: ReplicationStatus | None = None
        self.last_sample_problem: str | None = None  # why the last sample reached no primary

    @property
    def target(self) -> Target:
        if self._target is None:
            from drkit.targets.active import active_target

            self._target = active_target()
        return self._target

    def run_health_checks(self, *, mode: str | None = None) -> dict[str, Any]:
        """Planned when the primary answers, unplanned when it does not; `mode="unplanned"`
        declares the primary lost (the watcher knows) so the check does not wait on it."""
        if mode not in (None, "planned", "unplanned"):
            raise ConfigError(f"pre-flight mode {mode!r} is not one of planned, unplanned")
        previous = self.monitor.last_status
        status = self.monitor.check_replication_lag(primary_lost=mode == "unplanned")
        if status.primary_reachable:
            self.last_good_sample = status
            mode, checks = "planned", self._planned(status)
        else:
            baseline = self._baseline(previous)
            mode, checks = "unplanned", self._unplanned(status, baseline)
        issues = [c.issue for c in checks if not c.passed]
        return {
            "ready": not issues,
            "issues": issues,
            "mode": mode,
            "replication_lag_seconds": status.lag_seconds,
            "data_consistency": finite_or_none(status.data_consistency_ratio),
            "checks": [c.to_dict() for c in checks],
            "status": status.to_dict(),
        }

    def _baseline(self, previous: ReplicationStatus | None) -> ReplicationStatus | None:
        """The last sample taken while the primary was reachable, preferring one whose
        consistency was measured: a primary that dies in the middle of a sample leaves its
        consistency unmeasured, and the sample before it still tells what the DR side holds."""
        reachable = [
            s
            for s in (previous, self.monitor.last_complete_status, self.last_good_sample)
            if s is not None and s.primary_reachable
        ]
        complete = [s for s in reachable if math.isfinite(s.data_consistency_ratio)]
        found = complete or reachable
        return found[0] if found else None

    # -- planned -------------------------------------------------------------------------
    def _planned(self, s: ReplicationStatus) -> list[Check]:
        return [
            _check(
                "replication connected",
                s.is_connected,
                s.state,
                "streaming",
                f"replication is not connected (state {s.state}); a planned switchover "
                "needs the DR database streaming from the primary",
            ),
            self._lag_check(s, "replication lag"),
            self._consistency_check(s, "data consistency"),
            *self._dr_side(s),
        ]

    # -- unplanned -----------------------------------------------------------------------
    def _unplanned(self, s: ReplicationStatus, base: ReplicationStatus | None) -> list[Check]:
        if base is None:
            sample = _check(
                "last sample before the failure",
                False,
                None,
                "a sample",
                "no replication sample was taken before the primary became "
                "unreachable, so the data the DR region holds cannot be judged"
                + (
                    f" (the samples failed: {self.last_sample_problem})"
                    if self.last_sample_problem
                    else ""
                ),
            )
            return [sample, *self._dr_side(s)]
        age = (datetime.now(UTC) - base.measured_at).total_seconds()
        return [
            _check(
                "age of the last sample",
                age <= self.max_sample_age_s,
                round(age, 1),
                self.max_sample_age_s,
                f"the last replication sample before the failure is {age:.0f}s old, over "
                f"the {self.max_sample_age_s:.0f}s limit; its lag can no longer be trusted",
            ),
            self._lag_check(base, "replication lag before the failure"),
            self._consistency_check(base, "data consistency before the failure"),
            *self._dr_side(s),
        ]

    # -- shared --------------------------------------------------------------------------
    def _lag_check(self, s: ReplicationStatus, name: str) -> Check:
        return _check(
            name,
            s.lag_seconds < self.lag_threshold_s,
            round(s.lag_seconds, 3),
            self.lag_threshold_s,
            f"{name} is {s.lag_seconds:.1f}s, over the failover threshold of "
            f"{self.lag_threshold_s:g}s",
        )

    def _consistency_check(self, s: ReplicationStatus, name: str) -> Check:
        ratio = s.data_consistency_ratio
        if math.isnan(ratio):
            why = s.detail.get("consistency", {}).get("error", "a side was unreachable")
            return _check(
                name,
                False,
                None,
                self.consistency_threshold,
                f"{name} could not be measured ({why}); it cannot be assumed",
            )
        return _check(
            name,
            ratio >= self.consistency_threshold,
            round(ratio, 6),
            self.consistency_threshold,
            f"{name} is {ratio:.2%} (missing {s.missing_count}, extra {s.extra_count}, "
            f"stale {s.stale_count}), under the {self.consistency_threshold:.0%} threshold",
        )

    def _dr_side(self, s: ReplicationStatus) -> list[Check]:
        dr_region = self.target.region_of_db(self.monitor.dr_config)
        index = self.target.index_health(dr_region)
        service = self.target.service_health(dr_region)
        in_recovery = bool(s.dr_reachable and s.dr_in_recovery)
        observed = (
            "unreachable"
            if not s.dr_reachable
            else ("in recovery" if s.dr_in_recovery else "not in recovery (already a primary)")
        )
        return [
            _check(
                "DR database reachable and in recovery",
                in_recovery,
                observed,
                "in recovery",
                f"the DR database in {dr_region} is {observed}; it must be a reachable "
                "standby to be promoted",
            ),
            _check(
                "DR index healthy",
                index.ok,
                index.detail,
                "healthy",
                f"the DR index in {dr_region} is not healthy: {index.detail}",
            ),
            _check(
                "DR service healthy",
                service.ok,
                service.detail,
                "healthy",
                f"the DR service in {dr_region} is not healthy: {service.detail}",
            ),
        ]


def finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def verify_dr_readiness(monitor: ReplicationMonitor) -> dict[str, Any]:
    """The pre-flight in one call."""
    return DRVerifier(monitor).run_health_checks()
