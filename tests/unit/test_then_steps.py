"""Every Then step can fail: each is driven through Gherkin with a violating history.

The scenario runs in a nested pytest (pytester) with the real step modules, against a drill
twin that holds a hand-built history instead of a lab; the failure message must carry the
outcome, the measured value and the objective.
"""

from __future__ import annotations

import textwrap

import pytest

from steps.registry import STEPS

pytestmark = pytest.mark.unit

CONFTEST = """
import pytest
from tests.unit.drill_cases import CASES

from steps import STEP_MODULES

pytest_plugins = ["fixtures.plugin", *STEP_MODULES]

@pytest.fixture
def drill():
    return CASES[{case!r}]()
"""

# Then step pattern -> (Gherkin lines, violating case, expected message fragments)
VIOLATIONS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "the RPO is reported as a breach of about the cut's length on {region}": (
        "Given the RPO objective is 5 seconds\n"
        "    Then the RPO is reported as a breach of about the cut's length on us-west-2",
        "link cut 40 s, nothing lost",
        ("fail: rpo_breach_detected: FAIL: RPO 0.000s with 0 lost", "the cut lasted 40.000s"),
    ),
    "the RTO is within its objective": (
        "Given the RTO objective is 1 minutes\n    Then the RTO is within its objective",
        "slow recovery",
        ("fail: rto: FAIL: first lasting write on us-west-2 120.010s", "exceeds the 60s objective"),
    ),
    "the RTO is within the timing profile's budget": (
        "Then the RTO is within the timing profile's budget",
        "recovery over budget",
        ("fail: budget: FAIL: RTO 10.010s", "budget 6.5s"),
    ),
    "the RPO measured on {region} is within its objective": (
        "Given the RPO objective is 1 minutes\n"
        "    Then the RPO measured on us-west-2 is within its objective",
        "writes lost for 90 s",
        ("fail: rpo: FAIL: RPO 89.990s", "exceeds the 60s objective", "180 of 240 acknowledged"),
    ),
    "the replication lag rose above the alarm threshold": (
        "Then the replication lag rose above the alarm threshold",
        "lag peaks at 3 s",
        ("fail: lag_rose: FAIL: replication lag peaked at 3.00s", "never rose above the 5s"),
    ),
    "the replication lag alarm fired": (
        "Then the replication lag alarm fired",
        "alarm stays OK",
        ("fail: lag_alarm: FAIL: the replication lag alarm never fired in 11 samples",),
    ),
    "the replication lag fell back below {seconds:d} seconds": (
        "Then the replication lag fell back below 2 seconds",
        "lag stays after the heal",
        ("fail: lag_recovered: FAIL: lag still 4.00s", "it must fall below 2s"),
    ),
    "the pre-flight refused because of {reason}": (
        "Then the pre-flight refused because of replication lag",
        "pre-flight ready during the lag",
        ("fail: preflight_refused: FAIL: the pre-flight was ready; it must refuse on replication",),
    ),
    "the pre-flight was ready": (
        "Then the pre-flight was ready",
        "lag stays after the heal",
        ("fail: preflight_ready: FAIL: the pre-flight refused: replication lag is 8.6s",),
    ),
    "the pre-flight refused and named the drifted vectors": (
        "Then the pre-flight refused and named the drifted vectors",
        "drift miscounted",
        (
            "fail: drift_named: FAIL: the pre-flight refused; it reported 20 missing vectors "
            "against 25 drifted",
            "do not name 'missing 25'",
        ),
    ),
    "no write sent straight to {region} was acknowledged": (
        "Then no write sent straight to us-east-1 was acknowledged",
        "old region acknowledges direct writes",
        (
            "fail: fencing: FAIL: 40 of 40 writes sent straight to us-east-1 were acknowledged",
            "split brain",
        ),
    ),
    "no acknowledged write exists outside {region}'s database": (
        "Then no acknowledged write exists outside us-west-2's database",
        "old region acknowledges direct writes",
        ("fail: writes_outside_primary: FAIL: 40 of", "40 only in us-east-1"),
    ),
    "no acknowledged write was lost on {region}": (
        "Then no acknowledged write was lost on us-west-2",
        "writes lost for 90 s",
        ("fail: lost_writes: FAIL: 180 of 240 acknowledged writes are missing from us-west-2",),
    ),
    "the watcher rode out every blip shorter than its detection window": (
        "Then the watcher rode out every blip shorter than its detection window",
        "a blip past the window",
        (
            "fail: blips_ridden_out: FAIL: 2 blips, longest 2.00s against the 1.5s detection",
            "the watcher failed over (failed_over)",
        ),
    ),
    "the standby was reported as needing a rebuild": (
        "Then the standby was reported as needing a rebuild",
        "slot kept, standby caught up",
        (
            "fail: rebuild_needed: FAIL: slot standby_us_west_2 is reserved, 29 of 30 samples",
            "no rebuild is needed",
        ),
    ),
    "the standby caught up within {seconds:d} seconds": (
        "Then the standby caught up within 10 seconds",
        "standby slow to catch up",
        ("fail: caught_up: FAIL: the standby caught up 14.99s after the heal (bound 10s)",),
    ),
    "reads reached {old} for at most the TTL plus {slack:d} seconds after the DNS switch": (
        "Then reads reached us-east-1 for at most the TTL plus 1 seconds after the DNS switch",
        "old answers outlive the TTL",
        (
            "fail: dns_stale_reads: FAIL: us-east-1 answered reads for 7.93s after the DNS switch",
            "(TTL 5s + slack 1s = 6s; 3 clients)",
        ),
    ),
    "every read after the TTL plus {slack:d} seconds was answered by {new}": (
        "Then every read after the TTL plus 1 seconds was answered by us-west-2",
        "a straggler after the TTL",
        (
            "fail: dns_converged: FAIL: 119 of 120 reads after TTL + slack were answered by",
            "others by ['us-east-1']",
        ),
    ),
    "the export held every acknowledged write {new} lacked": (
        "Then the export held every acknowledged write us-west-2 lacked",
        "export incomplete, index drifted",
        (
            "fail: orphans_exported: FAIL: 40 rows only the old primary held were exported",
            "30 acknowledged writes were missing from the new primary, 3 of them not in the export",
        ),
    ),
    "the compared databases and indexes held the same ids and content hashes": (
        "Then the compared databases and indexes held the same ids and content hashes",
        "export incomplete, index drifted",
        (
            "fail: regions_agree: FAIL: 1 of 2 pairs agree",
            "us-east-1 database vs us-east-1 index: missing 12, extra 0, stale 0",
        ),
    ),
    "the delete had reached the standby": (
        "Then the delete had reached the standby",
        "delete not replicated, restore short",
        (
            "fail: delete_replicated: FAIL: us-west-2 holds 500 documents after the delete of 50; "
            "450 expected",
        ),
    ),
    "the restored cluster held every document of the snapshot": (
        "Then the restored cluster held every document of the snapshot",
        "delete not replicated, restore short",
        (
            "fail: restore: FAIL: restored in 3.20s: 490 documents, 40 of 50 deleted ones",
            "missing 10, extra 0, stale 0",
        ),
    ),
    "the test query was answered by {region}": (
        "Then the test query was answered by us-west-2",
        "quarterly test gone wrong",
        ("fail: test_query: FAIL: the test query was answered by us-east-1 in 30.0 ms",),
    ),
    "query latency stayed within {factor:d} times the baseline p95": (
        "Then query latency stayed within 20 times the baseline p95",
        "quarterly test gone wrong",
        (
            "fail: latency: FAIL: query p95 2000.0 ms (p50 1000.0 ms) after the failover against "
            "the baseline p95 40.0 ms (p50 20.0 ms) x 20 = 800.0 ms",
        ),
    ),
    "the compliance report states the measured RTO and RPO": (
        "Then the compliance report states the measured RTO and RPO",
        "quarterly test gone wrong",
        (
            "fail: report: FAIL: the 2026-Q4 report (TEST PASSED) it states the RTO as 0.5 min "
            "(measured), the drill measured 0.0335 min",
        ),
    ),
    "every read after the promotion saw the writes acknowledged before it": (
        "Then every read after the promotion saw the writes acknowledged before it",
        "reads go wrong after the promotion",
        ("fail: read_your_writes: FAIL: 1 of", "did not see writes acknowledged before it"),
    ),
    "no read after the promotion was stale": (
        "Then no read after the promotion was stale",
        "reads go wrong after the promotion",
        ("fail: stale_reads: FAIL:", "answered by the demoted region us-east-1"),
    ),
    "errors stopped within {seconds:d} seconds of the new primary's first answer": (
        "Then errors stopped within 3 seconds of the new primary's first answer",
        "reads go wrong after the promotion",
        (
            "fail: error_tail: FAIL: after the new primary's first answer, 9 operations failed",
            "(bound 3s)",
        ),
    ),
}


