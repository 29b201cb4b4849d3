"""Benchmark the lab's control plane: how fast a security-group change reaches the traffic,
and how long a warm `lab up` takes with moto, the reconciler, the DNS server and the evaluator.

A client keeps making a short-timeout request through a proxy (a TCP connect to us-east-1's
database as reached from the public source, then PostgreSQL's 8-byte SSLRequest, whose
1-byte answer must arrive within --probe-timeout). The figure is when the first failing
(after revoke) or succeeding (after authorize) request began, counted from the boto3 call
returning; its error bar is one request (about --probe-timeout). Prints figures (min /
median / max); asserts nothing.

    .venv/bin/python bench/bench_control_plane.py [--runs 5] [--port-base 27400]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from drkit.config import LabPorts, LabSettings
from drkit.lab.control_plane import LabControlPlane
from drkit.lab.lab import Lab
from drkit.lab.topology import ingress_address

SSL_REQUEST = struct.pack("!ii", 8, 80877103)
CONTROL_PLANE = ("moto", "sg-reconciler", "lab-dns", "evaluator")


def request_ok(address: tuple[str, int], timeout_s: float) -> bool:
    try:
        with socket.create_connection(address, timeout=timeout_s) as sock:
            sock.settimeout(timeout_s)
            sock.sendall(SSL_REQUEST)
            return sock.recv(1) in (b"N", b"S")
    except OSError:
        return False


class Prober:
    """Requests back to back in a thread; records (start time, succeeded)."""

    def __init__(self, address: tuple[str, int], timeout_s: float) -> None:
        self.address, self.timeout_s = address, timeout_s
        self.attempts: list[tuple[float, bool]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            self.attempts.append((began, request_ok(self.address, self.timeout_s)))
            time.sleep(0.005)

    def first(self, ok: bool, after: float, budget_s: float = 10.0, run: int = 3) -> float:
        """Seconds from `after` to the start of the first of `run` consecutive attempts with
        outcome `ok` (one stray timeout on a busy machine is not a cut). Attempts in flight
        at `after` count, so a change that lands on one reads as slightly negative."""
        deadline = time.monotonic() + budget_s
        while time.monotonic() < deadline:
            attempts = [a for a in list(self.attempts) if a[0] + self.timeout_s >= after]
            for i in range(len(attempts) - run + 1):
                if all(outcome == ok for _, outcome in attempts[i : i + run]):
                    return attempts[i][0] - after
            time.sleep(0.01)
        raise RuntimeError(f"no {'successful' if ok else 'failing'} requests in {budget_s}s")

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def reconciler_applied(plane: LabControlPlane, since: float, budget_s: float = 5.0) -> float:
    """Wall time at which the reconciler applied its first change after `since`."""
    deadline = time.monotonic() + budget_s
    while time.monotonic() < deadline:
        change = (plane.reconciler_status() or {}).get("last_change") or {}
        if change.get("at", 0.0) > since:
            return float(change["at"])
        time.sleep(0.01)
    raise RuntimeError(f"the reconciler applied nothing within {budget_s}s")


def sg_latencies(plane: LabControlPlane, runs: int, timeout_s: float) -> dict[str, list[float]]:
    rule = plane.service_rule("db", "public")
    address = (ingress_address("us-east-1", "public"), plane.ports.postgres)
    figures: dict[str, list[float]] = {"stop": [], "flow": [], "cut": [], "heal": []}
    with Prober(address, timeout_s) as prober:
        for _ in range(runs):
            prober.first(True, time.monotonic())
            for verb, key, ok in (("revoke", "stop", False), ("authorize", "flow", True)):
                call, before = getattr(plane, f"{verb}_ingress"), time.time()
                call("us-east-1", [rule])
                returned, wall = time.monotonic(), time.time()
                figures[key].append(prober.first(ok, returned))
                applied = reconciler_applied(plane, before)
                figures["cut" if verb == "revoke" else "heal"].append(applied - wall)
    return figures


def drkit(env: dict[str, str], *args: str) -> float:
    start = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "drkit.cli", *args], env=env, check=True, capture_output=True
    )
    return time.monotonic() - start


def timed_up(lab: Lab) -> tuple[float, float]:
    """(whole `lab.up()`, the control plane's share: from moto's start to the next part)."""
    marks: list[tuple[float, str]] = []
    started = time.monotonic()
    lab.up(progress=lambda m: marks.append((time.monotonic(), m.split(":")[0])))
    total = time.monotonic() - started
    names = [name for _, name in marks]
    first = names.index(CONTROL_PLANE[0])
    after = next((i for i in range(first, len(names)) if names[i] not in CONTROL_PLANE), None)
    end = marks[after][0] if after is not None else started + total
    return total, end - marks[first][0]


def figure(name: str, values: list[float], goal: str = "") -> None:
    print(
        f"{name:44} min {min(values):5.2f}s  median {statistics.median(values):5.2f}s"
        f"  max {max(values):5.2f}s  (n={len(values)})  {goal}"
    )


@dataclass
class Figures:
    cold: float = 0.0
    stop: list[float] = field(default_factory=list)
    flow: list[float] = field(default_factory=list)
    cut: list[float] = field(default_factory=list)
    heal: list[float] = field(default_factory=list)
    warm_share: list[float] = field(default_factory=list)
    warm_total: list[float] = field(default_factory=list)
    warm_cli: list[float] = field(default_factory=list)
    running_cli: list[float] = field(default_factory=list)


def measure(lab: Lab, env: dict[str, str], args: argparse.Namespace) -> Figures:
    figures = Figures(cold=drkit(env, "lab", "up"))
    plane = LabControlPlane.of(lab)
    latencies = sg_latencies(plane, args.runs, args.probe_timeout)
    figures.stop, figures.flow = latencies["stop"], latencies["flow"]
    figures.cut, figures.heal = latencies["cut"], latencies["heal"]
    for _ in range(args.up_runs):
        drkit(env, "lab", "down")
        total, share = timed_up(lab)
        figures.warm_total.append(total)
        figures.warm_share.append(share)
        drkit(env, "lab", "down")
        figures.warm_cli.append(drkit(env, "lab", "up"))
    figures.running_cli = [drkit(env, "lab", "up") for _ in range(args.up_runs)]
    return figures


def show(figures: Figures, args: argparse.Namespace, home: Path) -> None:
    print(f"control plane bench: state {home}, port base {args.port_base}")
    print(f"cold lab up (initdb, whole lab, CLI): {figures.cold:.2f}s")
    print(f"security groups (one probe request, {args.probe_timeout}s, is the error bar):")
    figure("revoke returned -> traffic stopped", figures.stop, "goal <= 1 s")
    figure("authorize returned -> traffic flows", figures.flow, "goal <= 1 s")
    figure("revoke returned -> reconciler cut (its log)", figures.cut)
    figure("authorize returned -> reconciler healed", figures.heal)
    print("warm lab up (data kept, processes stopped):")
    figure("control plane share (moto .. evaluator)", figures.warm_share, "goal <= 3 s")
    figure("whole lab.up(), in process", figures.warm_total)
    figure("whole `drkit lab up` (CLI)", figures.warm_cli)
    figure("`drkit lab up` when already running (CLI)", figures.running_cli)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--up-runs", type=int, default=3)
    parser.add_argument("--port-base", type=int, default=27400)
    parser.add_argument("--probe-timeout", type=float, default=0.1)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="drkit-bench-cp-", dir="/var/tmp"))
    os.chmod(home, 0o755)
    env = {**os.environ, "DRKIT_HOME": str(home), "DRKIT_LAB_PORT_BASE": str(args.port_base)}
    env.pop("DRKIT_LAB_RUN", None)
    lab = Lab(home, LabSettings(ports=LabPorts(args.port_base)))
    try:
        show(measure(lab, env, args), args, home)
    finally:
        drkit(env, "lab", "down", "--purge")
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
