"""The registered plan: built from the steps' registrations at collection, written and hashed
before anything runs; `--dr-plan` prints it and runs nothing."""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import textwrap
from pathlib import Path

import pytest

from drkit.evidence import plan as registered
from steps import STEP_MODULES
from steps.plans import PLANS
from steps.registry import STEPS, plan_step

pytestmark = pytest.mark.unit

for _module in STEP_MODULES:
    importlib.import_module(_module)

CONSEQUENTIAL = (
    "drill.inject(",
    "operator_failover(",
    "failback(",
    "rewind(",
    "rebuild_standby(",
    "lift_fence(",
    "reconcile_index(",
    "copy_back(",
    "bulk_delete(",
    "await_watcher_failover(",
    "generate_wal(",
    "blips(",
)


def test_every_plan_entry_names_a_registered_step() -> None:
    known = {(s.keyword, s.pattern) for s in STEPS}
    assert [key for key in PLANS if key not in known] == []


def test_every_step_that_changes_the_target_is_in_the_plan() -> None:
    """A fault or recovery step missing from PLANS would reach the approver as a bare check."""
    missing = [
        f"{s.keyword} {s.pattern}"
        for s in STEPS
        if s.fn is not None
        and any(call in inspect.getsource(s.fn) for call in CONSEQUENTIAL)
        and (s.keyword, s.pattern) not in PLANS
    ]
    assert missing == []


def test_a_fault_step_is_planned_with_its_parameters() -> None:
    planned = plan_step("When", "us-west-2 is cut off by its security group")
    assert planned["kind"] == "fault"
    assert planned["destructive"] is True
    assert planned["resources"] == ["security group of us-west-2 (lab EC2 on moto)"]
    assert "us-west-2" in planned["text"]


def test_an_objective_step_sets_the_objective() -> None:
    assert plan_step("Given", "the RPO objective is 5 seconds")["sets"] == {"rpo_s": 5.0}
    assert plan_step("Given", "the RTO objective is 15 minutes")["sets"] == {"rto_s": 900.0}


def test_an_unknown_step_is_planned_as_unknown() -> None:
    assert plan_step("When", "the moon falls")["kind"] == "unknown"


def test_the_hash_catches_an_edited_plan(tmp_path: Path) -> None:
    plan = registered.build_plan(
        [],
        run_id="r",
        target="lab",
        regions=["us-east-1"],
        approver="A",
        change_ticket=None,
        quarter=None,
        profile={},
    )
    digest = registered.write_plan(tmp_path, plan)
    assert digest == hashlib.sha256((tmp_path / "plan.json").read_bytes()).hexdigest()
    assert registered.plan_hash(tmp_path) == digest
    (tmp_path / "plan.json").write_text((tmp_path / "plan.json").read_text().replace('"A"', '"B"'))
    with pytest.raises(ValueError, match="the plan changed after it was registered"):
        registered.plan_hash(tmp_path)


def test_expected_duration_is_the_median_of_stored_runs(tmp_path: Path) -> None:
    for n, took in enumerate((10.0, 30.0, 20.0)):
        verdicts = tmp_path / f"2026112{n}T000000Z-000{n}" / "verdicts"
        verdicts.mkdir(parents=True)
        summary = {"name": "test_x", "started": 100.0, "finished": 100.0 + took}
        (verdicts / "x.json").write_text(json.dumps(summary))
    drills = [
        registered.PlannedDrill("test_x", "f", "s", [], []),
        registered.PlannedDrill("test_y", "f", "s", [], []),
    ]
    registered.estimate(drills, tmp_path)
    assert drills[0].expected_duration_s == 20.0
    assert drills[1].expected_duration_s is None
    assert "never" in drills[1].duration_basis or "no stored run" in drills[1].duration_basis


FEATURE = """\
Feature: plan self-test
  Scenario: a region is lost
    Given the RTO objective is 10 minutes
    When us-east-1 is cut off by its security group
    And the watcher fails over within 30 seconds
    Then the RTO is within its objective
"""


def project(pytester: pytest.Pytester, feature: str) -> None:
    pytester.makeconftest(
        'pytest_plugins = ["fixtures.plugin", "steps.lab", "steps.measure"]\n'
        "import pytest\n\n@pytest.fixture\ndef drill():\n"
        "    raise AssertionError('plan mode must not run a step')\n"
    )
    pytester.makefile(".feature", plantest=feature)
    pytester.makepyfile(
        test_plantest='from pytest_bdd import scenarios\nscenarios("plantest.feature")\n'
    )
    pytester.makeini("[pytest]\naddopts = -p no:allure_pytest -p no:cacheprovider\n")


def test_plan_mode_prints_the_plan_writes_it_and_runs_nothing(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project(pytester, FEATURE)
    monkeypatch.setenv("DRKIT_RUNS_DIR", str(pytester.path / "runs"))
    result = pytester.runpytest("--dr-plan", "--dr-approver", "Jane Roe", "-q")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "*1 drill on the lab target*nothing has been changed*",
            "*approver: Jane Roe*",
            "*objectives: RTO 600s*",
            "*fault: region outage: every ingress rule of us-east-1's security group revoked*",
            "plan: *plan.json (sha256 *)",
        ]
    )
    result.stdout.no_fnmatch_line("*passed*")
    (run,) = (pytester.path / "runs").iterdir()
    plan = json.loads((run / "plan.json").read_text())
    assert plan["approver"] == "Jane Roe"
    assert plan["drills"][0]["objectives"]["rto_s"] == 600.0
    assert registered.plan_hash(run) == json.loads((run / "run.json").read_text())["plan_sha256"]


def test_plan_mode_refuses_a_plan_with_an_unknown_step(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project(pytester, FEATURE.replace("cut off by", "cut of by"))
    monkeypatch.setenv("DRKIT_RUNS_DIR", str(pytester.path / "runs"))
    result = pytester.runpytest("--dr-plan", "-q")
    assert result.ret != 0
    result.stderr.fnmatch_lines(
        ["*the plan has steps drkit does not know: plantest.feature line 4: unknown step*"]
    )


def test_a_run_registers_its_plan_before_the_first_step(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The drill fixture here fails: the plan must already be on disk when it does."""
    project(pytester, FEATURE)
    monkeypatch.setenv("DRKIT_RUNS_DIR", str(pytester.path / "runs"))
    result = pytester.runpytest("-q", "--dr-change-ticket", "CHG-1")
    result.assert_outcomes(errors=0, failed=1)
    (run,) = (pytester.path / "runs").iterdir()
    assert json.loads((run / "plan.json").read_text())["change_ticket"] == "CHG-1"
    assert (run / "plan.json.sha256").read_text().endswith("  plan.json\n")


def test_render_text_lists_every_resource() -> None:
    drill = registered.PlannedDrill(
        "n", "f.feature", "s", [], [plan_step("When", "the primary database in us-east-1 crashes")]
    )
    drill.objectives = registered.objectives_of(drill.steps, 6.5)
    plan = registered.build_plan(
        [drill],
        run_id="r",
        target="lab",
        regions=["us-east-1", "us-west-2"],
        approver=None,
        change_ticket=None,
        quarter=None,
        profile={},
    )
    text = registered.render_text(plan)
    assert "PostgreSQL in us-east-1" in text
    assert "(none given: --dr-approver)" in text
    assert textwrap.dedent(text).count("fault:") == 1
