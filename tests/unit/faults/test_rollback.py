"""rollback: a fresh process heals what a killed run left open, and only that, idempotently."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from drkit.errors import OpenFaultsRemain
from drkit.faults.base import FAULTS, Registry
from drkit.faults.journal import pointer_path, read_ledger
from drkit.faults.ledger import Ledger, ensure_no_open_faults
from drkit.faults.rollback import RunStillRunning, rollback
from drkit.faults.twins import FileFlagFault, Promote
from drkit.measure.twins import WEST, TwoRegionService

pytestmark = pytest.mark.unit

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from drkit.faults.ledger import Ledger
    from drkit.faults.twins import FileFlagFault

    run_dir, state_dir, flag, when = sys.argv[1:5]

    class KilledDuringInject(FileFlagFault):
        def inject(self):
            if when == "after":
                super().inject()
            os.kill(os.getpid(), signal.SIGKILL)

    with Ledger(Path(run_dir), state_dir=Path(state_dir)) as ledger:
        ledger.inject(KilledDuringInject(flag))
    """
)


def _run_killed_child(tmp_path: Path, when: str) -> tuple[Path, Path]:
    state, flag = tmp_path / "state", tmp_path / "flag"
    args = [sys.executable, "-c", CHILD, str(tmp_path / "run-1"), str(state), str(flag), when]
    child = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert child.returncode == -signal.SIGKILL, child.stderr
    return state, flag


