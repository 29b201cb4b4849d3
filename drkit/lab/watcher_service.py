"""The watcher process: `python -m drkit.lab.watcher_service --state DIR [--dr-config F]`.

The lab runs it as a component; on the aws target with `data_plane = "aws"` the drill's harness
runs it from its own state folder, and it reaches the system through the config alone.

It watches the public health endpoint of the region the public name points at (Route 53
style: every `health_interval_s`, failover after `failure_threshold` failures in a row) and
runs an unplanned failover to the other region through the lab target. A sampler thread keeps
a recent replication sample, so the unplanned pre-flight judges from the last one before the
failure. Its recovery actions go to a ledger of its own under <state>/watcher/.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import httpx

from drkit.aws.config import load_config
from drkit.failover.monitor import ReplicationMonitor
from drkit.failover.orchestrator import FailoverOrchestrator
from drkit.failover.result import FailoverResult
from drkit.failover.verifier import DRVerifier
from drkit.failover.watcher import Watcher
from drkit.faults.ledger import Ledger
from drkit.lab.lab import Lab
from drkit.lab.watcher_component import STATUS_FILE
from drkit.paths import new_run_id
from drkit.targets.aws import AwsTarget, HybridAwsTarget
from drkit.targets.lab import LabTarget

SAMPLE_EVERY_S = 2.0


def health_check(url: str, timeout_s: float) -> str | None:
    """None when the endpoint answers 2xx or 3xx in time, else what went wrong."""
    try:
        response = httpx.get(url, timeout=timeout_s)
    except httpx.HTTPError as exc:
        return f"GET {url}: {type(exc).__name__}"
    return None if response.status_code < 400 else f"GET {url}: HTTP {response.status_code}"


def sample_once(verifier: DRVerifier) -> None:
    """One replication sample; kept as the baseline only if the primary answered. A failed
    sample is logged, and why it failed kept for the pre-flight's message (a wrong password
    shows there); the sampling goes on (the watcher must not lose its baseline)."""
    try:
        status = verifier.monitor.check_replication_lag()
    except Exception as exc:
        verifier.last_sample_problem = f"{type(exc).__name__}: {exc}"
        print(f"watcher: replication sample failed: {verifier.last_sample_problem}", flush=True)
        return
    if status.primary_reachable:
        verifier.last_good_sample = status
        verifier.last_sample_problem = None
    else:
        errors = status.detail.get("errors") or ["the primary did not answer"]
        verifier.last_sample_problem = "; ".join(str(e) for e in errors)


def sampler(verifier: DRVerifier, stop: threading.Event) -> None:
    while not stop.wait(SAMPLE_EVERY_S):
        sample_once(verifier)


def build(
    state: Path, sampling: threading.Event, dr_config: Path | None = None
) -> tuple[Watcher, DRVerifier]:
    target: LabTarget | AwsTarget
    if dr_config is None:
        target = LabTarget(Lab(state))
        fallback = "us-east-1"
    else:  # the aws target: its failover through the AWS APIs of the config
        config = load_config(dr_config)
        # data_plane = "lab": the hybrid set-up; else the config alone (no lab is touched)
        target = (
            HybridAwsTarget(Lab(state), config) if config.data_plane == "lab" else AwsTarget(config)
        )
        fallback = config.primary_region
    primary = target.writer_region() or fallback
    standby = next(r for r in target.regions() if r != primary)
    monitor = ReplicationMonitor(
        target.db_config(primary), target.db_config(standby), profile=target.profile, target=target
    )
    verifier = DRVerifier(monitor, target=target)
    profile = target.profile

    def fail_over() -> FailoverResult:
        sampling.set()  # the sampler stops: the pre-flight owns the monitor from here
        run_id = f"watcher-{new_run_id()}"
        with Ledger(
            state / "watcher" / run_id,
            run_id=run_id,
            state_dir=state / "watcher",
            handle_signals=False,
        ) as ledger:
            orchestrator = FailoverOrchestrator(verifier, ledger=ledger)
            return orchestrator.execute_failover(
                f"watcher: {primary} failed {profile.failure_threshold} health checks in a row",
                mode="unplanned",
            )

    url = target.api_url(primary) + "/health"
    watcher = Watcher(
        primary,
        lambda: health_check(url, profile.health_timeout_s),
        fail_over,
        interval_s=profile.health_interval_s,
        threshold=profile.failure_threshold,
        status_file=state / "run" / STATUS_FILE,
    )
    return watcher, verifier


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m drkit.lab.watcher_service")
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--dr-config", type=Path, default=None, help="the aws target's config")
    args = parser.parse_args(argv)
    stop, sampling_done = threading.Event(), threading.Event()
    watcher, verifier = build(args.state.resolve(), sampling_done, args.dr_config)

    def on_sigterm(signum: int, frame: object) -> None:
        stop.set()
        sampling_done.set()
        watcher.stop()

    signal.signal(signal.SIGTERM, on_sigterm)
    sample_once(verifier)
    threading.Thread(target=sampler, args=(verifier, sampling_done), daemon=True).start()
    watcher.run()
    stop.wait()  # stay up, reporting, until `lab watcher off` or reset
    return 0


if __name__ == "__main__":
    sys.exit(main())
