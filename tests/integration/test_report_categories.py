"""drkit's findings categories, as the real Allure 3 sorts failed drills into them.

Allure results are written by hand, one per kind of finding, each failing with the message a
drill fails with (an RTO breach, a heal failure, ...); the categories come from
drkit.evidence.allure_files as a drill run writes them. The report is rendered with Allure 3
(reports/node_modules) and its categories widget read back. Needs Node.js, not the lab.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drkit.evidence import allure_files
from drkit.evidence.html import ReportToolMissing, render_report

pytestmark = pytest.mark.integration

RUN = "20261126T105748Z-506c"
# result -> (status, the failure message as allure-pytest-bdd records it, its category)
FINDINGS: dict[str, tuple[str, str | None, str | None]] = {
    "forced RTO breach": (
        "failed",
        "drkit.drill.DrillOutcomeError: fail: budget: FAIL: RTO 9.0s exceeds the profile budget "
        "6.5s (detection 1.5 + promotion 2 + TTL 1 + slack 2); over their share: detection "
        "4.512s > 1.5s",
        "RTO breach",
    ),
    "watcher never failed over": (
        "failed",
        "drkit.drill.DrillOutcomeError: fail: When step 'the watcher fails over within "
        "{seconds:d} seconds' failed: TimeoutError: no promotion within 30 s",
        "RTO breach",
    ),
    "forced heal failure": (
        "broken",
        f"drkit.faults.ledger.RecoveryFailed: could not heal fault #2 (lab.toxic) of run {RUN}: "
        "verify_healed() reads it back as still applied. Still applied: latency 500 ms on the "
        "us-east-1 -> us-west-2 replication link. Its record stays open in "
        f"reports/runs/{RUN}/ledger.jsonl; fix the cause and run `drkit rollback`, or remove "
        "the fault by hand",
        "fault not healed",
    ),
    "acknowledged writes lost": (
        "failed",
        "drkit.drill.DrillOutcomeError: fail: rpo: FAIL: RPO 4.212s (+-0.050s) exceeds the 1s "
        "objective: 84 of 612 acknowledged writes lost (w-000529, w-000530, ... 82 more); 1 "
        "writes of unknown outcome apart (0 absent)",
        "RPO breach",
    ),
    "split brain after the heal": (
        "failed",
        "drkit.drill.DrillOutcomeError: fail: fencing: FAIL: 3 writes sent straight to "
        "us-east-1 were acknowledged after the heal; the old region still takes writes "
        "(split brain)",
        "product defect",
    ),
    "fault that cut nothing": (
        "failed",
        "drkit.drill.DrillOutcomeError: not_exercised: the replication link was cut but "
        "replication kept streaming (byte lag 0 throughout)",
        "not exercised",
    ),
    "region that never answered": (
        "failed",
        "drkit.drill.DrillOutcomeError: unknown: When step 'x' failed: TargetUnreachable: "
        "PostgreSQL us-west-2 (127.0.0.1:26433): connection refused",
        "target unreachable",
    ),
    "checker that crashed": (
        "failed",
        "drkit.drill.DrillOutcomeError: unknown: rpo: unknown: the final read of us-west-2 "
        "returned no rows",
        "unknown",
    ),
    "drill that passed": ("passed", None, None),
}


def _result(title: str, status: str, message: str | None, order: int) -> dict[str, Any]:
    """An Allure result as allure-pytest-bdd writes one: enough for Allure 3 to read it."""
    start = 1_795_000_000_000 + 10_000 * order
    result: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "name": title,
        "fullName": f"drills/categories.feature:{title}",
        "historyId": uuid.uuid5(uuid.NAMESPACE_URL, title).hex,
        "testCaseId": uuid.uuid5(uuid.NAMESPACE_DNS, title).hex,
        "status": status,
        "start": start,
        "stop": start + 5_000,
        "labels": [{"name": "feature", "value": "Findings categories"}],
    }
    if message is not None:
        result["statusDetails"] = {"message": message, "trace": f"Traceback ...\n{message}"}
    return result


@pytest.fixture(scope="module")
def categorised(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """Each result's fullName -> the names of the categories the rendered report put it in."""
    base = tmp_path_factory.mktemp("categories")
    results = base / "allure-results"
    results.mkdir()
    for order, (title, (status, message, _)) in enumerate(FINDINGS.items()):
        result = _result(title, status, message, order)
        (results / f"{result['uuid']}-result.json").write_text(json.dumps(result))
    allure_files.write(results, None, {})
    try:
        render_report(results, base / "report", name="categories self-test")
    except ReportToolMissing as exc:
        pytest.fail(str(exc), pytrace=False)  # CI installs the tools: their absence is a bug
    return _categories_of_results(base / "report")


def _categories_of_results(report: Path) -> dict[str, set[str]]:
    """widgets/categories.json: category nodes lead through message nodes to test results
    ("tr" nodes, whose ids name data/test-results/<id>.json)."""
    widget = json.loads((report / "widgets" / "categories.json").read_text())
    nodes = widget["nodes"]
    found: dict[str, set[str]] = {}
    for root in widget["roots"]:
        category = nodes[root]
        assert category["type"] == "category", category
        for leaf in _leaves(nodes, category):
            data = json.loads((report / "data" / "test-results" / f"{leaf}.json").read_text())
            found.setdefault(data["fullName"], set()).add(category["name"])
    return found


def _leaves(nodes: dict[str, Any], node: dict[str, Any]) -> Iterator[str]:
    for child_id in node.get("childrenIds", []):
        child = nodes[child_id]
        if child["type"] == "tr":
            yield child_id
        else:
            yield from _leaves(nodes, child)


@pytest.mark.parametrize("title", list(FINDINGS))
def test_categories_sort_a_forced_rto_breach_and_a_forced_heal_failure(
    categorised: dict[str, set[str]], title: str
) -> None:
    """Each failed drill lands in exactly its category; a passed one in none."""
    _, message, category = FINDINGS[title]
    expected = set() if category is None else {category}

    placed = categorised.get(f"drills/categories.feature:{title}", set())

    assert placed == expected, (
        f"{title!r} ({message!r}) is in {sorted(placed) or 'no category'}, not "
        f"{sorted(expected) or 'none'}; every placement: {categorised}"
    )
