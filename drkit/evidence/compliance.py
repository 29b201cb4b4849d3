"""The quarterly business-continuity test report (FINRA Rule 4370, SEC Rule 17a-4).

With the drills' measured verdicts passed as `measurements`, those decide PASS or FAIL; without
them the orchestrator's own figures decide, and the report labels them estimates.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

from drkit.config import RPO_OBJECTIVE_SECONDS, RTO_OBJECTIVE_SECONDS
from drkit.cost import break_even
from drkit.errors import ConfigError
from drkit.failover.monitor import ReplicationStatus
from drkit.failover.result import FailoverResult
from drkit.measure.verdict import Verdict

CONSISTENCY_THRESHOLD = 0.99
RULES = (
    "FINRA Rule 4370 (business continuity plans and emergency contact information)",
    "SEC Rule 17a-4 (records to be preserved by certain exchange members, brokers and dealers)",
)


def quarter_of(day: date) -> str:
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"


def _by_checker(
    measurements: Mapping[str, Verdict] | Iterable[Verdict] | None,
) -> dict[str, Verdict]:
    if measurements is None:
        return {}
    if isinstance(measurements, Mapping):
        return dict(measurements)
    return {v.checker: v for v in measurements}


def _analysis(
    target_s: float, measured_s: float | None, passed: bool, basis: str, **extra: Any
) -> dict[str, Any]:
    target_min = target_s / 60
    measured_min = None if measured_s is None else measured_s / 60
    margin = None if measured_min is None else target_min - measured_min
    return {
        "target_minutes": round(target_min, 4),
        "measured_minutes": None if measured_min is None else round(measured_min, 4),
        "margin_minutes": None if margin is None else round(margin, 4),
        "pass": passed,
        "status": "PASS" if passed else "FAIL",
        "basis": basis,
        **extra,
    }


class ComplianceReporter:
    """Builds the quarterly report from a failover result, a replication sample and verdicts."""

    def __init__(
        self,
        rto_objective_seconds: float = RTO_OBJECTIVE_SECONDS,
        rpo_objective_seconds: float = RPO_OBJECTIVE_SECONDS,
        firm: str = "the firm",
    ) -> None:
        self.rto_s = rto_objective_seconds
        self.rpo_s = rpo_objective_seconds
        self.firm = firm

    def generate_quarterly_report(
        self,
        test_date: datetime,
        failover_result: FailoverResult,
        replication_status: ReplicationStatus,
        *,
        measurements: Mapping[str, Verdict] | Iterable[Verdict] | None = None,
    ) -> dict[str, Any]:
        if not isinstance(test_date, datetime | date):
            raise ConfigError(f"test_date {test_date!r} is not a date or datetime")
        verdicts = _by_checker(measurements)
        rto = self._rto(failover_result, verdicts.get("rto"))
        rpo = self._rpo(failover_result, verdicts.get("rpo"))
        consistency = self._consistency(replication_status)
        unproven = [
            f"{name}: {v.summary()}" for name, v in sorted(verdicts.items()) if v.valid is not True
        ]  # every measured verdict counts, not only rto/rpo
        passed = (
            failover_result.success
            and rto["pass"]
            and rpo["pass"]
            and consistency["pass"]
            and not unproven
        )
        return {
            "quarter": quarter_of(test_date),
            "test_date": test_date.isoformat(),
            "rto_analysis": rto,
            "rpo_analysis": rpo,
            "data_consistency": consistency,
            "failover": failover_result.to_dict(),
            "replication": replication_status.to_dict(),
            "measured_verdicts": {k: v.to_json() for k, v in verdicts.items()},
            "cost": break_even().to_dict(),
            "overall_result": {
                "status": "TEST PASSED" if passed else "TEST FAILED",
                "failures": _failures(failover_result, rto, rpo, consistency) + unproven,
                "forced": failover_result.forced,
                "notes": [e for e in failover_result.errors if failover_result.forced],
            },
            "compliance_statement": self._statement(test_date, passed, bool(verdicts))
            + (
                " The failover was forced past a failed pre-flight; see the notes."
                if failover_result.forced
                else ""
            ),
            "rules": list(RULES),
        }

    def _rto(self, result: FailoverResult, verdict: Verdict | None) -> dict[str, Any]:
        if verdict is not None:
            return _measured(self.rto_s, verdict)
        seconds = result.rto_minutes * 60 if result.success else None
        passed = result.success and seconds is not None and seconds < self.rto_s
        return _analysis(self.rto_s, seconds, passed, "estimate (orchestrator wall time)")

    def _rpo(self, result: FailoverResult, verdict: Verdict | None) -> dict[str, Any]:
        if verdict is not None:
            return _measured(self.rpo_s, verdict)
        seconds = result.data_loss_minutes * 60
        if not math.isfinite(seconds):
            return _analysis(self.rpo_s, None, False, "not measured (no replication sample)")
        return _analysis(
            self.rpo_s, seconds, seconds < self.rpo_s, "estimate (last known replication lag)"
        )

    def _consistency(self, status: ReplicationStatus) -> dict[str, Any]:
        ratio = status.data_consistency_ratio
        measured = math.isfinite(ratio)
        passed = measured and ratio >= CONSISTENCY_THRESHOLD
        return {
            "ratio": ratio if measured else None,
            "threshold": CONSISTENCY_THRESHOLD,
            "missing": status.missing_count,
            "extra": status.extra_count,
            "stale": status.stale_count,
            "pass": passed,
            "status": "PASS" if passed else ("FAIL" if measured else "NOT MEASURED"),
        }

    def _statement(self, test_date: date, passed: bool, measured: bool) -> str:
        basis = (
            "measured black-box by the drill harness"
            if measured
            else "reported by the failover orchestrator (estimates, not drill measurements)"
        )
        outcome = "met" if passed else "did NOT meet"
        return (
            f"On {test_date:%Y-%m-%d}, {self.firm} tested its business continuity plan as "
            f"required by FINRA Rule 4370 by failing over its trading-critical system to the DR "
            f"region. The test {outcome} the recovery time objective of {self.rto_s / 60:g} "
            f"minutes and the recovery point objective of {self.rpo_s / 60:g} minutes, with "
            f"figures {basis}. Records of the test are preserved under SEC Rule 17a-4."
        )


def _measured(target_s: float, verdict: Verdict) -> dict[str, Any]:
    """An objective's analysis from a drill's measured verdict (its value in seconds)."""
    value = float(verdict.value) if verdict.value is not None else None
    return _analysis(
        target_s,
        value,
        verdict.valid is True,
        "measured",
        verdict=verdict.valid,
        reason=verdict.reason,
        error_bar_s=verdict.error_bar,
    )


def _failures(result: FailoverResult, *analyses: dict[str, Any]) -> list[str]:
    failures = list(result.errors) if not result.success else []
    names = ("RTO", "RPO", "data consistency")
    failures += [f"{name} FAIL" for name, a in zip(names, analyses, strict=True) if not a["pass"]]
    return failures


def generate_compliance_report(
    test_date: datetime,
    failover_result: FailoverResult,
    replication_status: ReplicationStatus,
    *,
    measurements: Mapping[str, Verdict] | Iterable[Verdict] | None = None,
) -> dict[str, Any]:
    """The quarterly report in one call, with the regulatory objectives."""
    return ComplianceReporter().generate_quarterly_report(
        test_date, failover_result, replication_status, measurements=measurements
    )


def to_json(report: Mapping[str, Any]) -> str:
    return json.dumps(report, indent=2, default=str, allow_nan=False)  # NaN is not JSON


def _ratio(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.4f}"


def to_markdown(report: Mapping[str, Any]) -> str:
    lines = [
        f"# Business continuity test report, {report['quarter']}",
        "",
        f"**Result: {report['overall_result']['status']}**  (test date {report['test_date']})",
        "",
        report["compliance_statement"],
        "",
        "| objective | target (min) | measured (min) | margin (min) | basis | status |",
        "|---|---|---|---|---|---|",
    ]
    for name, key in (("RTO", "rto_analysis"), ("RPO", "rpo_analysis")):
        a = report[key]
        lines.append(
            f"| {name} | {a['target_minutes']} | {a['measured_minutes']} | "
            f"{a['margin_minutes']} | {a['basis']} | {a['status']} |"
        )
    c = report["data_consistency"]
    lines += [
        "",
        f"Data consistency: {_ratio(c['ratio'])} (threshold {c['threshold']}; "
        f"missing {c['missing']}, extra {c['extra']}, stale {c['stale']}): {c['status']}",
        "",
        "## Failover phases",
        "",
        "| phase | duration (s) | ok | detail |",
        "|---|---|---|---|",
    ]
    for phase in report["failover"]["phases"]:
        lines.append(
            f"| {phase['name']} | {phase['duration_s']} | {phase['ok']} | {phase['detail']} |"
        )
    if report["overall_result"]["failures"]:
        lines += ["", "## Failures", ""] + [f"- {f}" for f in report["overall_result"]["failures"]]
    lines += ["", "## Rules", ""] + [f"- {r}" for r in report["rules"]]
    lines += ["", f"Cost: {report['cost']['statement']}", ""]
    return "\n".join(lines)
