"""Interrupt fault-heavy drills many times and read the lab back after each interruption.

Each run starts a nested pytest drill against one lab this script brings up (its own state
folder and port base, loopback only), waits for a moment drawn from the ledgers' phases
(during a heal, mid-failover of the watcher, or anywhere once the drill's ledger is open),
and sends SIGINT, SIGTERM or SIGKILL in turn; `drkit rollback` follows a SIGKILL. Then:
no fault left applied (`fault_traces`), recovery actions in the lab exactly as the watcher's
and the drill's ledgers list them applied, `lab reset` clearing them, the partial history
present with an intact chain (and marked `interrupted` after SIGINT/SIGTERM), no orphan
process. Prints a table and totals; asserts nothing.

    .venv/bin/python bench/interruption_campaign.py [--runs 40] [--port-base 29700] [--seed 1]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from drkit.config import LabPorts, LabSettings
from drkit.faults.journal import LEDGER_FILE, read_ledger
from drkit.lab.control_plane import LabControlPlane
from drkit.lab.fence import FENCE_FILE, read_fences
from drkit.lab.lab import Lab
from drkit.lab.lock import LOCK_ENV, lab_lock
from drkit.lab.process import processes_mentioning
from drkit.lab.steady import fault_traces, topology_drift
from drkit.measure.chain import read_chain
from drkit.project import write_drill_project

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)
PLANS = ("heal", "failover", "anywhere")
POLL_S = 0.02
HOME_REGION = "us-east-1"

FOUR_FAULTS = """\
Feature: An interrupted drill
  Scenario: four faults held open, then healed
    Given a writer and a probe run through the public name
    When the path us-east-1.db.from-us-west-2 gets a latency toxic on its downstream stream \
with latency=300
    And WAL replay is paused on us-west-2
    And us-west-2's security group stops admitting api traffic from public
    And the replication link from us-east-1 to us-west-2 is cut
    And writes continue for {hold} seconds
    And the faults heal
    And writes continue for 120 seconds
    Then the replication lag fell back below 2 seconds
"""
REGION_OUTAGE = """\
Feature: An interrupted failover
  Scenario: us-east-1 is cut off by its security group and the watcher fails over
    Given the watcher is on
    And a writer and a probe run through the public name
    When us-east-1 is cut off by its security group
    And the watcher fails over within 30 seconds
    And writes continue for 120 seconds
    Then the RTO is within its objective
"""


@dataclass(frozen=True)
class RunResult:
    index: int
    signal: str
    plan: str
    phase: str  # the phase the ledgers showed when the signal went
    seconds: float
    faults_left: list[str]
    evidence_problem: str | None
    recovery_mismatch: str | None
    reset_problem: str | None
    orphans: list[str]


# -- the nested drill ----------------------------------------------------------------------
def write_drill(folder: Path, plan: str, rng: random.Random) -> None:
    feature = REGION_OUTAGE if plan == "failover" else FOUR_FAULTS.format(hold=rng.randint(1, 4))
    write_drill_project(folder, feature, "campaign")


def start_drill(folder: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with open(folder / "pytest.log", "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", "--alluredir", str(folder / "allure")],
            cwd=folder,
            env={**env, "DRKIT_RUNS_DIR": str(folder / "runs")},
            stdout=log,
            stderr=subprocess.STDOUT,
        )


# -- reading the phases --------------------------------------------------------------------
def drill_ledger(folder: Path) -> Path | None:
    return next((folder / "runs").glob(f"*/{LEDGER_FILE}"), None)


def watcher_ledgers(lab: Lab) -> set[Path]:
    return set((lab.state / "watcher").glob(f"watcher-*/{LEDGER_FILE}"))


def ledger_phase(path: Path | None) -> str:
    """setup / injecting / held / healing / healed, from the drill's ledger."""
    if path is None or not path.exists():
        return "setup"
    state = read_ledger(path)
    faults = [r for r in state.records if r.category == "fault"]
    injected = [r for r in faults if "injected" in state.events.get(r.id, ())]
    healed = [r for r in faults if "healed" in state.events.get(r.id, ())]
    if not faults:
        return "setup"
    if healed:
        return "healing" if state.open_faults else "healed"
    return "held" if len(injected) == len(faults) else "injecting"


def failover_phase(lab: Lab, before: set[Path]) -> str | None:
    """From this run's watcher ledger: 'mid-failover' once a recovery action is intended and
    not every one is applied (or failed), 'failed-over' after. The watcher's status file is
    not used: it outlives a reset, so it may tell of an earlier run's failover."""
    new = sorted(watcher_ledgers(lab) - before)
    if not new:
        return None
    state = read_ledger(new[-1])
    settled = [r for r in state.records if {"applied", "apply_error"} & set(state.events[r.id])]
    if len(state.records) >= 3 and len(settled) == len(state.records):
        return "failed-over"
    return "mid-failover"


