"""Drill outcomes (DESIGN.md section 3), how they merge, and how pytest and Allure show them.

Only ``pass`` is a passed test. Every other outcome fails the test with the outcome's name
first in the message, and an Allure category of the same name matches that message, so no CI
gate goes green on a drill that did not prove its claim.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from drkit.measure.verdict import UNKNOWN, Verdict, merge_validity


class Outcome(StrEnum):
    """What a drill proved; declared from most to least severe (the merge order)."""

    FAIL = "fail"
    ABORTED = "aborted"
    INTERRUPTED = "interrupted"
    UNKNOWN = "unknown"
    NOT_EXERCISED = "not_exercised"
    INCONCLUSIVE = "inconclusive"
    PASS = "pass"

    @property
    def severity(self) -> int:
        """Higher is worse: fail is the highest, pass the lowest."""
        return len(MERGE_ORDER) - 1 - MERGE_ORDER.index(self)

    @property
    def passed(self) -> bool:
        return self is Outcome.PASS


MERGE_ORDER: tuple[Outcome, ...] = tuple(Outcome)

DESCRIPTIONS: dict[Outcome, str] = {
    Outcome.FAIL: "an objective or budget was breached",
    Outcome.ABORTED: "a stop condition or `drkit abort` ended the drill",
    Outcome.INTERRUPTED: "a signal interrupted the drill",
    Outcome.UNKNOWN: "a checker crashed or data is missing",
    Outcome.NOT_EXERCISED: "the fault did not cut what it claims",
    Outcome.INCONCLUSIVE: "a Given step failed, so the drill never reached its fault",
    Outcome.PASS: "every objective and budget was met",
}


def merge_outcomes(outcomes: Iterable[Outcome]) -> Outcome:
    """The most severe outcome; no outcomes at all is ``unknown`` (nothing was proven)."""
    items = list(outcomes)
    return max(items, key=lambda o: o.severity) if items else Outcome.UNKNOWN


def outcome_of(verdicts: Iterable[Verdict]) -> Outcome:
    """A drill outcome from checker verdicts: any False is fail, any unknown is unknown."""
    merged = merge_validity(v.valid for v in verdicts)
    if merged is False:
        return Outcome.FAIL
    return Outcome.UNKNOWN if merged == UNKNOWN else Outcome.PASS


def pytest_status(outcome: Outcome) -> str:
    """``passed`` for pass, ``failed`` for everything else."""
    return "passed" if outcome.passed else "failed"


def failure_message(outcome: Outcome, reason: str) -> str | None:
    """The pytest failure message (outcome name first), or None when the drill passed."""
    if outcome.passed:
        return None
    return f"{outcome.value}: {reason or DESCRIPTIONS[outcome]}"


def allure_categories() -> list[dict[str, Any]]:
    """``categories.json`` entries: one per non-pass outcome, matching its failure message.

    ``[\\s\\S]*`` spans newlines both in Java regexes (Allure 2) and in JavaScript (Allure 3).
    """
    return [
        {
            "name": outcome.value,
            "description": DESCRIPTIONS[outcome],
            "messageRegex": rf"^(?:[\w.]+: )?{outcome.value}: [\s\S]*",
            "matchedStatuses": ["failed", "broken"],
        }
        for outcome in MERGE_ORDER
        if not outcome.passed
    ]
