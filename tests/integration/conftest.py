"""One real lab per test session, in its own state folder and port range.

The lab lives in a temporary DRKIT_HOME on ports from DRKIT_TEST_PORT_BASE (default 26400),
so it never touches a developer's own lab in `.drkit/` on the default ports.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from drkit.config import LabPorts, LabSettings
from drkit.lab.lab import Lab
from drkit.lab.lock import lab_lock
from drkit.paths import new_run_id

TEST_PORT_BASE = int(os.environ.get("DRKIT_TEST_PORT_BASE", "26400"))


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    home = tmp_path_factory.mktemp("drkit-home")
    saved = {k: os.environ.get(k) for k in ("DRKIT_HOME", "DRKIT_LAB_PORT_BASE")}
    os.environ["DRKIT_HOME"] = str(home)
    os.environ["DRKIT_LAB_PORT_BASE"] = str(TEST_PORT_BASE)
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
