"""Where drkit keeps its state (the lab, the open-faults pointer) and its run folders."""

from __future__ import annotations

import os
import re
import secrets
from datetime import UTC, datetime
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def state_dir() -> Path:
    """The state folder: `DRKIT_HOME` when set, else `.drkit/` in the working directory."""
    home = os.environ.get("DRKIT_HOME")
    return Path(home).resolve() if home else (Path.cwd() / ".drkit").resolve()


def runs_dir() -> Path:
    """Run folders live in `reports/runs/` (ignored by git); `DRKIT_RUNS_DIR` moves them."""
    override = os.environ.get("DRKIT_RUNS_DIR")
    return Path(override).resolve() if override else (Path.cwd() / "reports" / "runs").resolve()


RUN_ID_ENV = "DRKIT_RUN_ID"
RUN_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-z]{1,16}$")


def run_id_from_env() -> str | None:
    """A run id a script chose (`DRKIT_RUN_ID`, e.g. `make drill`), checked; None if unset."""
    chosen = os.environ.get(RUN_ID_ENV)
    if not chosen:
        return None
    if not RUN_ID.match(chosen):
        from drkit.errors import ConfigError

        raise ConfigError(
            f"{RUN_ID_ENV}={chosen!r}: not a run id; use UTC time and a suffix, "
            "e.g. 20261126T051729Z-3f9a, or unset it"
        )
    return chosen


def new_run_id(now: datetime | None = None) -> str:
    """A run id: UTC time to the second plus a random suffix, e.g. 20261126T051729Z-3f9a0c1d."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(4)}"
