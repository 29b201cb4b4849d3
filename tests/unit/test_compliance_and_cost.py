"""The quarterly report's PASS/FAIL boundaries, its quarter, its exports, and the break-even."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from drkit.cost import CostInputs, break_even
from drkit.errors import ConfigError
from drkit.evidence.compliance import ComplianceReporter, quarter_of, to_json, to_markdown
from drkit.failover.monitor import ReplicationStatus
from drkit.failover.result import FailoverResult
from drkit.measure.verdict import Verdict

pytestmark = pytest.mark.unit

WHEN = datetime(2024, 12, 15, 14, 0)


def result(rto_min: float = 2.0, loss_min: float = 0.0, success: bool = True) -> FailoverResult:
    return FailoverResult(
        success,
        rto_min,
        loss_min,
        datetime.now(UTC),
        errors=() if success else ("promotion failed",),
    )


def status(ratio: float = 1.0) -> ReplicationStatus:
    return ReplicationStatus(0.0, 0, True, "streaming", ratio, True, datetime.now(UTC))


def report(**kw: object) -> dict:  # type: ignore[type-arg]
    measurements = kw.pop("measurements", None)
    return ComplianceReporter().generate_quarterly_report(
        test_date=WHEN,
        failover_result=kw.pop("failover", result()),  # type: ignore[arg-type]
        replication_status=kw.pop("status", status()),
        measurements=measurements,  # type: ignore[arg-type]
    )


def test_the_quarter_of_a_date() -> None:
    assert quarter_of(WHEN) == "2024-Q4"
    assert [quarter_of(datetime(2025, m, 1)) for m in (1, 3, 4, 7, 10)] == [
        "2025-Q1",
        "2025-Q1",
        "2025-Q2",
        "2025-Q3",
        "2025-Q4",
    ]


def test_a_failover_within_objectives_passes_with_estimates_labelled() -> None:
    r = report()
    assert r["quarter"] == "2024-Q4"
    assert r["rto_analysis"]["status"] == "PASS" and r["rto_analysis"]["margin_minutes"] == 13.0
    assert r["rpo_analysis"]["basis"].startswith("estimate")
    assert r["overall_result"]["status"] == "TEST PASSED"
    assert "FINRA Rule 4370" in r["compliance_statement"]
    assert "estimates" in r["compliance_statement"]


@pytest.mark.parametrize(("rto", "ok"), [(14.99, True), (15.0, False), (15.01, False)])
def test_the_rto_boundary(rto: float, ok: bool) -> None:
    r = report(failover=result(rto_min=rto))
    assert r["rto_analysis"]["pass"] is ok
    assert r["overall_result"]["status"] == ("TEST PASSED" if ok else "TEST FAILED")


@pytest.mark.parametrize(("loss", "ok"), [(59.9, True), (60.0, False)])
def test_the_rpo_boundary(loss: float, ok: bool) -> None:
    assert report(failover=result(loss_min=loss))["rpo_analysis"]["pass"] is ok


def test_consistency_below_99_percent_fails_the_test() -> None:
    r = report(status=status(0.985))
    assert r["data_consistency"]["status"] == "FAIL"
    assert r["overall_result"]["status"] == "TEST FAILED"
    assert "data consistency FAIL" in r["overall_result"]["failures"]


def test_a_failed_failover_fails_the_test_even_with_good_figures() -> None:
    r = report(failover=result(success=False))
    assert r["overall_result"]["status"] == "TEST FAILED"
    assert "promotion failed" in r["overall_result"]["failures"]


def test_measured_verdicts_decide_over_the_orchestrators_figures() -> None:
    breach = Verdict("rpo", False, "lost 12 acknowledged writes", value=75 * 60.0, objective=3600)
    good = Verdict("rto", True, "recovered", value=3.2, objective=900, error_bar=0.05)
    r = report(measurements=[breach, good])
    assert r["rpo_analysis"]["basis"] == "measured" and r["rpo_analysis"]["status"] == "FAIL"
    assert r["rpo_analysis"]["measured_minutes"] == 75.0
    assert r["rto_analysis"]["measured_minutes"] == pytest.approx(3.2 / 60, abs=1e-4)
    assert r["overall_result"]["status"] == "TEST FAILED"
    assert "measured black-box" in r["compliance_statement"]


def test_an_unknown_measurement_is_not_a_pass() -> None:
    r = report(measurements={"rto": Verdict("rto", "unknown", "history truncated")})
    assert r["rto_analysis"]["status"] == "FAIL" and r["rto_analysis"]["verdict"] == "unknown"


def test_exports() -> None:
    r = report()
    assert json.loads(to_json(r))["quarter"] == "2024-Q4"
    md = to_markdown(r)
    assert md.startswith("# Business continuity test report, 2024-Q4")
    assert "| RTO | 15.0 | 2.0 | 13.0 |" in md


def test_the_default_break_even_is_four_years() -> None:
    assert break_even().break_even_years == 4.0
    assert break_even(CostInputs(monthly_dr_cost=500_000)).break_even_years == 2.0


def test_a_nonpositive_cost_input_is_refused() -> None:
    with pytest.raises(ConfigError, match="outage_hours=0 must be a positive number"):
        CostInputs(outage_hours=0)


def test_a_bad_test_date_is_refused() -> None:
    with pytest.raises(ConfigError, match="test_date"):
        ComplianceReporter().generate_quarterly_report("2024-12-15", result(), status())  # type: ignore[arg-type]


def test_unmeasured_figures_are_reported_as_not_measured_never_as_numbers() -> None:
    import math

    r = report(failover=result(loss_min=math.nan), status=status(math.nan))
    assert r["rpo_analysis"]["measured_minutes"] is None and r["rpo_analysis"]["pass"] is False
    assert (
        r["data_consistency"]["status"] == "NOT MEASURED" and r["data_consistency"]["ratio"] is None
    )
    assert r["overall_result"]["status"] == "TEST FAILED"
    strict = json.loads(to_json(r), parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
    assert strict["data_consistency"]["ratio"] is None
    assert "Data consistency: not measured" in to_markdown(r)


def test_any_measured_verdict_that_is_not_a_pass_fails_the_test() -> None:
    rto = Verdict("rto", True, "recovered", value=3.0, objective=900)
    rpo = Verdict("rpo", True, "no loss", value=0.0, objective=3600)
    split = Verdict("split_brain", False, "2 writes acknowledged by the fenced region")
    r = report(measurements=[rto, rpo, split])
    assert r["overall_result"]["status"] == "TEST FAILED"
    assert any(
        f.startswith("split_brain: split_brain: FAIL") for f in r["overall_result"]["failures"]
    )


def test_a_forced_failover_is_stated() -> None:
    forced = FailoverResult(
        True,
        2.0,
        0.0,
        datetime.now(UTC),
        forced=True,
        errors=("forced past a failed pre-flight: lag 900s",),
    )
    r = report(failover=forced)
    assert r["overall_result"]["forced"] is True
    assert r["overall_result"]["notes"] == ["forced past a failed pre-flight: lag 900s"]
    assert "forced past a failed pre-flight" in r["compliance_statement"]
