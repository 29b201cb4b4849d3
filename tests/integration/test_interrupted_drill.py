"""A drill interrupted while four faults are open: a toxic and a blackhole on the replication
link, a revoked security-group rule and a paused replay.

SIGINT and SIGTERM heal by themselves and keep the partial evidence (a hash-chained history
that ends with its heals and an `interrupted` mark); SIGKILL leaves the faults, and
`drkit rollback` heals them all from the ledger. Each case reads the lab back.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from drkit.lab.lab import Lab
from drkit.lab.steady import fault_traces
from drkit.measure.chain import read_chain
from drkit.project import write_drill_project
from tests.integration.conftest import run_drkit

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FEATURE = """\
Feature: An interrupted drill
  Scenario: four faults held open
    Given a writer and a probe run through the public name
    When the path us-east-1.db.from-us-west-2 gets a latency toxic on its downstream stream \
with latency=300
    And WAL replay is paused on us-west-2
    And us-west-2's security group stops admitting api traffic from public
    And the replication link from us-east-1 to us-west-2 is cut
    And writes continue for 120 seconds
    Then the pre-flight was ready
"""
EXPECTED = ("toxic drill-latency-downstream", "toxic drill-cut-", "lacks", "replay is paused")


def start_drill(tmp: Path) -> subprocess.Popen[str]:
    write_drill_project(tmp, FEATURE, "interrupted")
    env = {**os.environ, "DRKIT_RUNS_DIR": str(tmp / "runs")}
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "--alluredir", str(tmp / "allure")],
        cwd=tmp,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_all_faults(lab: Lab, drill: subprocess.Popen[str], budget_s: float = 90) -> list[str]:
    deadline = time.monotonic() + budget_s
    while time.monotonic() < deadline:
        traces = fault_traces(lab)
        if all(any(e in t for t in traces) for e in EXPECTED):
            return traces
        if drill.poll() is not None:
            pytest.fail(f"the drill ended before its faults were open:\n{drill.stdout.read()}")  # type: ignore[union-attr]
        time.sleep(0.2)
    drill.kill()
    pytest.fail(f"the four faults were not all open within {budget_s}s: {fault_traces(lab)}")


def history_of(tmp: Path) -> list[dict]:
    (path,) = (tmp / "runs").glob("*/histories/*.jsonl")
    chain = read_chain(path)
    assert chain.intact, f"the partial history's chain is broken: {chain}"
    return [r["op"] for r in chain.records if "op" in r]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_sigint_and_sigterm_heal_by_themselves_and_keep_the_partial_evidence(
    fresh_lab: Lab, tmp_path: Path, signum: signal.Signals
) -> None:
    drill = start_drill(tmp_path)
    wait_for_all_faults(fresh_lab, drill)
    drill.send_signal(signum)
    output, _ = drill.communicate(timeout=90)
    assert drill.returncode != 0, output
    assert fault_traces(fresh_lab) == [], output
    ops = history_of(tmp_path)
    heals = [op for op in ops if op["kind"] == "fault" and op["value"].get("f") == "heal"]
    assert len([op for op in heals if op["type"] == "ok"]) == 4, heals
    assert ops[-1]["value"] == {
        "check": "interrupted",
        "by": signum.name,
        "faults_healed": True,
    }, ops[-1]


def test_after_sigkill_drkit_rollback_heals_every_fault(fresh_lab: Lab, tmp_path: Path) -> None:
    drill = start_drill(tmp_path)
    wait_for_all_faults(fresh_lab, drill)
    drill.kill()
    drill.communicate(timeout=30)
    left = fault_traces(fresh_lab)
    assert all(any(e in t for t in left) for e in EXPECTED), left  # SIGKILL heals nothing
    rollback = run_drkit("rollback")
    assert rollback.returncode == 0, rollback.stderr
    assert fault_traces(fresh_lab) == [], rollback.stdout
    assert history_of(tmp_path), "the killed drill's history up to the kill is readable"


def test_drkit_abort_heals_and_stops_the_running_drill_within_seconds(
    fresh_lab: Lab, tmp_path: Path
) -> None:
    """The kill switch: `drkit abort` writes a STOP file; the drill's switch sees it within
    half a second, heals its four faults and stops, and its history says it was aborted."""
    drill = start_drill(tmp_path)
    wait_for_all_faults(fresh_lab, drill)
    try:
        asked, asked_wall = time.monotonic(), time.time()
        abort = run_drkit("abort", "--reason", "operator saw errors on the trading desk")
        assert abort.returncode == 0, abort.stderr
        output, _ = drill.communicate(timeout=90)
        stopped_s = time.monotonic() - asked
    finally:
        run_drkit("abort", "--clear")
    assert drill.returncode != 0, output
    assert fault_traces(fresh_lab) == [], output
    ops = history_of(tmp_path)
    heals = [op for op in ops if op["kind"] == "fault" and op["value"].get("f") == "heal"]
    assert len([op for op in heals if op["type"] == "ok"]) == 4, heals
    assert ops[-1]["value"]["check"] == "aborted", ops[-1]
    assert "operator saw errors" in ops[-1]["value"]["reason"]
    # "within seconds": the four heals read back, well inside the 120 s the drill would run
    assert stopped_s < 60, f"the drill took {stopped_s:.1f}s to stop after `drkit abort`"
    healed_s = max(op["wall"] for op in heals) - asked_wall
    print(f"\nkill switch: 4 faults healed {healed_s:.2f}s and the drill ended {stopped_s:.2f}s "
          "after `drkit abort` was called")  # fmt: skip
