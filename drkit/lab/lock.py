"""The lab lock: one run uses the lab at a time; processes that run starts inherit it.

The holder keeps an exclusive `flock` on `<state>/lab.lock` and writes its run id beside it.
It exports DRKIT_LAB_RUN=<run id>, so a child (a nested pytest, a CLI call from a drill)
recognises the lock as its own; any other run is refused with the holder's run id.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from drkit.errors import LabError, LabLocked

LOCK_ENV = "DRKIT_LAB_RUN"


def _holder(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


@contextmanager
def lab_lock(state: Path, run_id: str) -> Iterator[str]:
    """Hold the lab for `run_id`; yields the run id that owns the lock (ours or our parent's)."""
    try:
        state.mkdir(parents=True, exist_ok=True)
        handle = open(state / "lab.lock", "a+")  # noqa: SIM115 - held for the whole block
    except OSError as exc:
        raise LabError(
            f"the state folder {state} is not writable ({exc.strerror}); point DRKIT_HOME at a "
            "folder you can write, or fix its permissions"
        ) from None
    holder_file = state / "lab.lock.json"
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(holder_file)
            if holder.get("run_id") and os.environ.get(LOCK_ENV) == holder["run_id"]:
                yield holder["run_id"]
                return
            raise LabLocked(
                f"the lab in {state} is in use by run {holder.get('run_id', '?')} "
                f"(pid {holder.get('pid', '?')}, command {holder.get('command', '?')!r}); wait for "
                "it to finish, or use another lab with DRKIT_HOME and DRKIT_LAB_PORT_BASE"
            ) from None
        info = {"run_id": run_id, "pid": os.getpid(), "since": time.time(), "command": _command()}
        holder_file.write_text(json.dumps(info))
        previous = os.environ.get(LOCK_ENV)
        os.environ[LOCK_ENV] = run_id
        try:
            yield run_id
        finally:
            _restore_env(previous)
            holder_file.unlink(missing_ok=True)
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()


def _restore_env(previous: str | None) -> None:
    if previous is None:
        os.environ.pop(LOCK_ENV, None)
    else:
        os.environ[LOCK_ENV] = previous


def _command() -> str:
    try:
        return Path("/proc/self/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()[:200]
    except OSError:
        return "?"
