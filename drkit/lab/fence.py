"""The lab's fencing lease: which regions a failover has fenced, kept by the control plane.

A fenced region's service refuses every write, whatever its database says, until failback or
`drkit lab reset` lifts the fence. It is a mechanism of its own, apart from any security-group
rule or toxic a fault toggles, so healing the fault that caused the failover never unfences
the old primary. (On AWS the same role falls to a quarantine security group.)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

FENCE_FILE = "fence.json"


def read_fences(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    return {str(k): dict(v) for k, v in data.get("fenced", {}).items()}


def _write(path: Path, fences: dict[str, dict[str, Any]]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".fence-", dir=path.parent)
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps({"fenced": fences}, indent=2))
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise read-modify-write of the lease between processes (watcher, drills)."""
    with open(path.with_name(path.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def fence_region(path: Path, region: str, reason: str) -> dict[str, Any]:
    """Fence `region`; the epoch grows with every fencing so a stale lease is recognisable."""
    with _locked(path):
        fences = read_fences(path)
        epoch = 1 + max((int(f.get("epoch", 0)) for f in fences.values()), default=0)
        fences[region] = {"epoch": epoch, "reason": reason, "at": time.time()}
        _write(path, fences)
        return fences[region]


def unfence_region(path: Path, region: str) -> None:
    with _locked(path):
        fences = read_fences(path)
        if fences.pop(region, None) is not None:
            _write(path, fences)


def clear_fences(path: Path) -> None:
    path.unlink(missing_ok=True)


class FenceReader:
    """Reads the lease on every call, re-parsing only when the file changed (cheap per write)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._fences: dict[str, dict[str, Any]] = {}

    def fence_of(self, region: str) -> dict[str, Any] | None:
        if self.path is None:
            return None
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)  # a replace makes a new inode
        with self._lock:
            if stamp != self._stamp:
                self._fences, self._stamp = read_fences(self.path), stamp
            return self._fences.get(region)
