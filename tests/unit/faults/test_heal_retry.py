"""A fault's service stops answering: bounded heal retries with backoff (on a fake clock), the
watch that ends the drill, and messages that land in the `target unreachable` category."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from drkit.errors import ConfigError, HealFailed, TargetUnreachable
from drkit.faults.base import Registry
from drkit.faults.journal import FaultRecord, Journal, read_ledger, read_pointer
from drkit.faults.ledger import Ledger, heal_failed_message, heal_problem
from drkit.faults.reach import RETRY_WINDOW_ENV, HealRetry, Service, ServiceWatch
from drkit.faults.rollback import rollback
from drkit.measure.chain import read_chain
from drkit.measure.outcome import allure_categories

pytestmark = pytest.mark.unit


class FakeClock:
    """A monotonic clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def retry(self, window_s: float = 10.0) -> HealRetry:
        return HealRetry(window_s=window_s, clock=self, sleep=self.sleep)


class HeldByService:
    """A fault held by a service twin: its heal meets TargetUnreachable while the service is
    down; ``back_after`` heal calls bring it back (None: never)."""

    kind = "test.held_by_service"

    def __init__(self, back_after: int | None = 0, error: Exception | None = None) -> None:
        self.back_after, self.error = back_after, error
        self.calls, self.applied = 0, False

    @property
    def up(self) -> bool:
        return self.back_after is not None and self.calls >= self.back_after

    def params(self) -> dict[str, Any]:
        return {}

    def describe(self) -> str:
        return "a toxic on the twin"

    def depends_on(self) -> list[Service]:
        return [Service("Twin", "http://127.0.0.1:9", lambda: self.up)]

    def inject(self) -> None:
        self.applied = True

    def heal(self) -> None:
        self.calls += 1
        if self.error is not None:
            raise self.error
        if not self.up:
            raise TargetUnreachable("Twin at http://127.0.0.1:9 did not answer")
        self.applied = False

    def verify_injected(self) -> bool:
        return self.applied

    def verify_healed(self) -> bool:
        return not self.applied


def _record() -> FaultRecord:
    return FaultRecord(1, "run-1", "fault", HeldByService.kind, None, {}, "a toxic", False, 0, 0)


def _heal(tmp_path: Path, fault: HeldByService, clock: FakeClock) -> tuple[str | None, list]:
    journal = Journal(tmp_path / "ledger.jsonl")
    try:
        problem = heal_problem(fault, _record(), journal, 1.0, clock.retry())
    finally:
        journal.close()
    return problem, read_chain(tmp_path / "ledger.jsonl").records


def category_of(message: str) -> str:
    """The Allure category a failure message lands in (the first whose regex matches)."""
    for category in allure_categories():
        if re.match(category["messageRegex"], message):
            return str(category["name"])
    return "none"


def test_the_backoff_doubles_up_to_its_cap() -> None:
    retry = HealRetry(first_delay_s=0.5, factor=2.0, max_delay_s=4.0)
    assert [retry.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_a_service_back_within_the_window_completes_the_heal(tmp_path: Path) -> None:
    clock = FakeClock()
    fault = HeldByService(back_after=3)
    problem, events = _heal(tmp_path, fault, clock)
    assert problem is None and not fault.applied
    tried = [e for e in events if e["event"] == "heal_attempt"]
    assert [(e["attempt"], e["result"]) for e in tried] == [
        (1, "unreachable"),
        (2, "unreachable"),
        (3, "healed"),
    ]
    assert "error" not in tried[-1]
    assert events[-1]["event"] == "healed"
    assert clock.sleeps == [0.5, 1.0]


def test_a_service_that_stays_down_is_reported_after_a_bounded_window(tmp_path: Path) -> None:
    clock = FakeClock()
    fault = HeldByService(back_after=None)
    fault.applied = True
    problem, events = _heal(tmp_path, fault, clock)
    # attempts at 0, 0.5, 1.5, 3.5 and 7.5 s; a sixth would start at 11.5 s, past the 10 s
    assert clock.sleeps == [0.5, 1.0, 2.0, 4.0] and fault.calls == 5
    assert problem is not None
    assert problem.startswith("heal not verified: Twin unreachable at http://127.0.0.1:9 ")
    assert "5 attempt(s) over 7.5s" in problem
    names = [e["event"] for e in events]
    assert names == ["heal_attempt"] * 5 + ["heal_unreachable"]
    assert all(e["result"] == "unreachable" for e in events[:5])


def test_a_heal_that_fails_for_another_reason_is_not_retried(tmp_path: Path) -> None:
    clock = FakeClock()
    problem, events = _heal(tmp_path, HeldByService(error=RuntimeError("refused")), clock)
    assert problem == "heal raised RuntimeError: refused"
    assert [e["event"] for e in events] == ["heal_attempt", "heal_error"]
    assert clock.sleeps == []


def test_a_zero_window_tries_once(tmp_path: Path) -> None:
    clock = FakeClock()
    journal = Journal(tmp_path / "ledger.jsonl")
    problem = heal_problem(HeldByService(None), _record(), journal, 1.0, clock.retry(0.0))
    journal.close()
    assert problem is not None and problem.startswith("heal not verified")
    assert clock.sleeps == []


def test_the_window_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RETRY_WINDOW_ENV, "42")
    assert HealRetry.from_env().window_s == 42.0
    monkeypatch.setenv(RETRY_WINDOW_ENV, "forever")
    with pytest.raises(ConfigError, match=f"{RETRY_WINDOW_ENV}='forever': use seconds"):
        HealRetry.from_env()


