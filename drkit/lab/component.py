"""What a lab component is, and a ready-made one for a Python service run as a process.

`Lab` starts its components in order, waits for each to be healthy, and stops them in
reverse. A component's `start()` is idempotent (a running, healthy component is left alone),
`reset()` returns it to the initial state, and `status()` never raises.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from drkit.errors import LabError
from drkit.lab.process import check_port_free, read_pidfile, spawn, terminate, wait_until


class Component(Protocol):
    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def reset(self) -> None: ...

    def status(self) -> dict[str, Any]: ...


class PythonService:
    """A `python -m module ...` process with a pid file, a log and a health check.

    `binds` lists the (address, port) pairs the service listens on, checked before start so a
    taken port is a clear error instead of a crash in the log.
    """

    def __init__(
        self,
        name: str,
        state: Path,
        module: str,
        args: Sequence[str],
        healthy: Callable[[], bool],
        binds: Sequence[tuple[str, int]] = (),
        start_budget_s: float = 15.0,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.module = module
        self.args = list(args)
        self.healthy = healthy
        self.binds = list(binds)
        self.start_budget_s = start_budget_s
        self.env = env
        self.pid_file = state / "run" / f"{name}.pid"
        self.log_file = state / "logs" / f"{name}.log"

    def pid(self) -> int | None:
        return read_pidfile(self.pid_file, self.module)

    # Components whose process may be launched early, beside others, by `Lab.up`.
    prelaunch = False
    # Says why the service is not healthy, for the error when its start times out.
    why_unhealthy: Callable[[], str | None] | None = None

    def launch(self) -> int:
        """Spawn the process without waiting for it; a running one is left alone."""
        pid = self.pid()
        if pid is not None:
            return pid
        for address, port in self.binds:
            check_port_free(address, port, self.name)
        return spawn(
            [sys.executable, "-m", self.module, *self.args],
            self.log_file,
            self.pid_file,
            env=self.env,
        )

    def start(self) -> None:
        """Launch (unless launched already) and wait until healthy; a sick process is replaced."""
        pid = self.pid()
        if pid is not None and self._safe_healthy():
            return
        if pid is not None and not self._launched_recently():
            self.stop()
        pid = self.launch()
        try:
            wait_until(
                self.healthy,
                self.start_budget_s,
                f"{self.name} (log: {self.log_file})",
                interval_s=0.05,
            )
        except LabError as exc:
            why = self.why_unhealthy() if self.why_unhealthy else None  # before we stop it
            terminate(pid)
            self.pid_file.unlink(missing_ok=True)
            raise LabError(f"{exc}: {why}" if why else str(exc)) from None

    def _launched_recently(self) -> bool:
        """A process launched within its start budget is starting, not sick."""
        try:
            age = time.time() - self.pid_file.stat().st_mtime
        except FileNotFoundError:
            return False
        return age < self.start_budget_s

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            terminate(pid)
        self.pid_file.unlink(missing_ok=True)

    def reset(self) -> None:
        self.start()

    def status(self) -> dict[str, Any]:
        pid = self.pid()
        health = "stopped" if pid is None else ("healthy" if self._safe_healthy() else "unhealthy")
        return {
            "component": self.name,
            "pid": pid,
            "address": ", ".join(f"{a}:{p}" for a, p in self.binds),
            "health": health,
            "log": str(self.log_file),
        }

    def _safe_healthy(self) -> bool:
        try:
            return self.healthy()
        except Exception:  # status reports, it does not raise
            return False
