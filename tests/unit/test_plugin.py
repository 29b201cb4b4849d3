"""The drill plugin, black-box through pytester: options, unknown steps, tags, outcomes."""

from __future__ import annotations

import json
import textwrap

import pytest

pytestmark = pytest.mark.unit

CONFTEST = """
import pytest
from tests.unit.drill_cases import CASES

pytest_plugins = ["fixtures.plugin", "steps.lab", "steps.measure"]

@pytest.fixture
def drill():
    return CASES["healthy failover"]()
"""


def project(pytester: pytest.Pytester, steps: str, tags: str = "") -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makefile(
        ".feature",
        selftest=textwrap.dedent(f"""\
        {tags}
        Feature: plugin self-test
          Scenario: a recorded drill
            {steps}
        """),
    )
    pytester.makepyfile(
        test_selftest='from pytest_bdd import scenarios\nscenarios("selftest.feature")\n'
    )
    pytester.makeini(
        "[pytest]\naddopts = -p no:allure_pytest -p no:cacheprovider\n"
        "markers =\n    smoke: a plain tag\n"
    )


def test_an_unknown_step_names_the_closest_known_steps(pytester: pytest.Pytester) -> None:
    project(pytester, "Then the RTO is within its objectve")
    result = pytester.runpytest("-q")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*inconclusive: unknown step 'Then the RTO is within its objectve'"
            " (*selftest.feature line 3)"
            "; closest known steps: Then the RTO is within its objective*"
        ]
    )


def test_a_failing_given_step_makes_the_drill_inconclusive(pytester: pytest.Pytester) -> None:
    project(
        pytester, "Given the RTO objective is 0 minutes\n    Then the RTO is within its objective"
    )
    result = pytester.runpytest("-q")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*inconclusive: Given step 'the RTO objective is {minutes:d} minutes'"
            " failed: ConfigError: RTO objective 0 minutes: use a positive*"
        ]
    )


def test_value_tags_become_allure_labels_and_plain_tags_markers(pytester: pytest.Pytester) -> None:
    project(
        pytester,
        "Then the RTO is within its objective",
        tags="@smoke @severity:critical @owner:dba",
    )
    results = pytester.path / "allure"
    result = pytester.runpytest(
        "-q", "--strict-markers", "--alluredir", str(results), "-m", "smoke"
    )
    result.assert_outcomes(passed=1)
    [case] = [json.loads(p.read_text()) for p in results.glob("*-result.json")]
    labels = {(label["name"], label["value"]) for label in case["labels"]}
    assert {("severity", "critical"), ("owner", "dba"), ("tag", "smoke")} <= labels
    categories = json.loads((results / "categories.json").read_text())
    assert [c["name"] for c in categories][:2] == ["RTO breach", "RPO breach"]


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--dr-quarter=2026-Q5", "--dr-quarter=2026-Q5: not a quarter; write it as YYYY-Qn"),
        ("--dr-target=mars", "--dr-target=mars: unknown target; the targets are lab"),
    ],
)
def test_bad_options_are_one_clear_line(
    pytester: pytest.Pytester, option: str, message: str
) -> None:
    project(pytester, "Then the RTO is within its objective")
    result = pytester.runpytest(option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])


@pytest.mark.parametrize(
    ("message", "category"),
    [
        (
            "drkit.drill.DrillOutcomeError: fail: rto: FAIL: 120s exceeds the 60s objective",
            "RTO breach",
        ),
        ("fail: budget: FAIL: RTO 9.0s exceeds the profile budget 6.5s", "RTO breach"),
        ("fail: When step 'the watcher fails over within 30 seconds' failed: x", "RTO breach"),
        ("drkit.drill.DrillOutcomeError: fail: rpo: FAIL: 12 writes lost", "RPO breach"),
        (
            "Failed: fail: the drill left the lab unlike its start (fault not healed): x",
            "fault not healed",
        ),
        (
            "drkit.faults.ledger.RecoveryFailed: could not heal fault #3 of run r",
            "fault not healed",
        ),
        ("unknown: When step 'x' failed: TargetUnreachable: no answer", "target unreachable"),
        ("fail: fencing: FAIL: 40 of 40 writes acknowledged", "product defect"),
        ("Failed: inconclusive: unknown step 'Then x'", "inconclusive"),
        ("not_exercised: the link kept flowing", "not exercised"),
    ],
)
def test_allure_categories_match_the_message_as_allure_shows_it(
    message: str, category: str
) -> None:
    import re

    from drkit.measure.outcome import allure_categories

    categories = allure_categories()
    matched = [c["name"] for c in categories if re.fullmatch(c["messageRegex"], message)]
    searched = [c["name"] for c in categories if re.search(c["messageRegex"], message)]
    assert matched == searched == [category]  # Allure 2 matches whole, JavaScript searches


def test_random_order_is_a_seeded_permutation(pytester: pytest.Pytester) -> None:
    pytester.makeconftest('pytest_plugins = ["fixtures.plugin"]\n')
    pytester.makepyfile(test_order="\n".join(f"def test_{n}():\n    pass\n" for n in "abcdefgh"))
    pytester.makeini("[pytest]\naddopts = -p no:allure_pytest -p no:cacheprovider\n")

    def order(*args: str) -> list[str]:
        result = pytester.runpytest("--collect-only", "-q", *args)
        return [line.split("::")[1] for line in result.outlines if "::test_" in line]

    default = order()
    first, again, other = (order("--dr-random-order", s) for s in ("7", "7", "8"))
    assert default == [f"test_{n}" for n in "abcdefgh"]
    assert sorted(first) == default and first == again
    assert first != default and other != first