def wait_for_moment(
    plan: str, drill: subprocess.Popen[bytes], folder: Path, lab: Lab, before: set[Path],
    rng: random.Random, budget_s: float = 90,
) -> str:  # fmt: skip
    """Poll the ledgers until the planned moment; returns the phase seen then."""
    deadline = time.monotonic() + budget_s
    anywhere_at: float | None = None
    while time.monotonic() < deadline and drill.poll() is None:
        ledger = drill_ledger(folder)
        if plan == "failover" and (phase := failover_phase(lab, before)) is not None:
            return phase
        if plan == "heal" and ledger_phase(ledger) in ("healing", "healed"):
            return ledger_phase(ledger)
        if plan == "anywhere" and ledger is not None:
            anywhere_at = anywhere_at or time.monotonic() + rng.uniform(0.0, 8.0)
            if time.monotonic() >= anywhere_at:
                return failover_phase(lab, before) or ledger_phase(ledger)
        time.sleep(POLL_S)
    return "ended" if drill.poll() is not None else "timeout"


# -- reading the lab back ------------------------------------------------------------------
def run_cli(*args: str, env: dict[str, str], timeout: float = 120) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "drkit.cli", *args],
        env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    return "" if done.returncode == 0 else f"exit {done.returncode}: {done.stderr[-400:]}"


def evidence_problem(folder: Path, signame: str, phase: str) -> str | None:
    """None when the partial history is present, chained, and (SIGINT/SIGTERM) marked."""
    histories = sorted((folder / "runs").glob("*/histories/*.jsonl"))
    if not histories:
        return "no history file"
    chain = read_chain(histories[0])
    if chain.broken is not None:
        return f"history chain broken: {chain.broken}"
    ledger = drill_ledger(folder)
    if ledger is not None and (broken := read_chain(ledger).broken) is not None:
        return f"ledger chain broken: {broken}"
    if signame == "SIGKILL" or phase in ("ended", "timeout"):
        return None if chain.records else "empty history"
    ops = [r["op"] for r in chain.records if "op" in r]
    last = ops[-1]["value"] if ops else None
    if not isinstance(last, dict) or last.get("check") != "interrupted" or not chain.intact:
        return f"last op is {last!r}, not the interrupted mark (tail cut: {chain.partial_tail})"
    return None if last.get("by") == signame else f"marked interrupted by {last.get('by')}"


def recovery_in_place(lab: Lab) -> set[tuple[str, str]]:
    """The recovery actions the lab shows: fences, a promoted standby, a switched name."""
    found = {("lab.fence", r) for r in read_fences(lab.state / FENCE_FILE)}
    roles = {r: n["role"] for r, n in lab.database.status()["regions"].items()}
    found |= {
        ("lab.promote", r) for r, role in roles.items() if r != HOME_REGION and role == "primary"
    }
    dns = LabControlPlane.of(lab).public_record().region
    return found | ({("lab.dns_switch", dns)} if dns != HOME_REGION else set())


def recovery_listed(ledgers: list[Path]) -> set[tuple[str, str]]:
    listed = set()
    for path in ledgers:
        state = read_ledger(path)
        for record in state.applied_recovery:
            if "applied" in state.events.get(record.id, ()):
                listed.add((record.kind, str(record.params.get("region"))))
    return listed


def settle_watcher(lab: Lab, budget_s: float = 45) -> None:
    """A failover the drill's interruption did not stop runs on: wait for it to finish."""
    deadline = time.monotonic() + budget_s
    while time.monotonic() < deadline and lab.watcher.pid() is not None:
        watch = lab.watcher.watch_state()
        if watch.get("state") in ("failed_over", "failover_failed", "stopped"):
            return
        if not watch.get("failover_started_at") and watch.get("state") == "watching":
            return
        time.sleep(0.2)


def recovery_mismatch(lab: Lab, folder: Path, before: set[Path]) -> str | None:
    ledgers = sorted(watcher_ledgers(lab) - before)
    if (ledger := drill_ledger(folder)) is not None:
        ledgers.append(ledger)
    listed, seen = recovery_listed(ledgers), recovery_in_place(lab)
    if listed == seen:
        return None
    missing, unlisted = sorted(listed - seen), sorted(seen - listed)
    return f"ledgers list {missing} not in the lab; the lab has {unlisted} unlisted"


def reset_problem(lab: Lab) -> str | None:
    lab.reset()
    left = topology_drift(lab) + fault_traces(lab) + sorted(recovery_in_place(lab))
    return "; ".join(map(str, left)) or None


# -- one run -------------------------------------------------------------------------------
def stop_drill(drill: subprocess.Popen[bytes], signum: signal.Signals) -> None:
    if drill.poll() is None:
        drill.send_signal(signum)
    try:
        drill.wait(timeout=90)
    except subprocess.TimeoutExpired:
        drill.kill()
        drill.wait(timeout=30)


