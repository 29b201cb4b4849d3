"""The ledger: journal before inject, heal in reverse, signals, failures that say what remains."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from drkit.errors import FaultInjectionFailed, HealFailed, OpenFaultsRemain
from drkit.faults.journal import pointer_path, read_ledger
from drkit.faults.ledger import DrillInterrupted, Ledger, ensure_no_open_faults
from drkit.faults.twins import FileFlagFault, Promote, RegionOutage
from drkit.measure.history import History
from drkit.measure.ops import find_disaster
from drkit.measure.twins import EAST, WEST, TwoRegionService

pytestmark = pytest.mark.unit


class Recorded:
    """An in-memory fault that logs its calls; ``stuck`` makes heal leave it applied."""

    kind = "test.recorded"

    def __init__(self, name: str, log: list[str], *, stuck: bool = False, **behaviour: Any) -> None:
        self.name, self.log, self.stuck = name, log, stuck
        self.applied = False
        self.behaviour = behaviour

    def params(self) -> dict[str, Any]:
        return {"name": self.name}

    def describe(self) -> str:
        return f"fault {self.name}"

    def inject(self) -> None:
        self.log.append(f"inject {self.name}")
        if "on_inject" in self.behaviour:
            self.behaviour["on_inject"]()
        self.applied = not self.behaviour.get("inject_does_nothing", False)

    def heal(self) -> None:
        self.log.append(f"heal {self.name}")
        if not self.stuck:
            self.applied = False

    def verify_injected(self) -> bool:
        return self.applied

    def verify_healed(self) -> bool:
        return not self.applied


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "runs" / "run-1", tmp_path / "state"


def _ledger(dirs: tuple[Path, Path], **kw: Any) -> Ledger:
    return Ledger(dirs[0], state_dir=dirs[1], **kw)


def test_the_record_and_the_pointer_are_on_disk_before_inject(dirs: tuple[Path, Path]) -> None:
    seen: dict[str, Any] = {}

    def look() -> None:
        seen["open"] = [r.description for r in read_ledger(dirs[0] / "ledger.jsonl").open_faults]
        seen["pointer"] = pointer_path(dirs[1]).exists()

    with _ledger(dirs) as ledger:
        ledger.inject(Recorded("a", [], on_inject=look))
    assert seen == {"open": ["fault a"], "pointer": True}
    assert not pointer_path(dirs[1]).exists()  # all healed: the pointer is gone


def test_open_faults_heal_in_reverse_order_on_exit(dirs: tuple[Path, Path]) -> None:
    log: list[str] = []
    with _ledger(dirs) as ledger:
        for name in "abc":
            ledger.inject(Recorded(name, log))
    assert log == ["inject a", "inject b", "inject c", "heal c", "heal b", "heal a"]
    state = read_ledger(dirs[0] / "ledger.jsonl")
    assert state.open_faults == () and state.broken is None


def test_faults_heal_on_an_exception_which_is_reraised(dirs: tuple[Path, Path]) -> None:
    log: list[str] = []
    with pytest.raises(RuntimeError, match="step failed"), _ledger(dirs) as ledger:
        ledger.inject(Recorded("a", log))
        raise RuntimeError("step failed")
    assert log == ["inject a", "heal a"]


def test_a_fault_healed_during_the_run_is_not_healed_again(dirs: tuple[Path, Path]) -> None:
    log: list[str] = []
    with _ledger(dirs) as ledger:
        record = ledger.inject(Recorded("a", log))
        ledger.heal(record)
        ledger.heal(record)
    assert log == ["inject a", "heal a"]


def test_a_failed_heal_says_what_is_still_applied_and_keeps_the_record_open(
    dirs: tuple[Path, Path],
) -> None:
    log: list[str] = []
    with pytest.raises(HealFailed) as failure, _ledger(dirs) as ledger:
        ledger.inject(Recorded("good", log))
        ledger.inject(Recorded("stuck", log, stuck=True))
    message = str(failure.value)
    assert "Still applied: fault stuck" in message and "drkit rollback" in message
    assert log[-2:] == ["heal stuck", "heal good"]  # the others are still healed
    state = read_ledger(dirs[0] / "ledger.jsonl")
    assert [r.description for r in state.open_faults] == ["fault stuck"]
    assert "heal_unverified" in state.events[state.open_faults[0].id]
    with pytest.raises(OpenFaultsRemain, match="drkit rollback"):
        ensure_no_open_faults(dirs[1])


def test_a_heal_failure_does_not_hide_the_exception_that_ended_the_run(
    dirs: tuple[Path, Path],
) -> None:
    with pytest.raises(RuntimeError) as raised, _ledger(dirs) as ledger:
        ledger.inject(Recorded("stuck", [], stuck=True))
        raise RuntimeError("step failed")
    assert any("Still applied: fault stuck" in note for note in raised.value.__notes__)


def test_an_injection_that_does_not_read_back_fails_and_is_cleaned_up(
    dirs: tuple[Path, Path],
) -> None:
    log: list[str] = []
    with _ledger(dirs) as ledger:
        with pytest.raises(FaultInjectionFailed, match="reads it back as not applied"):
            ledger.inject(Recorded("dud", log, inject_does_nothing=True))
        assert ledger.open_faults == ()
    assert log == ["inject dud", "heal dud"]


def _slow(seconds: float, log: list[str]) -> Recorded:
    fault = Recorded("slow", log, on_inject=lambda: time.sleep(seconds))
    fault.timeout = 0.2  # type: ignore[attr-defined]
    return fault


def test_a_slow_injection_is_bounded_and_healed_only_after_it_returns(
    dirs: tuple[Path, Path],
) -> None:
    log: list[str] = []
    fault = _slow(0.3, log)  # times out at 0.2 s, lands at 0.3 s, within the grace period
    with _ledger(dirs) as ledger, pytest.raises(FaultInjectionFailed, match="did not return"):
        ledger.inject(fault)
    assert log == ["inject slow", "heal slow"] and not fault.applied


def test_an_injection_still_running_keeps_its_record_open(dirs: tuple[Path, Path]) -> None:
    fault = _slow(0.8, [])  # still running after the 0.2 s timeout and 0.2 s of grace
    with _ledger(dirs) as ledger:
        with pytest.raises(FaultInjectionFailed, match="still running"):
            ledger.inject(fault)
        assert [r.description for r in ledger.open_faults] == ["fault slow"]
        time.sleep(0.8)  # it lands after all; the record is still open, so exit heals it
    assert not fault.applied
    events = read_ledger(dirs[0] / "ledger.jsonl").events[1]
    assert events == ("intent", "inject_error", "inject_still_running", "heal_attempt", "healed")


def test_a_new_run_is_refused_while_faults_are_open(dirs: tuple[Path, Path]) -> None:
    abandoned = _ledger(dirs, handle_signals=False).__enter__()  # a run killed mid-drill
    abandoned.inject(FileFlagFault(str(dirs[1].parent / "flag")))
    with pytest.raises(OpenFaultsRemain) as refused, _ledger(dirs):
        pass
    assert "flag file" in str(refused.value) and "`drkit rollback`" in str(refused.value)


def test_a_stale_pointer_with_nothing_open_does_not_block(dirs: tuple[Path, Path]) -> None:
    with _ledger(dirs) as ledger:
        ledger.inject(Recorded("a", []))
        pointer = pointer_path(dirs[1]).read_text()
    pointer_path(dirs[1]).write_text(pointer)  # killed after healing, before removing it
    ensure_no_open_faults(dirs[1])
    assert not pointer_path(dirs[1]).exists()


def test_sequential_ledgers_of_one_run_continue_ids_and_chain(dirs: tuple[Path, Path]) -> None:
    for name in "ab":
        with _ledger(dirs) as ledger:
            ledger.inject(Recorded(name, []))
    state = read_ledger(dirs[0] / "ledger.jsonl")
    assert [r.id for r in state.records] == [1, 2] and state.broken is None


def test_injections_and_recovery_are_written_to_the_history(dirs: tuple[Path, Path]) -> None:
    service, history = TwoRegionService(), History()
    with _ledger(dirs, history=history) as ledger:
        ledger.inject(Recorded("link", []))
        ledger.inject(RegionOutage(service, EAST), disaster=True)
        ledger.apply(Promote(service, WEST))
    disaster = find_disaster(history.ops)
    assert disaster is not None and disaster.fault == f"region {EAST} (127.0.1.10) down"
    marks = [op.value["phase"] for op in history.ops if op.kind == "recovery" and op.type == "ok"]
    assert marks == ["promotion"]


def test_recovery_actions_are_not_undone_on_exit_but_can_be_undone(
    dirs: tuple[Path, Path],
) -> None:
    service = TwoRegionService()
    with _ledger(dirs) as ledger:
        record = ledger.apply(Promote(service, WEST))
    assert service.is_primary(WEST)
    assert read_ledger(dirs[0] / "ledger.jsonl").applied_recovery == (record,)
    with _ledger(dirs) as failback:
        failback._live[record.id] = Promote(service, WEST)  # failback holds the live action
        failback.undo(record)
    assert not service.is_primary(WEST)


def test_sigterm_heals_then_hands_the_signal_to_the_previous_handler(
    dirs: tuple[Path, Path],
) -> None:
    log: list[str] = []
    received: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    try:
        with pytest.raises(DrillInterrupted, match="SIGTERM"), _ledger(dirs) as ledger:
            ledger.inject(Recorded("a", log))
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # interrupted by the signal
        assert log == ["inject a", "heal a"]
        assert received == [signal.SIGTERM]
        assert signal.getsignal(signal.SIGTERM) is not None
        assert signal.getsignal(signal.SIGTERM).__name__ == "<lambda>"  # type: ignore[union-attr]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_sigint_heals_and_reraises_as_a_keyboard_interrupt(dirs: tuple[Path, Path]) -> None:
    log: list[str] = []
    with pytest.raises(KeyboardInterrupt), _ledger(dirs) as ledger:
        ledger.inject(Recorded("a", log))
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
    assert log == ["inject a", "heal a"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_signal_during_inject_waits_until_the_fault_is_recorded(dirs: tuple[Path, Path]) -> None:
    log: list[str] = []
    fault = Recorded("a", log, on_inject=lambda: os.kill(os.getpid(), signal.SIGINT))
    with pytest.raises(DrillInterrupted), _ledger(dirs) as ledger:
        ledger.inject(fault)
        log.append("next step")  # never reached
    assert log == ["inject a", "heal a"]
    events = read_ledger(dirs[0] / "ledger.jsonl").events[1]
    assert events == ("intent", "injected", "heal_attempt", "healed")


def test_no_signal_handler_is_installed_outside_the_main_thread(dirs: tuple[Path, Path]) -> None:
    seen: list[object] = []
    before = signal.getsignal(signal.SIGTERM)

    def run() -> None:
        with _ledger(dirs) as ledger:
            ledger.inject(Recorded("a", []))
            seen.append(signal.getsignal(signal.SIGTERM))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert seen == [before]


def test_for_run_puts_the_ledger_in_the_run_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRKIT_RUNS_DIR", str(tmp_path / "runs"))
    ledger = Ledger.for_run("20261126T051729Z-3f9a", state_dir=tmp_path / "state")
    assert ledger.path == tmp_path / "runs" / "20261126T051729Z-3f9a" / "ledger.jsonl"
    assert ledger.run_id == "20261126T051729Z-3f9a"


def test_a_ledger_entered_again_still_heals_on_a_signal(dirs: tuple[Path, Path]) -> None:
    log: list[str] = []
    ledger = _ledger(dirs)
    with ledger:
        pass
    with pytest.raises(KeyboardInterrupt), ledger:
        ledger.inject(Recorded("a", log))
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
    assert log == ["inject a", "heal a"]
