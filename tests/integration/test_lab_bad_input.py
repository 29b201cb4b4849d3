"""Bad input to `drkit lab`: one clear message, non-zero exit, no traceback, no process left."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from drkit.lab.lock import LOCK_ENV, lab_lock
from tests.integration.conftest import TEST_PORT_BASE, processes_mentioning, run_drkit

pytestmark = pytest.mark.integration

BASE = TEST_PORT_BASE + 100  # clear of the session lab's ports


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "state"
    yield path
    run_drkit("lab", "down", "--purge", env=_env(path))


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {"DRKIT_HOME": str(home), "DRKIT_LAB_PORT_BASE": str(BASE), **extra}
    return env


def _clean_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of an unrelated run: not a child of the lab's holder."""
    env = {k: v for k, v in os.environ.items() if k != LOCK_ENV}
    return {**env, **_env(home, **extra)}


def run_unrelated(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    import sys

    return subprocess.run(
        [sys.executable, "-m", "drkit.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def assert_clear_failure(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("drkit: error:"), result.stderr
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def assert_nothing_left(home: Path) -> None:
    assert processes_mentioning(str(home)) == []
    assert processes_mentioning(f"-port {BASE + 74}") == []


def test_a_taken_toxiproxy_port_is_named(home: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", BASE + 74))
        squatter.listen()
        result = run_drkit("lab", "up", env=_env(home))
    assert_clear_failure(result, "Toxiproxy API", f"127.0.0.1:{BASE + 74}", "DRKIT_LAB_PORT_BASE")
    assert_nothing_left(home)


def test_a_taken_database_port_is_named_and_nothing_is_left_running(home: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.1.1", BASE + 32))
        squatter.listen()
        result = run_drkit("lab", "up", env=_env(home))
    assert_clear_failure(result, "PostgreSQL us-east-1", f"127.0.1.1:{BASE + 32}")
    assert_nothing_left(home)


def test_a_missing_toxiproxy_binary_says_how_to_install_it(home: Path) -> None:
    result = run_drkit("lab", "up", env=_env(home, DRKIT_TOXIPROXY_BIN="/nonexistent/toxiproxy"))
    assert_clear_failure(result, "DRKIT_TOXIPROXY_BIN=/nonexistent/toxiproxy", "make setup")
    assert_nothing_left(home)


def test_missing_postgresql_binaries_say_what_to_install(home: Path) -> None:
    result = run_drkit("lab", "up", env=_env(home, DRKIT_PG_BINDIR="/nonexistent/pg/bin"))
    assert_clear_failure(result, "DRKIT_PG_BINDIR=/nonexistent/pg/bin", "postgresql-15")
    assert_nothing_left(home)


def test_a_state_folder_that_cannot_be_written_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    home = blocker / "state"
    result = run_drkit("lab", "up", env=_env(home))
    assert_clear_failure(result, str(home), "DRKIT_HOME")
    assert_nothing_left(home)


def test_a_bad_port_base_is_refused(home: Path) -> None:
    result = run_drkit("lab", "status", env=_env(home, DRKIT_LAB_PORT_BASE="lots"))
    assert_clear_failure(result, "DRKIT_LAB_PORT_BASE='lots'", "integer")


def test_a_locked_lab_refuses_an_unrelated_run_and_admits_the_holders_children(
    home: Path,
) -> None:
    with lab_lock(home, "run-holding-the-lab"):
        refused = run_unrelated("lab", "up", env=_clean_env(home))
        child = run_unrelated(
            "lab", "up", env={**_clean_env(home), LOCK_ENV: "run-holding-the-lab"}
        )
    assert_clear_failure(refused, "run-holding-the-lab", "in use")
    assert child.returncode == 0, child.stderr