def one_run(
    i: int, lab: Lab, env: dict[str, str], workdir: Path, rng: random.Random, plan: str
) -> RunResult:
    signum = SIGNALS[i % 3]
    folder = workdir / f"run-{i:03d}"
    folder.mkdir()
    lab.reset()
    before = watcher_ledgers(lab)
    write_drill(folder, plan, rng)
    start = time.monotonic()
    drill = start_drill(folder, env)
    try:
        phase = wait_for_moment(plan, drill, folder, lab, before, rng)
        stop_drill(drill, signum)
    except BaseException:
        drill.kill()
        drill.wait(timeout=30)
        raise
    rolled = run_cli("rollback", env=env) if signum == signal.SIGKILL else ""
    seconds = time.monotonic() - start
    settle_watcher(lab)
    left = fault_traces(lab)
    if left:  # what follows needs a clean ledger pointer; the count is already taken
        run_cli("rollback", env=env)
    return RunResult(
        i, signum.name, plan, phase, seconds, left,
        evidence_problem(folder, signum.name, phase),
        recovery_mismatch(lab, folder, before) or (f"rollback {rolled}" if rolled else None),
        reset_problem(lab),
        processes_mentioning(str(folder)),
    )  # fmt: skip


def plan_of(i: int) -> str:
    """Blocks of three runs (one per signal) cycle through the plans, so every plan meets
    every signal and 40 runs give 15 heals, 13 failovers, 12 anywhere."""
    return PLANS[(i // 3) % 3]


# -- report --------------------------------------------------------------------------------
def print_row(r: RunResult) -> None:
    notes = [
        f"left: {r.faults_left}" if r.faults_left else "",
        f"evidence: {r.evidence_problem}" if r.evidence_problem else "",
        f"recovery: {r.recovery_mismatch}" if r.recovery_mismatch else "",
        f"reset: {r.reset_problem}" if r.reset_problem else "",
        f"orphans: {r.orphans}" if r.orphans else "",
    ]
    print(
        f"{r.index:4d} {r.signal:8} {r.plan:9} {r.phase:13} {r.seconds:6.1f} "
        f"{len(r.faults_left):5d} {'lost' if r.evidence_problem else 'ok':8} "
        + " | ".join(n for n in notes if n),
        flush=True,
    )


def print_totals(results: list[RunResult], asked: int) -> None:
    print(f"\nruns: {len(results)} of {asked} asked")
    print("interruptions by signal:", dict(Counter(r.signal for r in results)))
    print("interruptions by plan:", dict(Counter(r.plan for r in results)))
    print("interruptions by phase seen:", dict(Counter(r.phase for r in results)))
    print("by plan and signal:", dict(Counter(f"{r.plan}/{r.signal}" for r in results)))
    print(f"faults left applied (goal 0): {sum(len(r.faults_left) for r in results)}")
    lost = sum(bool(r.evidence_problem) for r in results)
    print(f"runs whose partial evidence was lost (goal 0): {lost}")
    print(f"recovery mismatches (goal 0): {sum(bool(r.recovery_mismatch) for r in results)}")
    print(f"resets that left drift (goal 0): {sum(bool(r.reset_problem) for r in results)}")
    print(f"orphan processes (goal 0): {sum(len(r.orphans) for r in results)}")
    seconds = sorted(r.seconds for r in results)
    if seconds:
        print(f"seconds to interrupt and stop: min {seconds[0]:.1f} median "
              f"{seconds[len(seconds) // 2]:.1f} max {seconds[-1]:.1f}")  # fmt: skip


def campaign(args: argparse.Namespace, home: Path) -> list[RunResult]:
    env = {**os.environ, "DRKIT_HOME": str(home), "DRKIT_LAB_PORT_BASE": str(args.port_base)}
    env.setdefault("DRKIT_LAB_SEED_DOCS", "500")
    os.environ.update(
        {k: env[k] for k in ("DRKIT_HOME", "DRKIT_LAB_PORT_BASE", "DRKIT_LAB_SEED_DOCS")}
    )
    os.environ["DRKIT_RUNS_DIR"] = env["DRKIT_RUNS_DIR"] = str(home / "runs")
    lab = Lab(home, LabSettings(ports=LabPorts(args.port_base)))
    rng, results = random.Random(args.seed), []
    with lab_lock(home, "bench-interruption-campaign"):
        env[LOCK_ENV] = os.environ[LOCK_ENV]
        try:
            lab.up()
            print(f"{'run':>4} {'signal':8} {'plan':9} {'phase':13} {'s':>6} {'left':>5} evidence")
            for i in range(args.runs):
                results.append(one_run(i, lab, env, home / "work", rng, plan_of(i)))
                print_row(results[-1])
        except KeyboardInterrupt:
            print("campaign interrupted; bringing the lab down", file=sys.stderr)
        finally:
            lab.down(purge=True)
    return results


def stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main() -> None:
    # started in the background (`cmd &`), SIGINT arrives ignored and children would inherit
    # that, so a drill's SIGINT would do nothing: give it back its Python meaning
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, stop_on_sigterm)  # the lab comes down on SIGTERM too
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--port-base", type=int, default=29700)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="drkit-bench-interrupt-", dir="/var/tmp"))
    os.chmod(home, 0o755)
    (home / "work").mkdir()
    try:
        results = campaign(args, home)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    print_totals(results, args.runs)


if __name__ == "__main__":
    main()
