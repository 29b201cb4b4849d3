"""The ledger file and the open-faults pointer: writing events, replaying them, the pointer.

``ledger.jsonl`` in the run folder is hash-chained like the history and fsynced on every
event. An ``intent`` event carries the whole ``FaultRecord`` (what, where, how to rebuild and
heal it) and is durable before the fault is touched; later events (``injected``, ``healed``,
``heal_error``, ...) refer to it by id. The state folder's ``open-faults.json`` names the run
whose faults may be open, so ``rollback`` in a fresh process can find them.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from drkit.measure.chain import ChainBreak, ChainWriter, fsync_dir, read_chain
from drkit.measure.history import Clock, system_clock

LEDGER_FILE = "ledger.jsonl"
POINTER_FILE = "open-faults.json"
Category = Literal["fault", "recovery"]
CLOSING_EVENT: dict[str, str] = {"fault": "healed", "recovery": "undone"}


@dataclass(frozen=True)
class FaultRecord:
    """A fault or recovery action as the ledger knows it: enough to rebuild and heal it."""

    id: int
    run_id: str
    category: Category
    kind: str
    module: str | None
    params: Mapping[str, Any] = field(hash=False)
    description: str
    disaster: bool
    wall: float
    mono: float

    def label(self) -> str:
        return f"[{self.id}] {self.description} ({self.kind})"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "params": dict(self.params)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FaultRecord:
        return cls(**data)


@dataclass(frozen=True)
class LedgerState:
    """A ledger replayed: its records, the events each received, and any break in the chain."""

    path: Path
    run_id: str | None
    records: tuple[FaultRecord, ...]
    events: Mapping[int, tuple[str, ...]]
    broken: ChainBreak | None

    def is_closed(self, record: FaultRecord) -> bool:
        return CLOSING_EVENT[record.category] in self.events.get(record.id, ())

    @property
    def open_faults(self) -> tuple[FaultRecord, ...]:
        return tuple(r for r in self.records if r.category == "fault" and not self.is_closed(r))

    @property
    def applied_recovery(self) -> tuple[FaultRecord, ...]:
        return tuple(r for r in self.records if r.category == "recovery" and not self.is_closed(r))

    @property
    def next_id(self) -> int:
        return max((r.id for r in self.records), default=0) + 1


def read_ledger(path: Path) -> LedgerState:
    """Replay a ledger file (up to its first broken link, which is reported)."""
    chain = read_chain(path)
    run_id: str | None = None
    records: list[FaultRecord] = []
    events: dict[int, list[str]] = {}
    for event in chain.records:
        name = event.get("event")
        if name == "run":
            run_id = run_id or event.get("run_id")
        elif name == "intent":
            records.append(FaultRecord.from_json(event["record"]))
        if isinstance(event.get("id"), int):
            events.setdefault(event["id"], []).append(str(name))
    frozen = {k: tuple(v) for k, v in events.items()}
    return LedgerState(Path(path), run_id, tuple(records), frozen, chain.broken)


class Journal:
    """Appends fsynced, chained events to a ledger file."""

    def __init__(self, path: Path, clock: Clock = system_clock) -> None:
        self.path = Path(path)
        self._clock = clock
        self._chain = ChainWriter(self.path, fsync=True)
        if self._chain.repaired:
            self.event("repaired", detail=f"cut {self._chain.repaired}")

    def event(self, name: str, record_id: int | None = None, **detail: Any) -> None:
        wall, mono = self._clock()
        entry: dict[str, Any] = {"event": name, "wall": wall, "mono": mono}
        if record_id is not None:
            entry["id"] = record_id
        self._chain.append({**entry, **detail})

    def close(self) -> None:
        self._chain.close()


def process_identity() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname()}


def pointer_path(state_dir: Path) -> Path:
    return Path(state_dir) / POINTER_FILE


def read_pointer(state_dir: Path) -> dict[str, Any] | None:
    path = pointer_path(state_dir)
    if not path.exists():
        return None
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError) as exc:
        from drkit.errors import ConfigError

        raise ConfigError(
            f"{path}: the open-faults pointer is damaged ({type(exc).__name__}: {exc}); it names "
            "the run whose faults may still be applied. Find that run's ledger "
            "(reports/runs/<run-id>/ledger.jsonl), heal what it lists as injected and not "
            f"healed, then delete {path}"
        ) from None


def write_pointer(state_dir: Path, run_id: str, ledger: Path) -> None:
    """Durably record that ``run_id`` may have open faults in ``ledger`` (atomic replace)."""
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    body = {"run_id": run_id, "ledger": str(Path(ledger).resolve()), **process_identity()}
    temporary = state_dir / f".{POINTER_FILE}.{os.getpid()}"
    with open(temporary, "w") as handle:
        json.dump(body, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, pointer_path(state_dir))
    fsync_dir(state_dir)


def clear_pointer(state_dir: Path, ledger: Path) -> bool:
    """Remove the pointer if it names ``ledger``; True when removed."""
    pointer = read_pointer(state_dir)
    if pointer is None or Path(pointer["ledger"]) != Path(ledger).resolve():
        return False
    pointer_path(state_dir).unlink(missing_ok=True)
    fsync_dir(Path(state_dir))
    return True
