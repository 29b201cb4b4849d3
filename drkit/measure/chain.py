"""Hash-chained JSON-lines files: the history and the fault ledger are both written this way.

Each line is one JSON object whose ``prev`` field is the SHA-256 of the previous line's bytes
(the first line links to ``GENESIS``). A reader recomputes the links and reports the first one
that does not hold, so a changed, removed or reordered record is detected. Lines are written
with a single ``os.write`` on an ``O_APPEND`` descriptor, so a killed writer leaves whole lines.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GENESIS = "0" * 64


def line_hash(line: bytes) -> str:
    """The SHA-256 hex digest of one line, without its newline."""
    return hashlib.sha256(line).hexdigest()


def encode(record: Mapping[str, Any], prev: str) -> bytes:
    """One record as a compact JSON line (no newline) with ``prev`` first."""
    return json.dumps({"prev": prev, **record}, separators=(",", ":"), default=str).encode()


@dataclass(frozen=True)
class ChainBreak:
    """The first link that does not hold: ``line`` is 1-based; ``reason`` says what to suspect."""

    line: int
    reason: str


@dataclass(frozen=True)
class ChainRead:
    """What a reader found: the records a valid link vouches for, the first break, the tail."""

    path: Path
    records: tuple[dict[str, Any], ...]
    broken: ChainBreak | None
    partial_tail: bool
    last_hash: str

    @property
    def intact(self) -> bool:
        return self.broken is None and not self.partial_tail


def read_chain(path: Path) -> ChainRead:
    """Read a chained file, stopping at the first broken link or unparsable line.

    On a break at line N, records from line N-1 on are left out: either of the two may be
    the edited one. On an intact chain every record is returned.
    """
    data = Path(path).read_bytes()
    lines = data.split(b"\n")
    partial_tail = lines[-1] != b""
    body = lines[:-1]
    records: list[dict[str, Any]] = []
    prev = GENESIS
    for number, raw in enumerate(body, start=1):
        record = _linked_record(raw, prev, number)
        if isinstance(record, ChainBreak):
            # the line before the break is not vouched for by a valid link: drop it too
            return ChainRead(Path(path), tuple(records[:-1]), record, partial_tail, prev)
        records.append(record)
        prev = line_hash(raw)
    return ChainRead(Path(path), tuple(records), None, partial_tail, prev)


def _linked_record(raw: bytes, prev: str, number: int) -> dict[str, Any] | ChainBreak:
    """The record on this line without its ``prev``, or the break it shows."""
    try:
        record = json.loads(raw)
    except ValueError:
        return ChainBreak(number, f"line {number} is not valid JSON; the file was edited or cut")
    if not isinstance(record, dict) or "prev" not in record:
        return ChainBreak(number, f"line {number} has no 'prev' hash; it was not written by drkit")
    if record.pop("prev") != prev:
        return ChainBreak(
            number,
            f"line {number} does not link to line {number - 1}: line {number - 1} or "
            f"{number} was edited, or records between them were removed or reordered",
        )
    return record


class ChainWriter:
    """Appends chained records to a file; thread-safe; resumes an existing chain on open.

    ``fsync=True`` makes every append durable before it returns (the ledger's rule: the record
    is on disk before the fault is injected). Otherwise each line still reaches the kernel at
    once (it survives a killed process) and is synced at most every ``sync_interval`` seconds.
    """

    def __init__(self, path: Path, *, fsync: bool = False, sync_interval: float = 1.0) -> None:
        self.path = Path(path)
        self._fsync = fsync
        self._sync_interval = sync_interval
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._prev, self.repaired = _prepare_tail(self.path)
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._last_sync = time.monotonic()
        if fsync:
            fsync_dir(self.path.parent)

    def append(self, record: Mapping[str, Any]) -> str:
        """Write one record linked to the previous one; returns the new line's hash."""
        with self._lock:
            if self._fd is None:
                raise ValueError(f"{self.path}: chain writer is closed; open a new one to append")
            line = encode(record, self._prev)
            os.write(self._fd, line + b"\n")
            self._prev = line_hash(line)
            self._maybe_sync()
            return self._prev

    def _maybe_sync(self) -> None:
        assert self._fd is not None
        now = time.monotonic()
        if self._fsync or now - self._last_sync >= self._sync_interval:
            os.fsync(self._fd)
            self._last_sync = now

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.fsync(self._fd)
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> ChainWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _prepare_tail(path: Path) -> tuple[str, str | None]:
    """The hash to chain from; a partial last line (power loss) is cut off and described."""
    if not path.exists() or path.stat().st_size == 0:
        return GENESIS, None
    data = path.read_bytes()
    cut = data.rfind(b"\n") + 1
    repaired = None
    if cut < len(data):
        tail = data[cut:]
        repaired = f"{len(tail)} bytes of an unfinished last line (sha256 {line_hash(tail)})"
        os.truncate(path, cut)
    complete = data[:cut].rstrip(b"\n").rsplit(b"\n", 1)[-1]
    return (line_hash(complete) if complete else GENESIS), repaired


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