def run_scenario(pytester: pytest.Pytester, steps: str, case: str) -> pytest.RunResult:
    pytester.makeconftest(CONFTEST.format(case=case))
    pytester.makefile(
        ".feature",
        selftest=textwrap.dedent(f"""\
        Feature: Then-step self-test
          Scenario: a recorded drill
            {steps}
        """),
    )
    pytester.makepyfile(
        test_selftest='from pytest_bdd import scenarios\nscenarios("selftest.feature")\n'
    )
    pytester.makeini("[pytest]\naddopts = -p no:allure_pytest -p no:cacheprovider\n")
    return pytester.runpytest("-q", "--alluredir", str(pytester.path / "allure"))


@pytest.mark.parametrize("pattern", sorted(VIOLATIONS))
def test_a_then_step_fails_on_a_violating_history(pytester: pytest.Pytester, pattern: str) -> None:
    steps, case, fragments = VIOLATIONS[pattern]
    result = run_scenario(pytester, steps, case)
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    for fragment in fragments:
        assert fragment in output, f"{fragment!r} not in the failure of '{pattern}'"


PASSING = {
    "the RPO is reported as a breach of about the cut's length on {region}": (
        "link cut 40 s, writes since lost"
    ),
    "the replication lag rose above the alarm threshold": "lag rises and drains",
    "the replication lag alarm fired": "lag rises and drains",
    "the replication lag fell back below {seconds:d} seconds": "lag rises and drains",
    "the pre-flight refused because of {reason}": "lag stays after the heal",
    "the pre-flight was ready": "lag rises and drains",
    "the pre-flight refused and named the drifted vectors": "drift named",
    "no write sent straight to {region} was acknowledged": "fenced old region",
    "no acknowledged write exists outside {region}'s database": "fenced old region",
    "the watcher rode out every blip shorter than its detection window": "short blips",
    "the standby was reported as needing a rebuild": "slot lost, standby stuck",
    "the standby caught up within {seconds:d} seconds": "slot kept, standby caught up",
    "reads reached {old} for at most the TTL plus {slack:d} seconds after the DNS switch": (
        "clients converge within the TTL"
    ),
    "every read after the TTL plus {slack:d} seconds was answered by {new}": (
        "clients converge within the TTL"
    ),
    "the export held every acknowledged write {new} lacked": "export complete, regions agree",
    "the compared databases and indexes held the same ids and content hashes": (
        "export complete, regions agree"
    ),
    "the delete had reached the standby": "delete replicated, restore whole",
    "the restored cluster held every document of the snapshot": "delete replicated, restore whole",
    "the test query was answered by {region}": "quarterly test in order",
    "query latency stayed within {factor:d} times the baseline p95": "quarterly test in order",
    "the compliance report states the measured RTO and RPO": "quarterly test in order",
    "every read after the promotion saw the writes acknowledged before it": (
        "reads hold after the promotion"
    ),
    "no read after the promotion was stale": "reads hold after the promotion",
    "errors stopped within {seconds:d} seconds of the new primary's first answer": (
        "reads hold after the promotion"
    ),
}


@pytest.mark.parametrize("pattern", sorted(VIOLATIONS))
def test_the_same_then_step_passes_on_a_healthy_history(
    pytester: pytest.Pytester, pattern: str
) -> None:
    steps, _, _ = VIOLATIONS[pattern]
    healthy = PASSING.get(pattern, "healthy failover")
    result = run_scenario(pytester, steps.replace("1 minutes", "15 minutes"), healthy)
    result.assert_outcomes(passed=1)


def test_every_registered_then_step_has_a_violating_case() -> None:
    from steps.__main__ import load_all

    load_all()

    registered = {s.pattern for s in STEPS if s.keyword == "Then"}
    missing = sorted(registered - set(VIOLATIONS))
    assert not missing, f"Then steps without a violating-history self-test: {missing}"
