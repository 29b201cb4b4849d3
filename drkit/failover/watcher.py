"""The watcher: the failover automation under test.

Route 53 style: it health-checks the primary region's public endpoint every interval and runs
an unplanned failover after `threshold` consecutive failures, once. Between checks it keeps a
recent replication sample, so the unplanned pre-flight has the last sample before the failure.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from drkit.failover.result import FailoverResult


@dataclass
class WatcherState:
    state: str = "watching"  # watching | failing | failed_over | failover_failed | stopped
    watched_region: str = ""
    consecutive_failures: int = 0
    checks: int = 0
    last_check_at: float | None = None
    last_error: str = ""
    first_failure_at: float | None = None
    failover_started_at: float | None = None
    failover: dict[str, Any] = field(default_factory=dict)


class Watcher:
    """Runs `check` every `interval_s`; after `threshold` failures in a row, `fail_over` once."""

    def __init__(
        self,
        region: str,
        check: Callable[[], str | None],
        fail_over: Callable[[], FailoverResult],
        *,
        interval_s: float,
        threshold: int,
        sample: Callable[[], None] | None = None,
        status_file: Path | None = None,
    ) -> None:
        self.check = check
        self.fail_over = fail_over
        self.interval_s = interval_s
        self.threshold = threshold
        self.sample = sample
        self.status_file = status_file
        self.status = WatcherState(watched_region=region)
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> WatcherState:
        """Check on a fixed schedule until stopped or after the one failover."""
        next_at = time.monotonic()
        while not self._stop.is_set() and self.status.state in ("watching", "failing"):
            self.tick()
            next_at += self.interval_s
            self._stop.wait(max(0.0, next_at - time.monotonic()))
        if self.status.state in ("watching", "failing"):
            self.status.state = "stopped"
        self._write()
        return self.status

    def tick(self) -> None:
        """One health check, and the failover when the threshold is reached."""
        error = self._safe_check()
        s = self.status
        s.checks += 1
        s.last_check_at = time.time()
        if error is None:
            s.consecutive_failures, s.first_failure_at, s.state, s.last_error = (
                0,
                None,
                "watching",
                "",
            )
            self._sample()
        else:
            s.consecutive_failures += 1
            s.first_failure_at = s.first_failure_at or s.last_check_at
            s.state, s.last_error = "failing", error
            if s.consecutive_failures >= self.threshold:
                self._fail_over()
        self._write()

    def _safe_check(self) -> str | None:
        try:
            return self.check()
        except Exception as exc:  # any exception is a failed health check
            return f"{type(exc).__name__}: {exc}"

    def _sample(self) -> None:
        if self.sample is not None:
            try:
                self.sample()
            except Exception as exc:  # a failed sample must not stop the watching
                self.status.last_error = f"replication sample failed: {exc}"

    def _fail_over(self) -> None:
        self.status.failover_started_at = time.time()
        self._write()
        try:
            result = self.fail_over()
        except Exception as exc:
            self.status.state = "failover_failed"
            self.status.failover = {"error": f"{type(exc).__name__}: {exc}"}
            return
        self.status.state = "failed_over" if result.success else "failover_failed"
        self.status.failover = result.to_dict()

    def _write(self) -> None:
        if self.status_file is None:
            return
        tmp = self.status_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self.status), default=str))
        tmp.replace(self.status_file)
