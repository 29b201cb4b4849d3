"""Availability timeline, flapping and the profile budget, on hand-built histories."""

from __future__ import annotations

import pytest

from drkit.measure.availability import availability_timeline, check_availability, check_flapping
from drkit.measure.budget import Budget, check_budget
from drkit.measure.builder import HistoryBuilder

pytestmark = pytest.mark.unit

EAST, WEST = "us-east-1", "us-west-2"


def _reads(b: HistoryBuilder, regions: list[str | None], start: float = 0.0) -> HistoryBuilder:
    """One read every 0.1 s; None is a failed read."""
    for n, region in enumerate(regions):
        at = start + n * 0.1
        if region is None:
            b.read(at, result="fail")
        else:
            b.read(at, region=region)
    return b


def test_the_timeline_says_who_served_when() -> None:
    b = _reads(HistoryBuilder(latency=0.01), [EAST] * 3 + [None] * 4 + [WEST] * 3)
    timeline = availability_timeline(b.ops())
    assert [(s.region, s.ops) for s in timeline] == [(EAST, 3), (None, 4), (WEST, 3)]
    assert timeline[1].duration == pytest.approx(0.4)
    assert timeline[-1].end == pytest.approx(0.91)


def test_availability_reports_the_longest_outage_against_the_objective() -> None:
    b = _reads(HistoryBuilder(latency=0.01), [EAST, None, None, EAST, None, WEST])
    verdict = check_availability(b.ops(), objective=0.15)
    assert verdict.value == pytest.approx(0.2)
    assert verdict.valid is False
    assert "3/6 reads served" in verdict.reason
    assert check_availability(b.ops(), objective=1.0).valid is True


def test_availability_of_an_empty_history_is_unknown() -> None:
    assert check_availability(()).valid == "unknown"


def test_a_single_failover_is_one_switch() -> None:
    b = _reads(HistoryBuilder(), [EAST] * 3 + [None] + [WEST] * 3)
    verdict = check_flapping(b.ops())
    assert (verdict.valid, verdict.value) == (True, 1)


def test_flapping_between_regions_is_counted_and_fails() -> None:
    b = _reads(HistoryBuilder(), [EAST, WEST, EAST, WEST, WEST, EAST])
    verdict = check_flapping(b.ops())
    assert (verdict.valid, verdict.value) == (False, 4)
    assert "reads switched 4 times" in verdict.reason


def test_the_worst_kind_sets_the_flapping_count() -> None:
    b = _reads(HistoryBuilder(), [EAST, WEST])
    for n, region in enumerate([EAST, WEST, EAST]):
        b.write(f"d{n}", n * 0.1, region=region)
    assert check_flapping(b.ops()).value == 2


def test_flapping_without_any_success_is_unknown() -> None:
    b = _reads(HistoryBuilder(), [None, None])
    assert check_flapping(b.ops()).valid == "unknown"


LAB = Budget(detection_interval=0.5, threshold=3, promotion=0.5, ttl=1.0, slack=1.0)


def _recovery(detected: float, promoted: float, recovered: float) -> HistoryBuilder:
    b = HistoryBuilder(latency=0.0001)
    b.writes(["e0", "e1"], 0.0, 0.05, region=EAST)
    b.fault("us-east-1 down", 0.1, disaster=True)
    b.phase("detection", detected)
    b.phase("promotion", promoted)
    b.phase("dns_switch", promoted + 0.01)
    b.writes([f"w{n}" for n in range(6)], recovered, 0.05, region=WEST)
    return b


def test_budget_is_the_sum_of_its_terms() -> None:
    assert LAB.total == pytest.approx(0.5 * 3 + 0.5 + 1.0 + 1.0)


def test_a_failover_inside_the_budget_passes() -> None:
    verdict = check_budget(_recovery(1.6, 1.9, 2.5).ops(), LAB)
    assert verdict.valid is True
    assert verdict.objective == pytest.approx(4.0)


def test_a_slow_detection_breaches_the_budget_and_is_named() -> None:
    verdict = check_budget(_recovery(4.0, 4.2, 4.5).ops(), LAB)
    assert verdict.valid is False
    assert "detection 3.900s > 1.5s" in verdict.reason


def test_budget_without_a_measured_rto_is_unknown() -> None:
    b = HistoryBuilder().writes(["a"], 0.0, 0.1)
    assert check_budget(b.ops(), LAB).valid == "unknown"