def test_an_unverified_heal_is_target_unreachable_not_a_fault_that_refused(tmp_path: Path) -> None:
    problem = "heal not verified: Toxiproxy unreachable at http://127.0.0.1:8474 (5 attempt(s))"
    message = heal_failed_message(_record(), tmp_path / "ledger.jsonl", problem)
    assert message.startswith("target unreachable: heal not verified: Toxiproxy unreachable")
    assert "restart the lab with `drkit lab up`, then run `drkit rollback`" in message
    assert category_of(message) == "target unreachable"
    refused = heal_failed_message(_record(), tmp_path / "ledger.jsonl", "it reads back applied")
    assert category_of(refused) == "fault not healed"


def test_the_ledger_leaves_the_fault_open_and_rollback_heals_it_later(tmp_path: Path) -> None:
    run_dir, state = tmp_path / "runs" / "run-1", tmp_path / "state"
    fault = HeldByService(back_after=None)
    clock = FakeClock()
    ledger = Ledger(run_dir, state_dir=state, heal_retry=clock.retry())
    with pytest.raises(HealFailed) as failed, ledger:
        record = ledger.inject(fault)
        with pytest.raises(HealFailed):
            ledger.heal(record)  # the whole window: five attempts
        assert fault.calls == 5 and len(clock.sleeps) == 4
        with pytest.raises(HealFailed):
            ledger.heal(record)  # its window is spent in this run: one attempt, no wait
        assert fault.calls == 6 and len(clock.sleeps) == 4
    assert fault.calls == 7  # and one more on the way out
    message = str(failed.value)
    assert message.startswith("target unreachable: 1 fault(s) may still be applied: heal not")
    assert "could not heal" not in message and category_of(message) == "target unreachable"
    assert fault.applied and len(read_ledger(run_dir / "ledger.jsonl").open_faults) == 1
    assert read_pointer(state) is not None  # `drkit rollback` finds it

    fault.back_after = 0  # the lab was restarted
    registry = Registry()
    registry.register(HeldByService.kind, lambda: fault)
    report = rollback(state, registry=registry, heal_retry=clock.retry())
    assert report.ok and [r.id for r in report.healed] == [1]
    assert not fault.applied and read_pointer(state) is None


def test_the_watch_calls_a_service_lost_after_misses_in_a_row() -> None:
    up = {"twin": True}
    service = Service("Twin", "http://127.0.0.1:9", lambda: up["twin"])
    lost: list[str] = []
    watch = ServiceWatch(lambda: [(service, "[1] a toxic")], lost.append, 1.0, misses=3)
    up["twin"] = False
    assert watch.check_once() is None and watch.check_once() is None
    up["twin"] = True  # one answer resets the count
    assert watch.check_once() is None
    up["twin"] = False
    assert [watch.check_once() for _ in range(3)][-1] is not None
    (message,) = lost
    assert message.startswith("target unreachable: Twin at http://127.0.0.1:9 stopped answering")
    assert "while the drill held [1] a toxic" in message and "`drkit lab up`" in message


def test_a_probe_that_raises_counts_as_no_answer() -> None:
    def broken() -> bool:
        raise OSError("connection refused")

    service = Service("Twin", "http://127.0.0.1:9", broken)
    lost: list[str] = []
    watch = ServiceWatch(lambda: [(service, "[1] a toxic")], lost.append, 1.0, misses=1)
    assert watch.check_once() is not None and len(lost) == 1


def test_a_dead_service_ends_the_drill_instead_of_letting_it_run_blind(tmp_path: Path) -> None:
    """A drill sleeping through its window is interrupted within the watch's few misses."""
    fault = HeldByService(back_after=0)
    ledger = Ledger(
        tmp_path / "runs" / "run-1",
        state_dir=tmp_path / "state",
        heal_retry=FakeClock().retry(),
        watch_interval_s=0.05,
        watch_misses=2,
    )
    started = time.monotonic()
    lost = re.escape("target unreachable: Twin at http://127.0.0.1:9 stopped answering")
    with pytest.raises(TargetUnreachable, match=lost), ledger:
        ledger.inject(fault)
        fault.back_after = None  # the service dies mid-drill
        time.sleep(30)
    assert time.monotonic() - started < 10
    events = [e["event"] for e in read_chain(ledger.path).records]
    assert "target_unreachable" in events and ledger.interrupted_by is None
