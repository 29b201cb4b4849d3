"""`python -m drkit.faults rollback` exits as `drkit rollback` does: 0 nothing left, 1 not
finished (the owning run is alive), 2 the user's input to fix (a damaged pointer)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from drkit.faults.__main__ import main
from drkit.faults.journal import pointer_path, write_pointer

pytestmark = pytest.mark.unit


def test_nothing_to_heal_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rollback", "--state-dir", str(tmp_path)]) == 0
    assert "nothing to heal" in capsys.readouterr().out


def test_a_live_owning_run_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        write_pointer(tmp_path, "20261126T000000Z-live", tmp_path / "ledger.jsonl")
        pointer = json.loads(pointer_path(tmp_path).read_text())
        pointer_path(tmp_path).write_text(json.dumps({**pointer, "pid": owner.pid}))
        assert main(["rollback", "--state-dir", str(tmp_path)]) == 1
        err = capsys.readouterr().err
        assert "still holds its faults" in err and f"pid {owner.pid}" in err
    finally:
        owner.kill()
        owner.wait()


def test_a_damaged_pointer_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pointer_path(tmp_path).write_text("{not json")
    assert main(["rollback", "--state-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "the open-faults pointer is damaged" in err and "Traceback" not in err
