"""The offline HTML report, opened in headless Chromium, attempts no request outside its files.

A nested pytest runs a small Gherkin feature with allure-pytest-bdd to make real Allure results;
they are rendered as a folder and as a single file (both must stay inside), and once as Allure's
unpatched default, the positive control that shows the browser check catches its analytics.
Needs Node.js, reports/node_modules and Chromium (`make setup`), not the drkit lab.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from drkit.evidence.browser import BrowserError, BrowserVisit, find_chromium, record_requests
from drkit.evidence.html import ReportToolMissing, render_report

pytestmark = pytest.mark.integration

FEATURE = "Offline report self-test"
SCENARIOS = (
    "a drill whose ledger is attached",
    "a drill that breaches its RPO",
    "a drill that heals its fault",
)
FEATURE_TEXT = f"""\
Feature: {FEATURE}
  Scenario: {SCENARIOS[0]}
    Given a ledger is attached
  Scenario: {SCENARIOS[1]}
    Given a ledger is attached
    Then the RPO is met
  Scenario: {SCENARIOS[2]}
    Given the fault is healed
"""
STEPS_TEXT = """\
import allure
from pytest_bdd import given, scenarios, then

scenarios("offline.feature")
TEXT = allure.attachment_type.TEXT


@given("a ledger is attached")
def ledger():
    allure.attach("op 1 ok\\nop 2 ok\\n", name="ledger", attachment_type=TEXT)


@given("the fault is healed")
def healed():
    pass


@then("the RPO is met")
def rpo_met():
    assert 2.5 <= 1.0, "RPO 2.5 s exceeds the 1.0 s objective"
"""
NESTED_PYTEST_OPTIONS = (
    "-q",
    "-p",
    "no:cacheprovider",
    "-p",
    "no:allure_pytest",  # it would clash with allure-pytest-bdd over --alluredir
    "-p",
    "allure_pytest_bdd",
)


@pytest.fixture(scope="module")
def allure_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Allure results of a real pytest-bdd run: 3 scenarios, one failed, with attachments."""
    project = tmp_path_factory.mktemp("offline-feature")
    (project / "pytest.ini").write_text("[pytest]\n")
    (project / "offline.feature").write_text(FEATURE_TEXT)
    (project / "test_offline.py").write_text(textwrap.dedent(STEPS_TEXT))
    results = project / "allure-results"
    # A child process: Allure's plugin manager is process-global (see test_negative_controls).
    run = subprocess.run(
        [sys.executable, "-m", "pytest", *NESTED_PYTEST_OPTIONS, f"--alluredir={results}"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    written = sorted(results.glob("*-result.json"))
    attached = sorted(results.glob("*-attachment.txt"))
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]
    assert (len(written), len(attached)) == (3, 2), sorted(p.name for p in results.iterdir())
    return results


@pytest.fixture(scope="module", autouse=True)
def report_tools() -> None:
    """Fail, not skip, without the tools: CI installs them, so their absence is a set-up bug."""
    try:
        find_chromium()
    except BrowserError as exc:
        pytest.fail(str(exc), pytrace=False)


def render(results: Path, out: Path, **options: bool) -> Path:
    try:
        return render_report(results, out, name="offline self-test", **options)
    except ReportToolMissing as exc:
        pytest.fail(str(exc), pytrace=False)


def assert_rendered(visit: BrowserVisit) -> None:
    """The report drew its results, so it ran everything a reader's browser would run."""
    assert visit.title == "offline self-test", visit
    missing = [name for name in (FEATURE, *SCENARIOS) if name not in visit.text]
    assert not missing, f"the report did not render {missing}; page text: {visit.text[:1000]!r}"
    assert not visit.page_errors, visit.page_errors
    assert visit.screenshot is not None
    assert visit.screenshot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.parametrize("single_file", [False, True], ids=["folder", "single-file"])
def test_offline_report_makes_no_outside_request(
    allure_results: Path, tmp_path: Path, single_file: bool
) -> None:
    index = render(allure_results, tmp_path / "report", single_file=single_file)

    visit = record_requests(index, screenshot=tmp_path / "report.png")

    assert visit.outside_requests == []
    assert_rendered(visit)
    if single_file:
        assert visit.inside_requests == [index.as_uri()], "a single file loads nothing else"
    else:
        assert any("/data/" in url or "/widgets/" in url for url in visit.inside_requests)


def test_unpatched_allure_report_is_caught_requesting_outside(
    allure_results: Path, tmp_path: Path
) -> None:
    index = render(allure_results, tmp_path / "report", offline=False)

    visit = record_requests(index, screenshot=tmp_path / "report.png")

    assert any(
        url.startswith("https://www.googletagmanager.com/") for url in visit.outside_requests
    )
    assert_rendered(visit)
