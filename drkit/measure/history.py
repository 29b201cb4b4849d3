"""The drill's history: an append-only record of operations, streamed to a hash-chained file.

An operation is invoked and then completes as ``ok`` (it happened), ``fail`` (it definitely did
not happen) or ``info`` (its outcome is unknown). A process performs one operation at a time,
so a completion belongs to the last open invocation of its process (Jepsen's rule).

Value conventions the checkers rely on::

    write    invoke {"id": doc_id, "hash": content_sha256}   ok {"id": doc_id, "commit_time": t}
    read     invoke {"query": q, "expect": [ids acked before]}  ok {"ids": [ids returned]}
    fault    invoke {"fault": text, "f": "inject"|"heal", "record": n, "disaster": bool}
    recovery ok {"phase": "detection"|"decision"|"fencing"|"promotion"|"dns_switch", ...}
    health   ok {"check": "replication"|"preflight"|"index drift"|"reconciliation", ...}

Durations always come from ``mono`` (``time.monotonic``); ``wall`` is for display and for
matching acknowledgements with database commit times.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from drkit.measure.chain import ChainBreak, ChainWriter, read_chain

OpType = Literal["invoke", "ok", "fail", "info"]
Kind = Literal["read", "write", "health", "fault", "recovery"]
OP_TYPES: frozenset[str] = frozenset(get_args(OpType))
KINDS: frozenset[str] = frozenset(get_args(Kind))
FORMAT = "drkit-history/1"
RECOVERY_PROCESS = "recovery"
NEMESIS_PROCESS = "nemesis"
OBSERVER_PROCESS = "observer"


@dataclass(frozen=True)
class Op:
    """One history record; ``index`` is its position in the history."""

    index: int
    process: str
    type: OpType
    kind: Kind
    value: Any
    wall: float
    mono: float
    region: str | None = None
    error: str | None = None

    @property
    def is_invoke(self) -> bool:
        return self.type == "invoke"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Op:
        if data.get("type") not in OP_TYPES or data.get("kind") not in KINDS:
            raise ValueError(f"not an operation record (type/kind unknown): {data!r}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ValueError(f"not an operation record ({exc}): {data!r}") from exc


Clock = Callable[[], tuple[float, float]]


def system_clock() -> tuple[float, float]:
    """(wall, monotonic) now."""
    return time.time(), time.monotonic()


class History:
    """Thread-safe, append-only; streams every op to ``path`` when one is given.

    Use as a context manager (or call ``close``): closing writes an end record, so a reader can
    tell a complete history from one cut short by a killed run.
    """

    def __init__(
        self, path: Path | None = None, *, name: str = "history", clock: Clock = system_clock
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.name = name
        self._clock = clock
        self._ops: list[Op] = []
        self._lock = threading.Lock()
        self._writer = ChainWriter(self.path) if self.path is not None else None
        if self._writer is not None:
            wall, _mono = clock()
            self._writer.append({"event": "header", "format": FORMAT, "name": name, "wall": wall})

    # -- recording -------------------------------------------------------------------------

    def invoke(self, process: str, kind: Kind, value: Any = None) -> Op:
        return self._record(process, "invoke", kind, value, None, None)

    def complete(
        self,
        invocation: Op,
        type: OpType,
        value: Any = None,
        *,
        region: str | None = None,
        error: str | None = None,
    ) -> Op:
        """Complete ``invocation`` as ok, fail or info; ``value`` defaults to the invoke's."""
        if type == "invoke":
            raise ValueError("complete() takes ok, fail or info; use invoke() to start an op")
        value = invocation.value if value is None else value
        return self._record(invocation.process, type, invocation.kind, value, region, error)

    def recovery(self, phase: str, **detail: Any) -> Op:
        """Mark the end of a recovery phase (detection, decision, fencing, ...) now."""
        return self._record(
            RECOVERY_PROCESS, "ok", "recovery", {"phase": phase, **detail}, None, None
        )

    def observe(self, check: str, region: str | None = None, **value: Any) -> Op:
        """Record what an observer (the monitor, the pre-flight, a read-back) saw now."""
        return self._record(
            OBSERVER_PROCESS, "ok", "health", {"check": check, **value}, region, None
        )

    def append(self, op: Op) -> Op:
        """Append a fully built op (its index is reassigned to its position)."""
        with self._lock:
            placed = Op(**{**op.to_json(), "index": len(self._ops)})
            self._store(placed)
            return placed

    def _record(
        self,
        process: str,
        type: OpType,
        kind: Kind,
        value: Any,
        region: str | None,
        error: str | None,
    ) -> Op:
        with self._lock:
            wall, mono = self._clock()
            op = Op(len(self._ops), process, type, kind, value, wall, mono, region, error)
            self._store(op)
            return op

    def _store(self, op: Op) -> None:
        if self._writer is not None:
            self._writer.append({"op": op.to_json()})
        self._ops.append(op)

    # -- reading ---------------------------------------------------------------------------

    @property
    def ops(self) -> tuple[Op, ...]:
        with self._lock:
            return tuple(self._ops)

    def __len__(self) -> int:
        return len(self._ops)

    def __iter__(self) -> Iterator[Op]:
        return iter(self.ops)

    def close(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.append({"event": "end", "count": len(self._ops)})
                self._writer.close()
                self._writer = None

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class LoadedHistory:
    """A history read back from disk, with what the reader found wrong with it, if anything."""

    path: Path
    ops: tuple[Op, ...]
    broken: ChainBreak | None
    complete: bool

    @property
    def trustworthy(self) -> bool:
        return self.broken is None and self.complete

    def problem(self) -> str | None:
        """A sentence saying why the history cannot be trusted in full, or None."""
        if self.broken is not None:
            line = self.broken.line
            return f"history {self.path}: {self.broken.reason}; ops from line {line} on ignored"
        if not self.complete:
            return (
                f"history {self.path}: no end record after {len(self.ops)} ops; the run was "
                "interrupted or the file was cut, so the last operations may be missing"
            )
        return None


def load_history(path: Path) -> LoadedHistory:
    """Read a history file, verifying its hash chain and end record."""
    read = read_chain(path)
    ops: list[Op] = []
    ended = False
    broken = read.broken
    for line, record in enumerate(read.records, start=1):
        try:
            op = Op.from_json(record["op"]) if "op" in record else None
        except ValueError as exc:
            broken = ChainBreak(line, f"line {line} is linked but unreadable: {exc}")
            break
        if op is not None:
            ops.append(op)
        ended = record.get("event") == "end" and record.get("count") == len(ops)
    complete = ended and not read.partial_tail and broken is None
    return LoadedHistory(Path(path), tuple(ops), broken, complete)


def dumps_ops(ops: Sequence[Op]) -> str:
    """Ops as plain JSON lines (no chain), for attaching to a report."""
    return "\n".join(json.dumps(op.to_json(), default=str) for op in ops)
