"""The fault ledger as a context manager: journal before inject, heal in reverse on the way out.

Phases of ``Ledger.inject``: (1) the open-faults pointer and the fault's record are written
and fsynced, (2) the fault is injected, (3) it is read back. Leaving the ``with`` block (normal
exit, exception, SIGINT, SIGTERM) heals the open faults in reverse order and reads each heal
back; a heal that fails leaves its record open and the error says what is still applied.
Recovery actions are recorded too, but only ``undo`` (failback, lab reset) reverses them.
While faults are open, the services holding them (Toxiproxy, moto) are watched: one that stops
answering ends the drill with TargetUnreachable, and heals that meet it are retried with
bounded backoff (``drkit.faults.reach``), each attempt journalled.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Literal, NoReturn, TypeVar

from drkit import paths
from drkit.errors import (
    DrillError,
    FaultInjectionFailed,
    HealFailed,
    OpenFaultsRemain,
    TargetUnreachable,
)
from drkit.faults.base import (
    FAULTS,
    CallTimedOut,
    Fault,
    RecoveryAction,
    Registry,
    call_bounded,
)
from drkit.faults.journal import (
    LEDGER_FILE,
    Category,
    FaultRecord,
    Journal,
    clear_pointer,
    pointer_path,
    process_identity,
    read_ledger,
    read_pointer,
    write_pointer,
)
from drkit.faults.reach import (
    RESTART_ADVICE,
    HealRetry,
    Service,
    ServiceWatch,
    answers,
    services_of,
    unreachable_cause,
)
from drkit.measure.history import NEMESIS_PROCESS, History, Op, system_clock

T = TypeVar("T")
ROLLBACK_COMMAND = "drkit rollback"
ORCHESTRATOR_PROCESS = "orchestrator"
HEAL_NOT_VERIFIED = "heal not verified"
UNREACHABLE = "target unreachable: "
KICK_SIGNAL = signal.SIGUSR1  # the service watch's wake-up call to the main thread


class DrillInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; open faults were healed before this propagated.

    A KeyboardInterrupt (not a DrillError) so that no ``except Exception`` swallows it and
    pytest stops the session, as it does on Ctrl-C.
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"drill interrupted by {signal.Signals(signum).name}")


class RecoveryFailed(DrillError):
    """A recovery action (fence, promote, DNS switch) could not be applied or read back."""


def ensure_no_open_faults(state_dir: Path | None = None) -> None:
    """Refuse (OpenFaultsRemain) while an earlier run's faults are open; drop a stale pointer."""
    state = Path(state_dir) if state_dir is not None else paths.state_dir()
    pointer = read_pointer(state)
    if pointer is None:
        return
    ledger = Path(pointer["ledger"])
    if not ledger.exists():
        raise OpenFaultsRemain(
            f"{pointer_path(state)} names run {pointer.get('run_id')} with ledger {ledger}, which "
            "is missing, so its faults may still be applied; check the target by hand, then "
            f"delete {pointer_path(state)}"
        )
    open_faults = read_ledger(ledger).open_faults
    if not open_faults:
        clear_pointer(state, ledger)
        return
    listing = "; ".join(r.label() for r in open_faults)
    raise OpenFaultsRemain(
        f"run {pointer.get('run_id')} (pid {pointer.get('pid')}) left {len(open_faults)} "
        f"fault(s) open in {ledger}: {listing}; heal them with `{ROLLBACK_COMMAND}` "
        "before starting a new run"
    )


def heal_problem(
    fault: Fault,
    record: FaultRecord,
    journal: Journal,
    timeout: float,
    retry: HealRetry | None = None,
) -> str | None:
    """Heal and read back, retried with backoff while the fault's service does not answer;
    every attempt and the result are journalled. None when healed, else what is still wrong."""
    retry = retry or HealRetry.from_env()
    started = retry.clock()
    attempt = 0
    while True:
        attempt += 1
        result, problem, unreachable = _heal_once(fault, record, timeout)
        detail = {"attempt": attempt, "result": result} | ({"error": problem} if problem else {})
        journal.event("heal_attempt", record.id, **detail)
        if unreachable is None:
            break
        pause = retry.delay(attempt)
        elapsed = retry.clock() - started
        if elapsed + pause > retry.window_s:
            problem = _not_verified(fault, unreachable, attempt, elapsed)
            journal.event("heal_unreachable", record.id, attempts=attempt, error=problem)
            return problem
        retry.sleep(pause)
    if result == "healed":
        journal.event("healed", record.id)
        return None
    event = "heal_error" if result == "error" else "heal_unverified"
    journal.event(event, record.id, error=problem)
    return problem


