"""The `drkit` command line as a user runs it: rollback after a killed run, cost, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.faults.test_rollback import _run_killed_child

pytestmark = pytest.mark.unit


def drkit(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DRKIT_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "drkit.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_drkit_rollback_heals_what_a_killed_run_left_and_is_idempotent(tmp_path: Path) -> None:
    state, flag = _run_killed_child(tmp_path, "after")
    assert flag.exists()
    first = drkit("rollback", home=state)
    assert first.returncode == 0 and "healed [1]" in first.stdout, first.stdout + first.stderr
    assert not flag.exists()
    again = drkit("rollback", "--json", home=state)
    assert again.returncode == 0 and json.loads(again.stdout)["healed"] == []


def test_drkit_cost_defaults_to_four_years(tmp_path: Path) -> None:
    result = drkit("cost", "--json", home=tmp_path)
    assert json.loads(result.stdout)["break_even_years"] == 4.0


def test_a_bad_cost_input_is_one_clear_line(tmp_path: Path) -> None:
    result = drkit("cost", "--outage-hours", "0", home=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (
        result.stderr.strip()
        == "drkit: error: cost input outage_hours=0.0 must be a positive number"
    )
