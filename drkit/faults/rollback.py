"""``rollback``: heal, from a fresh process, whatever faults a killed run left open.

It follows the state folder's pointer to the run's ledger, rebuilds each open fault from its
record through the registry, heals it newest first, reads the heal back and journals the
result in that same ledger. It never undoes recovery actions (fencing, promotion, DNS switch);
failback or a lab reset does. Running it again when nothing is open changes nothing. A heal
whose service does not answer is retried with bounded backoff, then left open and reported.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from drkit import paths
from drkit.errors import DrillError, LabError
from drkit.faults.base import FAULTS, Registry
from drkit.faults.journal import (
    FaultRecord,
    Journal,
    clear_pointer,
    pointer_path,
    process_identity,
    read_ledger,
    read_pointer,
)
from drkit.faults.ledger import heal_failed_message, heal_problem
from drkit.faults.reach import HealRetry


class RunStillRunning(DrillError):
    """The run that owns the open faults is alive; it heals them itself when stopped."""


@dataclass(frozen=True)
class RollbackReport:
    """What rollback did: healed records, records still open (and why), notes."""

    state_dir: Path
    run_id: str | None
    ledger: Path | None
    healed: tuple[FaultRecord, ...] = ()
    still_open: tuple[tuple[FaultRecord, str], ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when nothing recorded is left applied."""
        return not self.still_open and not any(n.startswith("cannot") for n in self.notes)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def summary(self) -> str:
        """A human account, one line per fault, ending with what to do next if anything."""
        lines = [
            f"rollback in {self.state_dir}: run {self.run_id or '-'}, ledger {self.ledger or '-'}"
        ]
        lines += [f"  healed {r.label()}" for r in self.healed]
        lines += [f"  STILL APPLIED {r.label()}: {why}" for r, why in self.still_open]
        lines += [f"  {note}" for note in self.notes]
        if not self.healed and not self.still_open and self.ok:
            lines.append("  nothing to heal: no open faults are recorded")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "run_id": self.run_id,
            "ledger": str(self.ledger) if self.ledger else None,
            "healed": [r.to_json() for r in self.healed],
            "still_open": [{"record": r.to_json(), "why": why} for r, why in self.still_open],
            "notes": list(self.notes),
        }


def rollback(
    state_dir: Path | None = None,
    *,
    registry: Registry = FAULTS,
    call_timeout: float = 10.0,
    force: bool = False,
    heal_retry: HealRetry | None = None,
) -> RollbackReport:
    """Heal the open faults of the run named by ``state_dir``'s pointer (default: DRKIT_HOME),
    and stop a drkit watcher that a drill on the aws target left running."""
    state = Path(state_dir) if state_dir is not None else paths.state_dir()
    note = stop_harness_watcher(state)  # first: a watcher must not act while faults heal
    report = _rollback(state, registry, call_timeout, force, heal_retry)
    return report if note is None else replace(report, notes=(note, *report.notes))


def stop_harness_watcher(state: Path) -> str | None:
    """On the aws target (a state folder with no lab in it) a drill runs drkit's watcher from
    the harness; a drill that did not end (SIGKILL, a crash) leaves it watching, ready to fail
    over on its own. Stop it and read it back stopped. The lab's watcher is the lab's (`drkit
    lab reset` ends it), so a lab's state folder is left alone. None: nothing was running."""
    from drkit.lab.lab import Lab
    from drkit.lab.watcher_component import WatcherComponent

    if Lab(state).meta():
        return None
    watcher = WatcherComponent(state)
    pid = watcher.pid()
    if pid is None:
        return None
    try:
        watcher.stop()  # SIGTERM, then SIGKILL; returns once the process is gone
    except LabError as exc:
        return f"cannot stop drkit's watcher (pid {pid}) left running by a drill: {exc}"
    return f"stopped drkit's watcher (pid {pid}), left running by a drill that did not end"


def _rollback(
    state: Path,
    registry: Registry,
    call_timeout: float,
    force: bool,
    heal_retry: HealRetry | None,
) -> RollbackReport:
    pointer = read_pointer(state)
    if pointer is None:
        return RollbackReport(state, None, None)
    run_id, ledger = pointer.get("run_id"), Path(pointer["ledger"])
    if not force and _alive(pointer):
        raise RunStillRunning(
            f"run {run_id} (pid {pointer['pid']}) still holds its faults; stop it with SIGTERM "
            "(it heals them on the way out) or, if that pid is not the run, roll back with force"
        )
    if not ledger.exists():
        note = (
            f"cannot read ledger {ledger}: it is missing; check the target by hand, then "
            f"delete {pointer_path(state)}"
        )
        return RollbackReport(state, run_id, ledger, notes=(note,))
    retry = heal_retry or HealRetry.from_env()
    return _heal_ledger(state, run_id, ledger, registry, call_timeout, retry)


def _heal_ledger(
    state: Path,
    run_id: str | None,
    ledger: Path,
    registry: Registry,
    timeout: float,
    retry: HealRetry,
) -> RollbackReport:
    replay = read_ledger(ledger)
    notes = []
    if replay.broken is not None:
        notes.append(
            f"cannot trust ledger {ledger} past line {replay.broken.line}: {replay.broken.reason}; "
            "faults recorded after it were not healed: inspect it, then delete "
            f"{pointer_path(state)}"
        )
    healed, still_open = [], []
    journal = Journal(ledger)
    try:
        journal.event("rollback", **process_identity())
        for record in reversed(replay.open_faults):
            problem = _heal_record(record, journal, registry, timeout, retry)
            if problem is None:
                healed.append(record)
            else:
                still_open.append((record, heal_failed_message(record, ledger, problem)))
    finally:
        journal.close()
    if not still_open and replay.broken is None:
        clear_pointer(state, ledger)
    return RollbackReport(state, run_id, ledger, tuple(healed), tuple(still_open), tuple(notes))


def _heal_record(
    record: FaultRecord, journal: Journal, registry: Registry, timeout: float, retry: HealRetry
) -> str | None:
    try:
        fault = registry.build(record.kind, record.params, record.module)
    except Exception as exc:
        problem = f"could not rebuild it: {exc}"
        journal.event("heal_error", record.id, error=problem)
        return problem
    return heal_problem(fault, record, journal, float(getattr(fault, "timeout", timeout)), retry)


def _alive(pointer: dict[str, Any]) -> bool:
    pid = pointer.get("pid")
    if (
        not isinstance(pid, int)
        or pid == os.getpid()
        or pointer.get("host") != socket.gethostname()
    ):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