def _heal_once(
    fault: Fault, record: FaultRecord, timeout: float
) -> tuple[str, str | None, TargetUnreachable | None]:
    """One heal and its read-back: (result, problem, the unreachable service's error)."""
    try:
        call_bounded(fault.heal, timeout, f"heal of {record.label()}")
        healed = call_bounded(fault.verify_healed, timeout, f"verify_healed of {record.label()}")
    except Exception as exc:
        unreachable = unreachable_cause(exc)
        problem = f"heal raised {type(exc).__name__}: {exc}"
        return ("unreachable" if unreachable else "error"), problem, unreachable
    if not healed:
        return "unverified", "verify_healed() reads it back as still applied", None
    return "healed", None, None


def _not_verified(fault: Fault, exc: TargetUnreachable, attempts: int, elapsed: float) -> str:
    down = [s for s in services_of(fault) if not answers(s)]
    who = f"{down[0].name} unreachable at {down[0].address}" if down else "target unreachable"
    return f"{HEAL_NOT_VERIFIED}: {who} ({attempts} attempt(s) over {elapsed:.1f}s; last: {exc})"


def heal_failed_message(record: FaultRecord, ledger: Path, problem: str) -> str:
    if problem.startswith(HEAL_NOT_VERIFIED):
        return (
            f"{UNREACHABLE}{problem}. {record.label()} of run {record.run_id} may still "
            f"be applied ({record.description}); its record stays open in {ledger}, named by "
            f"the open-faults pointer: {RESTART_ADVICE}"
        )
    return (
        f"could not heal {record.label()} of run {record.run_id}: {problem}. Still applied: "
        f"{record.description}. Its record stays open in {ledger}; fix the cause and run "
        f"`{ROLLBACK_COMMAND}`, or remove the fault by hand"
    )


