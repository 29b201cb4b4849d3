"""The aws target's fidelity rule and the clock estimate's resolution, on hand-made inputs."""

from __future__ import annotations

import pytest

from drkit.aws.runtime import rpo_not_exercised
from drkit.evidence.clock import measure

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("promotion", ["rds", "aurora-global"])
@pytest.mark.parametrize("kind", ["aws.security_group_block", "aws.network_acl_isolation"])
def test_managed_replication_is_not_cut_by_network_faults(promotion: str, kind: str) -> None:
    why = rpo_not_exercised(promotion, kind)
    assert why is not None
    assert "ignores security groups and network ACLs" in why and kind in why


@pytest.mark.parametrize(
    ("promotion", "kind"),
    [
        ("self-managed", "aws.security_group_block"),  # its replication crosses the groups
        ("rds", "aws.rds_reboot"),
        ("self-managed", "aws.instance_stop"),
        ("rds", None),
    ],
)
def test_other_disasters_exercise_the_rpo(promotion: str, kind: str | None) -> None:
    assert rpo_not_exercised(promotion, kind) is None


def test_a_whole_second_clock_is_read_mid_step_with_half_a_second_more_uncertainty() -> None:
    ticks = iter([100.0, 100.2])  # the harness: before and after the request
    offset = measure(
        "date header", lambda: 100.0, samples=1, clock=lambda: next(ticks), resolution_s=1.0
    )
    assert offset.offset_s == pytest.approx(0.4)  # 100 + 0.5 - 100.1
    assert offset.uncertainty_s == pytest.approx(0.6)  # 0.1 (half the trip) + 0.5
