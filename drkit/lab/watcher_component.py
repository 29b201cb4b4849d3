"""The watcher as a lab component: off by default, switched on by `drkit lab watcher on` or a
drill, switched off by `drkit lab watcher off`, `lab reset` and `lab down`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from drkit.lab.component import PythonService

STATUS_FILE = "watcher.json"


class WatcherComponent(PythonService):
    def __init__(self, state: Path) -> None:
        self.status_file = state / "run" / STATUS_FILE
        self.state_dir = state
        super().__init__(
            name="watcher",
            state=state,
            module="drkit.lab.watcher_service",
            args=["--state", str(state)],
            healthy=self._reporting,
            start_budget_s=20.0,
        )
        self._started_at = 0.0

    def _reporting(self) -> bool:
        """Healthy once it has written a status since it started."""
        try:
            return self.status_file.stat().st_mtime >= self._started_at
        except FileNotFoundError:
            return False

    def start(self, dr_config: Path | None = None) -> None:
        """Start watching; with `dr_config` (the aws target) its failover goes through the
        AWS APIs of that config (HybridAwsTarget)."""
        if self.pid() is None:
            self.status_file.unlink(missing_ok=True)
            self._started_at = time.time()
            self.args = ["--state", str(self.state_dir)]
            if dr_config is not None:
                self.args += ["--dr-config", str(dr_config)]
        super().start()

    def reset(self) -> None:
        """The initial state of the lab has the watcher off."""
        self.stop()

    def watch_state(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.status_file.read_text()))
        except (OSError, ValueError):
            return {}

    def status(self) -> dict[str, Any]:
        base = super().status()
        if base["pid"] is None:
            return {**base, "health": "off", "enabled": False}
        return {**base, "enabled": True, "watch": self.watch_state()}
