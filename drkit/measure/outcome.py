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


_ANY = r"[\s\S]*"
_PREFIX = r"(?:[\w.]+: )?"  # the exception's name, as Allure shows the message


def _outcome(outcome: Outcome) -> str:
    return rf"{_PREFIX}{outcome.value}: "


# What an auditor asks first. Each entry: name, description, and a pattern matched from the
# message's start; a message lands in the first category whose pattern matches, and only in
# that one (each category's regex excludes the patterns before it).
CATEGORIES: tuple[tuple[str, str, str], ...] = (
    (
        "RTO breach",
        "the measured RTO exceeded its objective or the profile's budget, or the failover "
        "did not come within the drill's wait",
        rf"{_PREFIX}fail: (?:(?:rto|budget): FAIL|When step 'the watcher fails over)",
    ),
    (
        "RPO breach",
        "acknowledged writes were lost beyond the RPO objective",
        rf"{_PREFIX}fail: rpo: FAIL",
    ),
    (
        "fault not healed",
        "a fault stayed applied after the drill: `drkit rollback` heals it",
        rf"{_ANY}(?:could not heal|fault not healed)",
    ),
    (
        "target unreachable",
        "a service of the target did not answer: nothing was proven either way",
        rf"{_ANY}(?:TargetUnreachable|target unreachable)",
    ),
    ("not exercised", DESCRIPTIONS[Outcome.NOT_EXERCISED], _outcome(Outcome.NOT_EXERCISED)),
    (
        "product defect",
        "the system under test broke a promise other than RTO and RPO (fencing, split brain, "
        "stale reads, index drift, a pre-flight, ...)",
        _outcome(Outcome.FAIL),
    ),
    *(
        (o.value, DESCRIPTIONS[o], _outcome(o))
        for o in MERGE_ORDER
        if o not in (Outcome.PASS, Outcome.FAIL, Outcome.NOT_EXERCISED)
    ),
)


def allure_categories() -> list[dict[str, Any]]:
    """``categories.json``: RTO breach, RPO breach, fault not healed, target unreachable, not
    exercised, product defect, then the other non-pass outcomes; mutually exclusive.

    Anchored at the start and open at the end, each regex means the same whether the report
    matches it whole (Allure 2, Java) or searches with it (JavaScript); ``[\\s\\S]`` spans
    newlines in both.
    """
    found = []
    for n, (name, description, pattern) in enumerate(CATEGORIES):
        excluded = "".join(f"(?!{earlier})" for _, _, earlier in CATEGORIES[:n])
        found.append(
            {
                "name": name,
                "description": description,
                "messageRegex": f"^{excluded}{pattern}{_ANY}",
                "matchedStatuses": ["failed", "broken"],
            }
        )
    return found
