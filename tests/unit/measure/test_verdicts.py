"""Verdict merging, crash-safe checkers, drill outcomes and their pytest/Allure mapping."""

from __future__ import annotations

import itertools
import random
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drkit.measure.outcome import (
    MERGE_ORDER,
    Outcome,
    allure_categories,
    failure_message,
    merge_outcomes,
    outcome_of,
    pytest_status,
)
from drkit.measure.verdict import (
    UNKNOWN,
    Validity,
    Verdict,
    checker,
    merge_validity,
    merge_verdicts,
)

pytestmark = pytest.mark.unit

validities = st.sampled_from([True, False, UNKNOWN])


def test_merging_ranks_false_above_unknown_above_true() -> None:
    assert merge_validity([True, UNKNOWN, True]) == UNKNOWN
    assert merge_validity([UNKNOWN, False, True]) is False
    assert merge_validity([True, True]) is True


def test_merging_nothing_proves_nothing() -> None:
    assert merge_validity([]) == UNKNOWN
    assert merge_verdicts([]).valid == UNKNOWN


@given(st.lists(validities, min_size=1), st.randoms())
def test_merging_validity_is_order_independent(values: list[Validity], rnd: random.Random) -> None:
    shuffled = list(values)
    rnd.shuffle(shuffled)
    assert merge_validity(shuffled) == merge_validity(values)
    assert merge_validity([merge_validity(values[:1]), merge_validity(values[1:] or [True])]) == (
        merge_validity(values)
    )


@given(st.lists(st.sampled_from(list(Outcome)), min_size=1), st.randoms())
def test_merging_outcomes_is_order_independent(outcomes: list[Outcome], rnd: random.Random) -> None:
    shuffled = list(outcomes)
    rnd.shuffle(shuffled)
    assert merge_outcomes(shuffled) == merge_outcomes(outcomes)


def test_merge_verdicts_keeps_the_reasons_of_the_worst() -> None:
    verdicts = [
        Verdict("rto", True, "fast"),
        Verdict("rpo", False, "lost d7"),
        Verdict("stale_reads", UNKNOWN, "no promotion"),
    ]
    merged = merge_verdicts(verdicts)
    assert merged.valid is False
    assert "lost d7" in merged.reason and "fast" not in merged.reason
    assert set(merged.details) == {"rto", "rpo", "stale_reads"}


def test_a_crashing_checker_yields_unknown_naming_the_error() -> None:
    @checker("boom")
    def crashing(ops: list[int]) -> Verdict:
        return Verdict("boom", True, f"{1 / len(ops)}")

    verdict = crashing([])
    assert verdict.valid == UNKNOWN
    assert "ZeroDivisionError" in verdict.reason and verdict.checker == "boom"


def test_a_verdict_refuses_a_validity_outside_the_three() -> None:
    with pytest.raises(ValueError, match="True, False or 'unknown'"):
        Verdict("x", "maybe", "?")  # type: ignore[arg-type]


def test_verdict_details_are_read_only_and_serialisable() -> None:
    verdict = Verdict("rto", True, "ok", float("inf"), 900.0, details={"phases": []})
    with pytest.raises(TypeError):
        verdict.details["phases"] = 1  # type: ignore[index]
    assert verdict.to_json()["value"] is None


def test_the_merge_order_is_the_one_in_the_design() -> None:
    expected = [
        "fail",
        "aborted",
        "interrupted",
        "unknown",
        "not_exercised",
        "inconclusive",
        "pass",
    ]
    assert [o.value for o in MERGE_ORDER] == expected
    for worse, better in itertools.pairwise(MERGE_ORDER):
        assert merge_outcomes([better, worse]) is worse


def test_merging_no_outcomes_is_unknown() -> None:
    assert merge_outcomes([]) is Outcome.UNKNOWN


def test_outcome_from_verdicts() -> None:
    assert outcome_of([Verdict("a", True, ""), Verdict("b", UNKNOWN, "")]) is Outcome.UNKNOWN
    assert outcome_of([Verdict("a", False, ""), Verdict("b", UNKNOWN, "")]) is Outcome.FAIL
    assert outcome_of([Verdict("a", True, "")]) is Outcome.PASS
    assert outcome_of([]) is Outcome.UNKNOWN


@pytest.mark.parametrize("outcome", list(Outcome))
def test_only_pass_is_a_passed_test(outcome: Outcome) -> None:
    message = failure_message(outcome, "RTO 3.2s exceeds the budget")
    if outcome is Outcome.PASS:
        assert (pytest_status(outcome), message) == ("passed", None)
    else:
        assert pytest_status(outcome) == "failed"
        assert message is not None and message.startswith(f"{outcome.value}: ")


@pytest.mark.parametrize("outcome", [o for o in Outcome if not o.passed])
def test_each_failing_outcome_lands_in_its_own_allure_category(outcome: Outcome) -> None:
    message = failure_message(outcome, "line one\nline two")
    assert message is not None
    matching = [c["name"] for c in allure_categories() if re.fullmatch(c["messageRegex"], message)]
    expected = {Outcome.FAIL: "product defect", Outcome.NOT_EXERCISED: "not exercised"}
    assert matching == [expected.get(outcome, outcome.value)]


def test_categories_cover_every_failing_outcome_once() -> None:
    names = [c["name"] for c in allure_categories()]
    findings = ["RTO breach", "RPO breach", "fault not healed", "target unreachable"]
    assert names[:4] == findings
    renamed = {"fail": "product defect", "not_exercised": "not exercised"}
    outcomes = [renamed.get(o.value, o.value) for o in Outcome if not o.passed]
    assert sorted(names[4:]) == sorted(outcomes)
    assert all(c["matchedStatuses"] for c in allure_categories())
