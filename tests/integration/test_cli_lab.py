"""The lab commands as a script reads them: `--json` alone on stdout, a one-line summary
otherwise, progress only on stderr."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drkit.lab.lab import Lab
from tests.integration.conftest import run_drkit

pytestmark = pytest.mark.integration


def test_lab_up_on_a_running_lab_starts_nothing_and_says_where(lab: Lab) -> None:
    done = run_drkit("lab", "up", "--json")

    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["started"] == [] and "postgres us-east-1" in data["already_running"]
    assert (
        data["addresses"]["postgres us-west-2"]
        == lab.status()["components"][1]["regions"]["us-west-2"]["address"]
    )
    assert all(line.startswith("lab up: ") for line in done.stderr.splitlines())


def test_lab_reset_json_and_its_one_line_summary(lab: Lab) -> None:
    as_json = run_drkit("lab", "reset", "--json")
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["command"] == "lab reset" and data["healthy"] is True
    assert {c["component"] for c in data["status"]["components"]} >= {"postgres", "watcher"}

    text = run_drkit("lab", "reset")
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("lab reset in ") and text.stdout.count("\n") == 1


def test_lab_aws_config_json_names_the_file(lab: Lab, tmp_path: Path) -> None:
    out = tmp_path / "lab-aws.toml"
    done = run_drkit("lab", "aws-config", "--out", str(out), "--json")

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"path": str(out), "config": None}
    assert "[endpoint_urls]" in out.read_text()
