"""The watcher fails over after its threshold of consecutive failures, and not before."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from drkit.failover.result import FailoverResult
from drkit.failover.watcher import Watcher

pytestmark = pytest.mark.unit


def scripted(outcomes: list[str | None]):  # type: ignore[no-untyped-def]
    answers = iter(outcomes)
    return lambda: next(answers)


def make(outcomes: list[str | None], threshold: int = 3, ok: bool = True, **kw):  # type: ignore[no-untyped-def]
    calls: list[str] = []

    def fail_over() -> FailoverResult:
        calls.append("failover")
        return FailoverResult(ok, 0.1, 0.0, datetime.now(UTC), mode="unplanned")

    watcher = Watcher(
        "us-east-1", scripted(outcomes), fail_over, interval_s=0.001, threshold=threshold, **kw
    )
    return watcher, calls


def test_failures_shorter_than_the_threshold_do_not_fail_over() -> None:
    watcher, calls = make([None, "timeout", "timeout", None, "timeout", "timeout", None])
    for _ in range(7):
        watcher.tick()
    assert calls == [] and watcher.status.state == "watching"


def test_the_threshold_th_consecutive_failure_fails_over_once(tmp_path: Path) -> None:
    status_file = tmp_path / "watcher.json"
    watcher, calls = make(
        [None, "timeout", "refused", "timeout", "timeout"], status_file=status_file
    )
    final = watcher.run()
    assert calls == ["failover"] and final.state == "failed_over" and final.checks == 4
    saved = json.loads(status_file.read_text())
    assert saved["state"] == "failed_over" and saved["failover"]["mode"] == "unplanned"


def test_an_exception_in_the_check_is_a_failure() -> None:
    def boom() -> str | None:
        raise ConnectionError("no route")

    calls: list[int] = []
    watcher = Watcher(
        "us-east-1",
        boom,
        lambda: (
            calls.append(1)
            or FailoverResult(  # type: ignore[func-returns-value]
                True, 0, 0, datetime.now(UTC)
            )
        ),
        interval_s=0.001,
        threshold=2,
    )
    watcher.tick()
    assert watcher.status.last_error == "ConnectionError: no route" and calls == []
    watcher.tick()
    assert calls == [1]


def test_a_failed_failover_is_reported_as_such() -> None:
    watcher, _ = make(["x", "x"], threshold=2, ok=False)
    assert watcher.run().state == "failover_failed"


def test_healthy_checks_take_replication_samples() -> None:
    samples: list[int] = []
    watcher, _ = make([None, None, "x"], threshold=5, sample=lambda: samples.append(1))
    for _ in range(3):
        watcher.tick()
    assert samples == [1, 1]
