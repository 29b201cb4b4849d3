"""One real lab per test session, in its own state folder and port range.

The lab lives in a temporary DRKIT_HOME on ports from DRKIT_TEST_PORT_BASE (default 26400),
so it never touches a developer's own lab in `.drkit/` on the default ports.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

from drkit.config import LabPorts, LabSettings
from drkit.lab.lab import Lab
from drkit.lab.lock import lab_lock
from drkit.lab.process import processes_mentioning as lab_processes_mentioning
from drkit.paths import new_run_id

TEST_PORT_BASE = int(os.environ.get("DRKIT_TEST_PORT_BASE", "26400"))
SEED_ENV = "DRKIT_LAB_SEED_DOCS"
TEST_SEED_DOCS = "500"  # the default lab seeds 5,000; tests need the shape, not the volume


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    home = tmp_path_factory.mktemp("drkit-home")
    saved = {
        k: os.environ.get(k)
        for k in ("DRKIT_HOME", "DRKIT_LAB_PORT_BASE", SEED_ENV, "DRKIT_RUNS_DIR")
    }
    os.environ["DRKIT_RUNS_DIR"] = str(home / "runs")  # ledgers stay out of the work tree
    os.environ["DRKIT_HOME"] = str(home)
    os.environ["DRKIT_LAB_PORT_BASE"] = str(TEST_PORT_BASE)
    os.environ.setdefault(SEED_ENV, TEST_SEED_DOCS)
    lab = Lab(home, LabSettings(ports=LabPorts(TEST_PORT_BASE)))
    try:
        with lab_lock(home, f"test-{new_run_id()}"):
            lab.up()
            try:
                yield lab
            finally:
                lab.down(purge=True)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def fresh_lab(lab: Lab) -> Lab:
    """The session lab, reset to its initial topology before the test."""
    lab.reset()
    return lab


def run_drkit(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the `drkit` CLI as a user would, in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "drkit.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


@pytest.fixture
def run_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    return run_drkit


def processes_mentioning(text: str) -> list[str]:
    """Live processes that mention `text` (a path or a port), this pytest run aside."""
    return lab_processes_mentioning(text, except_for="pytest")
