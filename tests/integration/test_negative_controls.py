"""Negative controls on the real lab, one per verdict kind: each breaks what a drill relies on
and shows the drill's own Then step fails, naming the measured value.

* watcher off: recovery waits for an operator, so the RTO breaches the timing profile's budget;
* fence off: after the heal, the old region's service acknowledges writes (split brain);
* index drift left in place: the pre-flight stays refused.

Each runs a scenario through Gherkin in a nested pytest against the session's lab.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from drkit.lab.lab import Lab
from drkit.lab.steady import fault_traces

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CONFTEST = """
from steps import STEP_MODULES

pytest_plugins = ["fixtures.plugin", "fixtures.drill", *STEP_MODULES]
"""


def run_drill(pytester: pytest.Pytester, steps: str) -> pytest.RunResult:
    pytester.makeconftest(CONFTEST)
    pytester.makefile(
        ".feature",
        control=textwrap.dedent("""\
        Feature: Negative control
          Scenario: a drill with its safeguard removed
        """)
        + textwrap.indent(textwrap.dedent(steps), "    "),
    )
    pytester.makepyfile(
        test_control='from pytest_bdd import scenarios\nscenarios("control.feature")\n'
    )
    pytester.makeini(
        f"[pytest]\naddopts = -p no:allure_pytest -p no:cacheprovider\npythonpath = {ROOT}\n"
    )
    # A subprocess: Allure's plugin manager is process-global, so nested in-process sessions
    # would share listeners. The lab and its lock come through the environment.
    return pytester.runpytest_subprocess("-q", "--alluredir", str(pytester.path / "allure"))


def assert_fails_with(result: pytest.RunResult, *fragments: str) -> None:
    """The drill failed with the measured value in its message, and kept its evidence."""
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    for fragment in fragments:
        assert fragment in output, f"{fragment!r} not in the drill's failure:\n{output[-3000:]}"
    results = [json.loads(p.read_text()) for p in Path.cwd().glob("allure/*-result.json")]
    attached = {a["name"] for r in results for a in r.get("attachments", [])}
    assert {"history.jsonl", "verdicts.json", "ledger.jsonl"} <= attached, attached


def test_with_the_watcher_off_the_rto_breaches_its_budget(
    pytester: pytest.Pytester, lab: Lab
) -> None:
    result = run_drill(
        pytester,
        """\
        Given the watcher is off
        And a writer and a probe run through the public name
        When us-east-1 is cut off by its security group
        And writes continue for 8 seconds
        And the operator forces a failover to us-west-2
        And writes continue for 3 seconds
        Then the RTO is within its objective
        And the RTO is within the timing profile's budget
        """,
    )
    assert_fails_with(result, "fail: budget: FAIL: RTO", "budget 6.5s")
    assert not fault_traces(lab)


def test_without_fencing_the_old_region_acknowledges_writes_after_the_heal(
    pytester: pytest.Pytester, lab: Lab
) -> None:
    result = run_drill(
        pytester,
        """\
        Given a writer and a probe run through the public name
        When us-east-1 is cut off by its security group
        And the operator forces a failover to us-west-2 without fencing us-east-1
        And the faults heal
        And writes are sent straight to us-east-1's service for 2 seconds
        Then no write sent straight to us-east-1 was acknowledged
        """,
    )
    assert_fails_with(
        result,
        "fail: fencing: FAIL:",
        "writes sent straight to us-east-1 were acknowledged",
        "split brain",
    )
    assert not fault_traces(lab)


def test_index_drift_left_in_place_keeps_the_preflight_refused(
    pytester: pytest.Pytester, lab: Lab
) -> None:
    result = run_drill(
        pytester,
        """\
        When 5 % of us-west-2's index vectors are missing
        And the planned pre-flight runs
        Then the pre-flight refused and named the drifted vectors
        When the planned pre-flight runs
        Then the pre-flight was ready
        """,
    )
    assert_fails_with(
        result,
        "fail: preflight_ready: FAIL: the pre-flight refused: data consistency",
        "(missing ",
    )
    assert not fault_traces(lab)
