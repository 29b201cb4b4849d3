"""The rules a drill supports, linked from its report entry and listed in the compliance report.

Every drill tests the business-continuity plan (FINRA Rule 4370); the drills that measure lost
or restored records also support SEC Rule 17a-4's preservation of records.
"""

from __future__ import annotations

from collections.abc import Iterable

FINRA_4370 = (
    "FINRA Rule 4370",
    "https://www.finra.org/rules-guidance/rulebooks/finra-rules/4370",
)
SEC_17A_4 = (
    "SEC Rule 17a-4",
    "https://www.ecfr.gov/current/title-17/chapter-II/part-240/section-240.17a-4",
)
RECORD_TAGS = frozenset(
    {
        "region_outage",
        "rpo_breach",
        "planned_switchover",
        "failback",
        "point_in_time_restore",
        "split_brain",
        "finra_quarterly",
    }
)


def rules_for(tags: Iterable[str]) -> list[tuple[str, str]]:
    """(name, URL) of each rule a drill with these Gherkin tags supports."""
    found = [FINRA_4370]
    if RECORD_TAGS & set(tags):
        found.append(SEC_17A_4)
    return found