class Ledger:
    """Journals faults and recovery actions of one run, and heals open faults on exit."""

    def __init__(
        self,
        run_dir: Path,
        *,
        run_id: str | None = None,
        state_dir: Path | None = None,
        history: History | None = None,
        registry: Registry = FAULTS,
        call_timeout: float = 10.0,
        handle_signals: bool = True,
        heal_retry: HealRetry | None = None,
        watch_interval_s: float = 1.0,
        watch_misses: int = 3,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LEDGER_FILE
        self.run_id = run_id or self.run_dir.name
        self.state_dir = Path(state_dir) if state_dir is not None else paths.state_dir()
        self.history = history
        self.registry = registry
        self.call_timeout = call_timeout
        self._handle_signals = handle_signals
        self._journal: Journal | None = None
        self._records: list[FaultRecord] = []
        self._live: dict[int, Fault | RecoveryAction] = {}
        self._closed: set[int] = set()
        self._next_id = 1
        self._shield_depth = 0
        self._pending: int | None = None
        self._previous: dict[int, Any] = {}
        self._restored: dict[int, Any] = {}
        self.heal_retry = heal_retry or HealRetry.from_env()
        self._watch_every, self._watch_misses = watch_interval_s, watch_misses
        self._services: dict[int, tuple[Service, ...]] = {}
        self._window_spent: set[int] = set()
        self._watch: ServiceWatch | None = None
        self.unreachable: str | None = None  # why the drill ended, once a fault's service died
        self._raised_unreachable = False

    @classmethod
    def for_run(cls, run_id: str, **kwargs: Any) -> Ledger:
        """The ledger of run ``run_id`` in its folder under ``drkit.paths.runs_dir()``."""
        return cls(paths.runs_dir() / run_id, run_id=run_id, **kwargs)

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> Ledger:
        ensure_no_open_faults(self.state_dir)
        self._shield_depth, self._pending = 0, None  # a ledger object may be entered again
        if self.path.exists():
            self._next_id = read_ledger(self.path).next_id
        self._journal = Journal(self.path)
        self._journal.event("run", run_id=self.run_id, **process_identity())
        self.interrupted_by: str | None = None  # SIGINT or SIGTERM, once one arrives
        self.unreachable, self._raised_unreachable = None, False
        self._install_signals()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._shield_depth += 1  # from here on a signal is only noted
        self._stop_watch()
        try:
            failure = self._heal_on_exit()
        finally:
            self._restore_signals()
            self._close()
        self._finish(exc, failure)

    def _heal_on_exit(self) -> HealFailed | None:
        try:
            self.heal_all()
        except HealFailed as failure:
            return failure
        return None

    def _finish(self, exc: BaseException | None, failure: HealFailed | None) -> None:
        if failure is not None and exc is not None:
            exc.add_note(str(failure))
        elif failure is not None:
            raise failure
        if self._pending is not None and exc is None:
            raise DrillInterrupted(self._pending)
        if self._pending is not None and exc is not None:
            exc.add_note(f"{signal.Signals(self._pending).name} also arrived while healing")
        if isinstance(exc, DrillInterrupted):
            self._chain_previous_handler(exc.signum)

    def _close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        if not self.open_faults:
            clear_pointer(self.state_dir, self.path)

    @property
    def journal(self) -> Journal:
        if self._journal is None:
            raise DrillError(
                f"ledger {self.path} is not open; use it as `with Ledger(...) as ledger:`"
            )
        return self._journal

    @property
    def records(self) -> tuple[FaultRecord, ...]:
        return tuple(self._records)

    @property
    def open_faults(self) -> tuple[FaultRecord, ...]:
        return tuple(r for r in self._records if r.category == "fault" and r.id not in self._closed)

    # -- faults ----------------------------------------------------------------------------

    def inject(self, fault: Fault, *, disaster: bool = False) -> FaultRecord:
        """Journal, inject and read back ``fault``; ``disaster`` marks the RTO/RPO start."""
        with self._shielded():
            record = self._intend(fault, "fault", disaster)
            op = self._invoke(record, "inject")
            try:
                self._call(fault.inject, record, "inject")
                in_place = self._call(fault.verify_injected, record, "verify_injected")
            except Exception as exc:
                self._inject_failed(record, op, f"{type(exc).__name__}: {exc}", exc)
            if not in_place:
                self._inject_failed(
                    record, op, "verify_injected() reads it back as not applied", None
                )
            self.journal.event("injected", record.id)
            self._complete(op, "ok")
            return record

    def _inject_failed(
        self, record: FaultRecord, op: Op | None, problem: str, cause: BaseException | None
    ) -> NoReturn:
        self.journal.event("inject_error", record.id, error=problem)
        self._complete(op, "info" if cause is not None else "fail", problem)
        cleanup = self._await_stray_inject(record, cause) or self._heal_quietly(record)
        raise FaultInjectionFailed(
            f"could not inject {record.label()} in run {self.run_id}: {problem}; {cleanup}"
        ) from cause

    def _await_stray_inject(self, record: FaultRecord, cause: BaseException | None) -> str | None:
        """A timed-out inject may still land: heal only once it has returned."""
        if not isinstance(cause, CallTimedOut):
            return None
        cause.worker.join(self._timeout_of(record))
        if not cause.worker.is_alive():
            return None
        self.journal.event("inject_still_running", record.id)
        return (
            "the inject call is still running, so healing now could be undone by it; the "
            f"record stays open: once it returns, run `{ROLLBACK_COMMAND}`"
        )

    def _heal_quietly(self, record: FaultRecord) -> str:
        try:
            self.heal(record)
        except HealFailed as failure:
            return f"and healing what may be half-applied failed: {failure}"
        return "what may have been half-applied was healed"

    def heal(self, record: FaultRecord) -> None:
        """Heal one fault and read it back; HealFailed (record left open) says what remains."""
        if record.id in self._closed:
            return
        fault = self._live[record.id]
        assert isinstance(fault, Fault)
        with self._shielded():
            op = self._invoke(record, "heal")
            # a record whose retry window already ran out in this run gets one attempt more
            spent = record.id in self._window_spent
            retry = replace(self.heal_retry, window_s=0.0) if spent else self.heal_retry
            problem = heal_problem(fault, record, self.journal, self._timeout_of(record), retry)
            if problem is not None and problem.startswith(HEAL_NOT_VERIFIED):
                self._window_spent.add(record.id)
            if problem is not None:
                self._complete(op, "info", problem)
                raise HealFailed(heal_failed_message(record, self.path, problem))
            self._closed.add(record.id)
            self._complete(op, "ok")

    def heal_all(self) -> None:
        """Heal every open fault, newest first; one HealFailed lists all that remain."""
        problems = []
        for record in reversed(self.open_faults):
            try:
                self.heal(record)
            except HealFailed as failure:
                problems.append(str(failure))
        if not problems:
            return
        if all(p.startswith(UNREACHABLE) for p in problems):  # the service, not the faults
            shown = [p.removeprefix(UNREACHABLE) for p in problems]
            raise HealFailed(
                f"{UNREACHABLE}{len(problems)} fault(s) may still be applied: " + " | ".join(shown)
            )
        raise HealFailed(f"{len(problems)} fault(s) still applied: " + " | ".join(problems))

    # -- recovery actions ------------------------------------------------------------------

    def apply(self, action: RecoveryAction) -> FaultRecord:
        """Apply and read back a recovery action; its completion marks its RTO phase."""
        with self._shielded():
            record = self._intend(action, "recovery", False)
            op = self._invoke(record, "apply", action.phase)
            try:
                self._call(action.apply, record, "apply")
                applied = self._call(action.verify_applied, record, "verify_applied")
            except Exception as exc:
                self._recovery_failed(record, op, f"{type(exc).__name__}: {exc}", exc)
            if not applied:
                self._recovery_failed(
                    record, op, "verify_applied() reads it back as not applied", None
                )
            self.journal.event("applied", record.id)
            self._complete(op, "ok")
            return record

    def _recovery_failed(
        self, record: FaultRecord, op: Op | None, problem: str, cause: BaseException | None
    ) -> NoReturn:
        self.journal.event("apply_error", record.id, error=problem)
        self._complete(op, "info" if cause is not None else "fail", problem)
        raise RecoveryFailed(
            f"recovery step {record.label()} failed in run {self.run_id}: {problem}"
        ) from cause

    def undo(self, record: FaultRecord) -> None:
        """Undo a recovery action (failback and reset only; rollback never does this)."""
        action = self._live[record.id]
        assert isinstance(action, RecoveryAction)
        with self._shielded():
            self._call(action.undo, record, "undo")
            if not self._call(action.verify_undone, record, "verify_undone"):
                self.journal.event("undo_unverified", record.id)
                raise RecoveryFailed(f"undo of {record.label()} did not take: still applied")
            self.journal.event("undone", record.id)
            self._closed.add(record.id)

    # -- helpers ---------------------------------------------------------------------------

    def _intend(
        self, thing: Fault | RecoveryAction, category: Category, disaster: bool
    ) -> FaultRecord:
        wall, mono = system_clock()
        record = FaultRecord(
            self._next_id, self.run_id, category, thing.kind, self.registry.module_of(thing.kind),
            thing.params(), thing.describe(), disaster, wall, mono,
        )  # fmt: skip
        self._next_id += 1
        if category == "fault":
            write_pointer(self.state_dir, self.run_id, self.path)
        self.journal.event("intent", record.id, record=record.to_json())
        self._records.append(record)
        self._live[record.id] = thing
        if category == "fault" and (services := services_of(thing)):
            self._services[record.id] = services
            self._start_watch()
        return record

    def _timeout_of(self, record: FaultRecord) -> float:
        return float(getattr(self._live[record.id], "timeout", self.call_timeout))

    def _call(self, fn: Callable[[], T], record: FaultRecord, step: str) -> T:
        return call_bounded(fn, self._timeout_of(record), f"{step} of {record.label()}")

    def _invoke(self, record: FaultRecord, step: str, phase: str | None = None) -> Op | None:
        if self.history is None:
            return None
        if record.category == "recovery":
            value = {"phase": phase, "action": record.description, "record": record.id}
            return self.history.invoke(ORCHESTRATOR_PROCESS, "recovery", value)
        value = {
            "fault": record.description,
            "f": step,
            "record": record.id,
            "disaster": record.disaster,
        }
        return self.history.invoke(NEMESIS_PROCESS, "fault", value)

    def _complete(
        self, op: Op | None, kind: Literal["ok", "fail", "info"], error: str | None = None
    ) -> None:
        if op is not None and self.history is not None:
            self.history.complete(op, kind, error=error)

    # -- the services that hold the faults -------------------------------------------------

    def _start_watch(self) -> None:
        if self._watch is None:
            self._watch = ServiceWatch(
                self._held, self._service_lost, self._watch_every, self._watch_misses
            ).start()

    def _stop_watch(self) -> None:
        if self._watch is not None and not self._watch.stop() and KICK_SIGNAL in self._previous:
            self._previous[KICK_SIGNAL] = signal.SIG_IGN  # a late kick must not kill the run
        self._watch = None

    def _held(self) -> list[tuple[Service, str]]:
        """Each open fault's services, with the fault's label (read by the watch's thread)."""
        return [(s, r.label()) for r in self.open_faults for s in self._services.get(r.id, ())]

    def _service_lost(self, message: str) -> None:
        """From the watch's thread: wake the main thread with KICK_SIGNAL, whose handler
        raises TargetUnreachable there (a blocking sleep or wait is interrupted too)."""
        if self.unreachable is None:
            self.unreachable = message
            print(f"drkit: {message}", file=sys.stderr, flush=True)
        main = threading.main_thread().ident
        if self._raised_unreachable or KICK_SIGNAL not in self._previous or main is None:
            return  # no handler of ours: the heals meet the dead service and report it
        signal.pthread_kill(main, KICK_SIGNAL)

    def _raise_unreachable(self) -> None:
        """In the main thread; inside an inject or heal the call meets the dead service itself
        (and the watch asks again a moment later)."""
        if self._shield_depth > 0 or self._raised_unreachable or self.unreachable is None:
            return
        self._raised_unreachable = True
        self.journal.event("target_unreachable", error=self.unreachable)
        if self.history is not None:
            self.history.observe("target_unreachable", None, error=self.unreachable)
        raise TargetUnreachable(self.unreachable)

    # -- signals ---------------------------------------------------------------------------

    def _install_signals(self) -> None:
        if not self._handle_signals or threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous = signal.getsignal(signum)
            if previous is signal.SIG_IGN or previous is None:
                continue  # an ignored signal stays ignored; a C-level handler is left alone
            self._previous[signum] = previous
            signal.signal(signum, self._on_signal)
        if signal.getsignal(KICK_SIGNAL) is signal.SIG_DFL:  # only if nobody else uses it
            self._previous[KICK_SIGNAL] = signal.SIG_DFL
            signal.signal(KICK_SIGNAL, self._on_kick)

    def _restore_signals(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._restored = dict(self._previous)
        self._previous.clear()

    def _on_kick(self, signum: int, frame: FrameType | None) -> None:
        self._raise_unreachable()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.interrupted_by = self.interrupted_by or signal.Signals(signum).name
        if self._shield_depth > 0:
            self._pending = self._pending or signum
            return
        raise DrillInterrupted(signum)

    @contextmanager
    def _shielded(self) -> Iterator[None]:
        """Inject and heal run to completion; a signal arriving meanwhile is raised after."""
        self._shield_depth += 1
        try:
            yield
        finally:
            self._shield_depth -= 1
        if self._shield_depth == 0 and self._pending is not None:
            signum, self._pending = self._pending, None
            raise DrillInterrupted(signum)

    def _chain_previous_handler(self, signum: int) -> None:
        """After healing, hand the signal to the handler that was there before us."""
        previous = self._restored.get(signum)
        if callable(previous) and previous is not signal.default_int_handler:
            previous(signum, None)
