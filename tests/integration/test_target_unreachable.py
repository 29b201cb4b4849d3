"""The service that holds a drill's fault dies mid-drill: Toxiproxy (a toxic held) or moto (a
security-group rule revoked) is SIGKILLed while the drill runs for 300 seconds.

The drill must end well before that, with a `target unreachable` failure naming the service,
its address and what to do; its heal is retried with backoff and every attempt is in the
ledger. When the service stays down the fault stays open (the pointer names it) and the report
says the heal was not verified; `drkit lab up` then `drkit rollback` leave no fault trace. When
the service comes back within the retry window, the drill's own heal completes and reads back.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from drkit.faults.journal import read_ledger, read_pointer
from drkit.lab.lab import Lab
from drkit.lab.moto_server import moto_service, moto_url
from drkit.lab.steady import fault_traces
from drkit.measure.chain import read_chain
from drkit.project import write_drill_project
from tests.integration.conftest import run_drkit

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KILLED_AT: list[float] = []  # wall time of the last kill, for the figures
HANG_GUARD_S = 120.0  # the drill would run 300 s if nothing noticed the death: not a perf bound
TOXIC = (
    "When the path us-east-1.db.from-us-west-2 gets a latency toxic on its downstream stream "
    "with latency=300"
)
SG_BLOCK = "When us-west-2's security group stops admitting api traffic from public"


def start_drill(tmp: Path, fault_step: str, env: dict[str, str] | None = None) -> Any:
    write_drill_project(
        tmp,
        "Feature: A fault's service dies mid-drill\n"
        "  Scenario: the service holding the fault is killed\n"
        "    Given a writer and a probe run through the public name\n"
        f"    {fault_step}\n"
        "    And writes continue for 300 seconds\n"
        "    Then the pre-flight was ready\n",
        "unreachable",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-ra", "--alluredir", str(tmp / "allure")],
        cwd=tmp,
        env={**os.environ, "DRKIT_RUNS_DIR": str(tmp / "runs"), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_fault(lab: Lab, drill: Any, trace: str, budget_s: float = 90) -> None:
    deadline = time.monotonic() + budget_s
    while time.monotonic() < deadline:
        if any(trace in t for t in fault_traces(lab)):
            return
        if drill.poll() is not None:
            pytest.fail(f"the drill ended before its fault was open:\n{drill.stdout.read()}")
        time.sleep(0.2)
    drill.kill()
    pytest.fail(f"the fault was not open within {budget_s}s: {fault_traces(lab)}")


def kill_and_time(pid: int | None, drill: Any) -> tuple[str, float]:
    """SIGKILL the service, then wait (bounded) for the drill to end: its output, seconds."""
    assert pid is not None, "the service to kill is not running"
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    KILLED_AT.append(time.time())
    try:
        output, _ = drill.communicate(timeout=HANG_GUARD_S)
    except subprocess.TimeoutExpired:
        drill.kill()
        output, _ = drill.communicate(timeout=30)
        pytest.fail(f"the drill hung: still running {HANG_GUARD_S:g}s after the kill\n{output}")
    return output, time.monotonic() - killed


def ledger_events(tmp: Path) -> tuple[Path, list[dict[str, Any]]]:
    (path,) = (tmp / "runs").glob("*/ledger.jsonl")
    chain = read_chain(path)
    assert chain.intact, f"the ledger's chain is broken: {chain}"
    return path, list(chain.records)


def attempts(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == "heal_attempt"]


def assert_heal_left_open(lab: Lab, tmp: Path, service: str) -> None:
    """The heal was retried, each attempt journalled, and the fault left open for rollback."""
    ledger, events = ledger_events(tmp)
    tried = attempts(events)
    assert len(tried) >= 2 and all(e["result"] == "unreachable" for e in tried), tried
    gave_up = [e["error"] for e in events if e["event"] == "heal_unreachable"]
    assert gave_up, "the heal's end is journalled"
    assert all(e.startswith(f"heal not verified: {service} unreachable at ") for e in gave_up)
    assert [e for e in events if e["event"] == "target_unreachable"], "the death is journalled"
    assert len(read_ledger(ledger).open_faults) == 1
    pointer = read_pointer(lab.state)
    assert pointer is not None and Path(pointer["ledger"]) == ledger.resolve(), pointer


@pytest.fixture
def lab_restored(fresh_lab: Lab) -> Iterator[Lab]:
    """The session lab; whatever the test asserted, its killed service is started again and
    its open fault rolled back afterwards, so the next test starts clean."""
    yield fresh_lab
    if read_pointer(fresh_lab.state) is not None or fault_traces_or_none(fresh_lab) != []:
        run_drkit("lab", "up", timeout=180)
        run_drkit("rollback")


def fault_traces_or_none(lab: Lab) -> list[str] | None:
    try:
        return fault_traces(lab)
    except Exception:  # a dead service: the caller restarts it
        return None


def restart_and_roll_back(lab: Lab) -> None:
    up = run_drkit("lab", "up", timeout=180)
    assert up.returncode == 0, up.stdout + up.stderr
    rollback = run_drkit("rollback")
    assert rollback.returncode == 0, rollback.stdout + rollback.stderr
    assert "healed [1]" in rollback.stdout, rollback.stdout
    assert fault_traces(lab) == [], rollback.stdout
    assert read_pointer(lab.state) is None


def report(what: str, seconds: float, tmp: Path, output: str) -> None:
    """The figures (kill to detection, to the last heal attempt, to the drill's end; heal
    attempts) and the drill's own words, printed for -s."""
    events = ledger_events(tmp)[1]
    tried = attempts(events)
    (lost,) = [e["wall"] for e in events if e["event"] == "target_unreachable"]
    results = ", ".join(e["result"] for e in tried)
    print(
        f"\n{what}: detected {lost - KILLED_AT[-1]:.1f}s after the kill, last heal attempt at "
        f"{tried[-1]['wall'] - KILLED_AT[-1]:.1f}s, drill process ended at {seconds:.1f}s; "
        f"heal attempts: {results}"
    )
    for line in output.splitlines():
        if "target unreachable" in line or "heal not verified" in line:
            print(f"  | {line[:400]}")


