"""Pre-flight decisions on hand-made replication samples (the lab tests use real ones)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from drkit.config import LAB_PROFILE
from drkit.errors import ConfigError
from drkit.failover.monitor import Consistency, ReplicationMonitor, ReplicationStatus
from drkit.failover.verifier import DRVerifier
from drkit.targets.base import Health

pytestmark = pytest.mark.unit

CONFIG = {"host": "127.0.2.20", "port": 1, "database": "d", "user": "u", "password": "p"}
TAKEN_NOW = datetime(2000, 1, 1, tzinfo=UTC)  # a sample so stamped is taken when returned
GOOD = ReplicationStatus(
    lag_seconds=0.2,
    lag_bytes=10,
    is_connected=True,
    state="streaming",
    data_consistency_ratio=1.0,
    meets_rpo=True,
    measured_at=TAKEN_NOW,
    dr_in_recovery=True,
)
LOST = replace(
    GOOD, primary_reachable=False, is_connected=False, state="unknown", lag_is_lower_bound=True
)


class ScriptedMonitor(ReplicationMonitor):
    """A monitor twin that returns the samples it is given, in order."""

    def __init__(self, *samples: ReplicationStatus) -> None:
        super().__init__(CONFIG, CONFIG, profile=LAB_PROFILE)
        self.samples = list(samples)

    def check_replication_lag(self, *, primary_lost: bool = False) -> ReplicationStatus:
        self.lost_declared = primary_lost
        sample = self.samples.pop(0)
        if sample.measured_at == TAKEN_NOW:
            sample = replace(sample, measured_at=datetime.now(UTC))
        self.remember(sample)
        return sample


class TwinTarget:
    name = "twin"
    profile = LAB_PROFILE
    public_name = "rag.twin"

    def __init__(self, index_ok: bool = True, service_ok: bool = True) -> None:
        self.index_ok, self.service_ok = index_ok, service_ok

    def regions(self) -> tuple[str, ...]:
        return ("us-east-1", "us-west-2")

    def region_of_db(self, config: Mapping[str, Any]) -> str:
        return "us-west-2"

    def db_config(self, region: str) -> dict[str, Any]:
        return dict(CONFIG)

    def service_health(self, region: str) -> Health:
        return Health(self.service_ok, "200 OK" if self.service_ok else "timed out after 1s")

    def index_health(self, region: str) -> Health:
        return Health(self.index_ok, "5000 vectors" if self.index_ok else "refused")

    def consistency(self, source: str, replica: str) -> Consistency:
        return Consistency(1.0, 0)


def verify(*samples: ReplicationStatus, target: TwinTarget | None = None) -> dict[str, Any]:
    return DRVerifier(ScriptedMonitor(*samples), target=target or TwinTarget()).run_health_checks()


def test_a_healthy_planned_switchover_is_ready() -> None:
    result = verify(GOOD)
    assert result["ready"] and result["mode"] == "planned" and result["issues"] == []
    assert {c["name"] for c in result["checks"]} >= {
        "replication connected",
        "replication lag",
        "data consistency",
        "DR index healthy",
    }


@pytest.mark.parametrize(
    ("sample", "fragment"),
    [
        (
            replace(GOOD, lag_seconds=601.0),
            "replication lag is 601.0s, over the failover threshold of 600s",
        ),
        (
            replace(GOOD, is_connected=False, state="disconnected"),
            "replication is not connected (state disconnected)",
        ),
        (
            replace(GOOD, data_consistency_ratio=0.95, missing_count=250),
            "data consistency is 95.00% (missing 250",
        ),
        (replace(GOOD, dr_in_recovery=False), "not in recovery (already a primary)"),
        (replace(GOOD, dr_reachable=False), "is unreachable"),
    ],
)
def test_planned_refuses_past_each_threshold_with_a_precise_issue(
    sample: ReplicationStatus, fragment: str
) -> None:
    result = verify(sample)
    assert not result["ready"]
    assert any(fragment in issue for issue in result["issues"]), result["issues"]


def test_an_unhealthy_dr_index_or_service_refuses() -> None:
    result = verify(GOOD, target=TwinTarget(index_ok=False, service_ok=False))
    assert result["issues"] == [
        "the DR index in us-west-2 is not healthy: refused",
        "the DR service in us-west-2 is not healthy: timed out after 1s",
    ]


def test_unplanned_judges_from_the_last_sample_before_the_failure() -> None:
    verifier = DRVerifier(ScriptedMonitor(GOOD, LOST), target=TwinTarget())
    verifier.run_health_checks()
    result = verifier.run_health_checks()
    assert result["mode"] == "unplanned" and result["ready"], result["issues"]
    names = [c["name"] for c in result["checks"]]
    assert "age of the last sample" in names and "replication connected" not in names


def test_a_primary_lost_in_the_middle_of_a_sample_is_judged_from_the_sample_before() -> None:
    """The crash lands between the lag query and the consistency read: the last sample has
    the primary reachable and consistency unmeasured; the complete one before it decides."""
    cut_short = replace(GOOD, data_consistency_ratio=float("nan"))
    monitor = ScriptedMonitor(GOOD, cut_short, LOST)
    monitor.check_replication_lag()  # the watcher's own samples, before the pre-flight
    monitor.check_replication_lag()
    result = DRVerifier(monitor, target=TwinTarget()).run_health_checks(mode="unplanned")
    assert result["mode"] == "unplanned" and result["ready"], result["issues"]
    checks = {c["name"]: c for c in result["checks"]}
    assert checks["data consistency before the failure"]["observed"] == 1.0


def test_unplanned_refuses_when_no_sample_before_the_failure_measured_consistency() -> None:
    cut_short = replace(GOOD, data_consistency_ratio=float("nan"))
    monitor = ScriptedMonitor(cut_short, LOST)
    monitor.check_replication_lag()
    result = DRVerifier(monitor, target=TwinTarget()).run_health_checks(mode="unplanned")
    assert not result["ready"]
    assert "data consistency before the failure could not be measured" in result["issues"][0]


def test_unplanned_refuses_when_the_last_sample_was_already_lagging() -> None:
    verifier = DRVerifier(
        ScriptedMonitor(replace(GOOD, lag_seconds=900.0), LOST), target=TwinTarget()
    )
    verifier.run_health_checks()
    result = verifier.run_health_checks()
    assert not result["ready"]
    assert "replication lag before the failure is 900.0s" in result["issues"][0]


def test_unplanned_refuses_a_stale_sample() -> None:
    old = replace(GOOD, measured_at=datetime.now(UTC) - timedelta(minutes=30))
    verifier = DRVerifier(ScriptedMonitor(old, LOST), target=TwinTarget())
    verifier.run_health_checks()
    result = verifier.run_health_checks()
    assert not result["ready"]
    assert "is 1800s old, over the 60s limit" in result["issues"][0]


def test_unplanned_without_any_earlier_sample_cannot_judge_the_data() -> None:
    result = verify(LOST)
    assert not result["ready"]
    assert (
        "no replication sample was taken before the primary became unreachable"
        in result["issues"][0]
    )


def test_without_a_sample_the_refusal_says_why_the_samples_failed() -> None:
    """The watcher's sampler keeps why its samples reached no primary (a wrong password, say):
    the refusal names it instead of leaving the operator to the logs."""
    verifier = DRVerifier(ScriptedMonitor(LOST), target=TwinTarget())
    verifier.last_sample_problem = "TargetUnreachable: password authentication failed for user"
    (issue,) = [i for i in verifier.run_health_checks()["issues"] if "no replication" in i]
    assert issue.endswith(
        "(the samples failed: TargetUnreachable: password authentication failed for user)"
    )


def test_a_declared_unplanned_preflight_does_not_wait_on_the_primary() -> None:
    monitor = ScriptedMonitor(GOOD, LOST)
    verifier = DRVerifier(monitor, target=TwinTarget())
    verifier.run_health_checks()
    result = verifier.run_health_checks(mode="unplanned")
    assert monitor.lost_declared and result["mode"] == "unplanned" and result["ready"]


def test_an_unknown_preflight_mode_is_refused() -> None:
    with pytest.raises(
        ConfigError, match="pre-flight mode 'chaos' is not one of planned, unplanned"
    ):
        DRVerifier(ScriptedMonitor(GOOD), target=TwinTarget()).run_health_checks(mode="chaos")
