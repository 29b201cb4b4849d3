"""Benchmark the DR engine on the lab: monitor sample time, a failover by phases, and the RTO
a black-box writer measures through the watcher's automated failover, against its floor.

Floor = detection (health interval x failure threshold) + promotion + DNS TTL. The writer
(20 writes/s through the public name and drkit's TTL-honouring resolver) records the
history; the measurement core's RTO checker computes the RTO from it. Prints figures; asserts
nothing about time.

    .venv/bin/python bench/bench_engine.py [--runs 3] [--port-base 29400]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from drkit.config import LabPorts, LabSettings
from drkit.failover.monitor import ReplicationMonitor
from drkit.failover.orchestrator import FailoverOrchestrator
from drkit.failover.verifier import DRVerifier
from drkit.faults.lab import SecurityGroupBlock, lab_params
from drkit.faults.ledger import Ledger
from drkit.lab.control_plane import LabControlPlane
from drkit.lab.lab import Lab
from drkit.lab.lock import lab_lock
from drkit.lab.process import wait_until
from drkit.measure.clients import Writer
from drkit.measure.history import History
from drkit.measure.rto import check_rto
from drkit.measure.transport import HttpTransport


def spread(values: list[float]) -> str:
    return f"min {min(values):.3f}  median {statistics.median(values):.3f}  max {max(values):.3f}"


def monitor_samples(lab: Lab, n: int = 10) -> list[float]:
    monitor = ReplicationMonitor(lab.db_config("us-east-1"), lab.db_config("us-west-2"))
    times = []
    for _ in range(n):
        start = time.monotonic()
        monitor.check_replication_lag()
        times.append(time.monotonic() - start)
    return times


def planned_failover(lab: Lab, runs: Path) -> dict[str, float]:
    monitor = ReplicationMonitor(lab.db_config("us-east-1"), lab.db_config("us-west-2"))
    with Ledger(runs / "planned", state_dir=lab.state, handle_signals=False) as ledger:
        result = FailoverOrchestrator(DRVerifier(monitor), ledger=ledger).execute_failover("bench")
    assert result.success, result.errors
    return {p.name: p.duration_s for p in result.phases}


def watcher_state(lab: Lab) -> dict[str, Any]:
    try:
        return dict(json.loads(lab.watcher.status_file.read_text()))
    except (OSError, ValueError):
        return {}


def watcher_failover(lab: Lab, run_dir: Path) -> dict[str, float]:
    """Region outage by security-group block; the watcher fails over; the writer measures."""
    control = LabControlPlane.of(lab)
    profile = lab.settings.profile
    lab.watcher.start()
    transport = HttpTransport(port=lab.settings.ports.api, timeout=0.5)
    name = control.public_record().name
    with (
        History(run_dir / "history.jsonl", name="bench") as history,
        Ledger(run_dir, state_dir=lab.state, history=history, handle_signals=False) as ledger,
    ):
        with Writer(transport, control.resolver(), name, history, period=0.05):
            time.sleep(1.5)  # steady state before the disaster, part of the measured history
            ledger.inject(SecurityGroupBlock(**lab_params(lab), region="us-east-1"), disaster=True)
            wait_until(
                lambda: watcher_state(lab).get("state") in ("failed_over", "failover_failed"),
                60,
                "the watcher's failover",
                interval_s=0.05,
            )
            time.sleep(3.0)  # writes after the failover: the RTO needs 5 lasting successes
        ops = history.ops
    verdict = check_rto(ops)
    phases = {p["name"]: p["duration_s"] for p in watcher_state(lab)["failover"]["phases"]}
    floor = (
        profile.health_interval_s * profile.failure_threshold
        + phases["promotion"]
        + profile.dns_ttl_s
    )
    lab.watcher.stop()
    assert verdict.value is not None, verdict.reason
    return {
        "rto": float(verdict.value),
        "floor": floor,
        "error_bar": verdict.error_bar or 0.0,
        **{f"phase {k}": v for k, v in phases.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--port-base", type=int, default=29400)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="drkit-bench-engine-", dir="/var/tmp"))
    os.chmod(home, 0o755)
    os.environ.update(DRKIT_HOME=str(home), DRKIT_LAB_PORT_BASE=str(args.port_base))
    lab = Lab(home, LabSettings(ports=LabPorts(args.port_base)))
    runs = home / "runs"
    try:
        with lab_lock(home, "bench-engine"):
            lab.up()
            samples = monitor_samples(lab)
            planned = planned_failover(lab, runs)
            lab.reset()
            unplanned = []
            for i in range(args.runs):
                unplanned.append(watcher_failover(lab, runs / f"watcher-{i}"))
                lab.reset()
            lab.down(purge=True)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    print(f"check_replication_lag() over {len(samples)} samples (s): {spread(samples)}")
    print("planned failover by phase (s): " + ", ".join(f"{k} {v:.3f}" for k, v in planned.items()))
    print(f"watcher failover, region outage by security-group block, {args.runs} runs:")
    for key in ("rto", "floor"):
        print(f"  {key:10} (s): {spread([u[key] for u in unplanned])}")
    ratios = [u["rto"] / u["floor"] for u in unplanned]
    print(
        f"  RTO/floor     : {spread(ratios)}  (goal <= 1.25; "
        f"error bar +-{unplanned[0]['error_bar']:.3f}s)"
    )
    for key in sorted(k for k in unplanned[0] if k.startswith("phase ")):
        print(f"  {key:28} (s): {spread([u[key] for u in unplanned])}")


if __name__ == "__main__":
    main()