def test_toxiproxy_killed_mid_fault_ends_the_drill_as_target_unreachable(
    lab_restored: Lab, tmp_path: Path
) -> None:
    drill = start_drill(tmp_path, TOXIC)
    wait_for_fault(lab_restored, drill, "toxic drill-latency-downstream")
    output, seconds = kill_and_time(lab_restored.toxiproxy.pid(), drill)
    assert drill.returncode != 0, output
    assert f"target unreachable: Toxiproxy at {lab_restored.toxiproxy.url} stopped answering" in (
        output
    )
    assert "heal not verified: Toxiproxy unreachable at" in output, output
    assert "restart the lab with `drkit lab up`, then run `drkit rollback`" in output
    assert "could not heal" not in output  # unreachable, not a fault that refused to heal
    assert_heal_left_open(lab_restored, tmp_path, "Toxiproxy")
    report("Toxiproxy SIGKILL", seconds, tmp_path, output)
    restart_and_roll_back(lab_restored)


def test_moto_killed_while_a_security_group_rule_is_revoked(
    lab_restored: Lab, tmp_path: Path
) -> None:
    moto = moto_service(lab_restored.state, lab_restored.settings.ports.moto)
    drill = start_drill(tmp_path, SG_BLOCK)
    wait_for_fault(lab_restored, drill, "lacks")
    output, seconds = kill_and_time(moto.pid(), drill)
    assert drill.returncode != 0, output
    address = moto_url(lab_restored.settings.ports.moto)
    assert f"target unreachable: moto at {address} stopped answering" in output, output
    assert "heal not verified: moto unreachable at" in output, output
    assert_heal_left_open(lab_restored, tmp_path, "moto")
    report("moto SIGKILL", seconds, tmp_path, output)
    restart_and_roll_back(lab_restored)


def wait_until(predicate: Callable[[], bool], budget_s: float, what: str) -> None:
    deadline = time.monotonic() + budget_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {budget_s:g}s")
        time.sleep(0.1)


def test_toxiproxy_back_within_the_retry_window_completes_the_heal(
    lab_restored: Lab, tmp_path: Path
) -> None:
    drill = start_drill(tmp_path, TOXIC, env={"DRKIT_HEAL_RETRY_WINDOW_S": "90"})
    wait_for_fault(lab_restored, drill, "toxic drill-latency-downstream")
    pid = lab_restored.toxiproxy.pid()
    assert pid is not None, "Toxiproxy is not running"
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    KILLED_AT.append(time.time())
    wait_until(
        lambda: any(e["result"] == "unreachable" for e in attempts(ledger_events(tmp_path)[1])),
        60,
        "a first heal attempt meeting the dead Toxiproxy",
    )
    up = run_drkit("lab", "up", timeout=180)  # the service comes back inside the window
    assert up.returncode == 0, up.stdout + up.stderr
    output, _ = drill.communicate(timeout=HANG_GUARD_S)
    seconds = time.monotonic() - killed
    assert drill.returncode != 0, output  # the drill still ended: its window was not measured
    assert "target unreachable: Toxiproxy at" in output, output
    assert "heal not verified" not in output, output
    ledger, events = ledger_events(tmp_path)
    tried = attempts(events)
    assert tried[0]["result"] == "unreachable" and tried[-1]["result"] == "healed", tried
    assert [e["event"] for e in events if e.get("id") == 1][-1] == "healed"
    assert read_ledger(ledger).open_faults == () and read_pointer(lab_restored.state) is None
    assert fault_traces(lab_restored) == []
    report("Toxiproxy SIGKILL, back within the window", seconds, tmp_path, output)