def _rollback_fresh_process(state: Path) -> tuple[int, str]:
    args = [sys.executable, "-m", "drkit.faults", "rollback", "--state-dir", str(state)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("where", ["this process", "a fresh process"])
def test_a_run_killed_around_inject_is_healed_by_rollback(
    tmp_path: Path, when: str, where: str
) -> None:
    state, flag = _run_killed_child(tmp_path, when)
    assert flag.exists() == (when == "after")
    with pytest.raises(OpenFaultsRemain, match="drkit rollback"):
        ensure_no_open_faults(state)
    if where == "this process":
        report = rollback(state)
        assert report.ok and [r.description for r in report.healed] == [f"flag file {flag} present"]
    else:
        code, output = _rollback_fresh_process(state)
        assert code == 0 and f"healed [1] flag file {flag} present" in output, output
    assert not flag.exists() and not pointer_path(state).exists()
    events = read_ledger(tmp_path / "run-1" / "ledger.jsonl").events[1]
    # the kill came before 'injected' was journalled
    assert events == ("intent", "heal_attempt", "healed")
    ensure_no_open_faults(state)


def test_rollback_is_idempotent(tmp_path: Path) -> None:
    state, flag = _run_killed_child(tmp_path, "after")
    first = rollback(state)
    flag.write_text("someone else's file")  # not ours any more: a second rollback leaves it
    second = rollback(state)
    assert len(first.healed) == 1
    assert second.ok and second.healed == () and second.still_open == ()
    assert "nothing to heal" in second.summary()
    assert flag.exists()


def _abandoned_run(tmp_path: Path, *faults: Any, registry: Registry = FAULTS) -> Ledger:
    """A run that injected faults and died without healing (its ledger never exits)."""
    ledger = Ledger(
        tmp_path / "run-1", state_dir=tmp_path / "state", registry=registry, handle_signals=False
    )
    ledger.__enter__()
    for fault in faults:
        ledger.inject(fault)
    return ledger


def test_rollback_heals_newest_first(tmp_path: Path) -> None:
    flags = [FileFlagFault(str(tmp_path / f"flag{n}")) for n in range(3)]
    _abandoned_run(tmp_path, *flags)
    report = rollback(tmp_path / "state")
    assert [r.id for r in report.healed] == [3, 2, 1]
    assert not any(f.path.exists() for f in flags)


class StuckFlag(FileFlagFault):
    """A flag whose heal does nothing while ``<path>.stuck`` exists."""

    kind = "test.stuck_flag"

    def heal(self) -> None:
        if not Path(f"{self.path}.stuck").exists():
            super().heal()


def _registry_with(*classes: type) -> Registry:
    registry = Registry()
    for cls in classes:
        registry.register(cls.kind, cls)  # type: ignore[attr-defined]
    return registry


def test_a_heal_that_fails_stays_open_and_a_later_rollback_finishes_it(tmp_path: Path) -> None:
    registry = _registry_with(FileFlagFault, StuckFlag)
    stuck = StuckFlag(str(tmp_path / "stuck-flag"))
    Path(f"{stuck.path}.stuck").touch()
    _abandoned_run(tmp_path, FileFlagFault(str(tmp_path / "flag")), stuck, registry=registry)
    report = rollback(tmp_path / "state", registry=registry)
    assert not report.ok and report.exit_code == 1
    assert [r.id for r in report.healed] == [1]
    ((record, why),) = report.still_open
    assert record.id == 2 and f"Still applied: flag file {stuck.path} present" in why
    assert "STILL APPLIED" in report.summary()
    assert pointer_path(tmp_path / "state").exists()
    Path(f"{stuck.path}.stuck").unlink()  # the cause is fixed
    again = rollback(tmp_path / "state", registry=registry)
    assert again.ok and [r.id for r in again.healed] == [2] and not stuck.path.exists()


def test_a_kind_nobody_can_rebuild_stays_open_with_the_reason(tmp_path: Path) -> None:
    registry = _registry_with(StuckFlag)
    _abandoned_run(tmp_path, StuckFlag(str(tmp_path / "flag")), registry=registry)
    report = rollback(tmp_path / "state", registry=Registry())
    ((_, why),) = report.still_open
    assert "could not rebuild it" in why and "test.stuck_flag" in why


def test_rollback_never_undoes_a_recovery_action(tmp_path: Path) -> None:
    service = TwoRegionService()
    ledger = _abandoned_run(tmp_path, FileFlagFault(str(tmp_path / "flag")))
    ledger.apply(Promote(service, WEST))
    report = rollback(tmp_path / "state")
    assert [r.kind for r in report.healed] == ["twin.file_flag"]
    assert service.is_primary(WEST)
    state = read_ledger(tmp_path / "run-1" / "ledger.jsonl")
    assert [r.kind for r in state.applied_recovery] == ["twin.promote"]


def test_rollback_refuses_while_the_owning_run_is_alive(tmp_path: Path) -> None:
    _abandoned_run(tmp_path, FileFlagFault(str(tmp_path / "flag")))
    pointer = pointer_path(tmp_path / "state")
    body = json.loads(pointer.read_text())
    pointer.write_text(json.dumps({**body, "pid": os.getppid()}))  # a live process owns it
    with pytest.raises(RunStillRunning, match="SIGTERM"):
        rollback(tmp_path / "state")
    assert rollback(tmp_path / "state", force=True).ok


def test_a_missing_ledger_is_reported_not_ignored(tmp_path: Path) -> None:
    _abandoned_run(tmp_path, FileFlagFault(str(tmp_path / "flag")))
    (tmp_path / "run-1" / "ledger.jsonl").unlink()
    report = rollback(tmp_path / "state")
    assert not report.ok and "missing" in report.summary()
    assert pointer_path(tmp_path / "state").exists()


def test_an_edited_ledger_is_healed_as_far_as_it_can_be_trusted(tmp_path: Path) -> None:
    flags = [FileFlagFault(str(tmp_path / f"flag{n}")) for n in range(2)]
    _abandoned_run(tmp_path, *flags)
    path = tmp_path / "run-1" / "ledger.jsonl"
    lines = path.read_text().splitlines()
    lines[0] = lines[0].replace('"run"', '"RUN"')
    path.write_text("".join(line + "\n" for line in lines))
    report = rollback(tmp_path / "state")
    assert not report.ok and "cannot trust ledger" in report.summary()
    assert pointer_path(tmp_path / "state").exists()


def test_with_no_pointer_there_is_nothing_to_do(tmp_path: Path) -> None:
    report = rollback(tmp_path / "state")
    assert report.ok and report.run_id is None and "nothing to heal" in report.summary()
