"""Starting, finding and stopping the lab's background processes, and waiting on events."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from contextvars import ContextVar
from pathlib import Path

from drkit.errors import LabError, PortInUse


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def children_of(pid: int) -> list[int]:
    """Direct children of `pid`, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            found.append(int(entry.name))
    return found


def read_pidfile(path: Path, needle: str) -> int | None:
    """The pid in `path` if that process is alive and its command line contains `needle`.

    A stale file (dead process, or a pid reused by something else) is removed.
    """
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if pid_alive(pid) and needle in cmdline(pid):
        return pid
    path.unlink(missing_ok=True)
    return None


def spawn(
    command: Sequence[str], log_file: Path, pid_file: Path, env: dict[str, str] | None = None
) -> int:
    """Start a detached process (own session, so Ctrl-C in a terminal does not reach it)."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    pid_file.write_text(f"{proc.pid}\n")
    return proc.pid


def terminate(pid: int, timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after `timeout`; returns when the process is gone."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 2.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            _reap(pid)
            if not pid_alive(pid):
                return
            time.sleep(0.02)
    raise LabError(f"process {pid} ({cmdline(pid)}) did not stop after SIGKILL")


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def check_port_free(address: str, port: int, component: str, wait_s: float = 0.0) -> None:
    """Raise PortInUse naming the component when (address, port) cannot be bound, after
    waiting up to `wait_s` (a killed server's connections hold its port for a moment)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            _check_port_free(address, port, component)
            return
        except PortInUse:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.1)


def _check_port_free(address: str, port: int, component: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise PortInUse(
                f"{component} needs {address}:{port}, which another process is using; "
                f"stop it (find it with `ss -ltnp 'sport = :{port}'`) or move the lab's ports "
                "with DRKIT_LAB_PORT_BASE"
            ) from None


def port_open(address: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


WaitObserver = Callable[[str, float], AbstractContextManager[object]]
_wait_observer: ContextVar[WaitObserver | None] = ContextVar("wait_observer", default=None)


@contextlib.contextmanager
def observing_waits(observer: WaitObserver) -> Iterator[None]:
    """Enter `observer(what, budget_s)` around every `wait_until` in this context (the CLI
    shows what is awaited against its budget)."""
    token = _wait_observer.set(observer)
    try:
        yield
    finally:
        _wait_observer.reset(token)


def wait_until(
    predicate: Callable[[], bool], budget_s: float, what: str, interval_s: float = 0.02
) -> float:
    """Poll `predicate` until true; returns the seconds waited, raises LabError past budget."""
    observer = _wait_observer.get()
    if observer is None:
        return _wait_until(predicate, budget_s, what, interval_s)
    with observer(what, budget_s):
        return _wait_until(predicate, budget_s, what, interval_s)


def _wait_until(
    predicate: Callable[[], bool], budget_s: float, what: str, interval_s: float
) -> float:
    start = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - start
        elapsed = time.monotonic() - start
        if elapsed > budget_s:
            raise LabError(
                f"timed out after {elapsed:.1f}s (budget {budget_s:.0f}s) waiting for {what}"
            )
        time.sleep(interval_s)


def processes_mentioning(text: str, *, except_for: str | None = None) -> list[str]:
    """`pid: command line` of every live process (but this one) whose command line mentions
    `text` (a path or a port); `except_for` leaves out those mentioning it too (e.g. the
    pytest run that asks). For orphan checks after a drill or a lab down."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd and (except_for is None or except_for not in cmd):
            found.append(f"{entry.name}: {cmd.strip()[:120]}")
    return found
