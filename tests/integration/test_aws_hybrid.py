"""The aws target on a hybrid set-up: control plane = the lab's moto server, reached through
the config's endpoint_urls as AWS would be; data plane = the lab.

The catalog's region-outage drill runs with `--dr-target aws`: its fault goes through the EC2
API (the whole group snapshotted, every rule revoked, restored by difference), after the
interlocks; the lab's enforcement makes the cut real, so RTO and RPO are measured as on the
lab. The interlocks refuse without `--dr-allow-destructive`, and in a production blackout
window without an override; plan mode lists the AWS resources; credentials appear nowhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from drkit.aws.hybrid import lab_aws_config
from drkit.evidence.secrets import scan_folder
from drkit.lab.control_plane import LabControlPlane, group_id_of
from drkit.lab.lab import Lab
from drkit.lab.steady import fault_traces, security_group_drift
from drkit.measure.chain import read_chain
from drkit.paths import PROJECT_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OUTAGE = "security_group_and_the_watcher"
SECRET_KEY = "hybrid-secret-access-key-4370"  # a planted credential: must appear nowhere


def run_drills(tmp: Path, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DRKIT_RUNS_DIR": str(tmp / "runs"),
        "AWS_ACCESS_KEY_ID": "AKIAHYBRIDTEST00001",
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(PROJECT_ROOT / "drills"),
            "-q",
            "-p",
            "no:cacheprovider",
            "--alluredir",
            str(tmp / "allure"),
            "--dr-target",
            "aws",
            "--dr-config",
            str(config),
            *args,
        ],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def hybrid(fresh_lab: Lab, tmp_path: Path) -> Path:
    path = tmp_path / "lab-aws.toml"
    path.write_text(lab_aws_config(fresh_lab))
    return path


def ledger_kinds(tmp: Path) -> list[str]:
    kinds = []
    for ledger in (tmp / "runs").glob("*/ledger.jsonl"):
        kinds += [r["record"]["kind"] for r in read_chain(ledger).records if r["event"] == "intent"]
    return kinds


def test_the_region_outage_drill_runs_through_the_aws_target(
    fresh_lab: Lab, hybrid: Path, tmp_path: Path
) -> None:
    group = group_id_of(LabControlPlane.of(fresh_lab).clients, "us-east-1")
    done = run_drills(tmp_path, hybrid, "-k", OUTAGE, "--dr-allow-destructive")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "1 passed" in output
    assert ledger_kinds(tmp_path) == ["aws.security_group_block"]
    (summary,) = (tmp_path / "runs").glob("*/verdicts/*.json")
    verdicts = {v["checker"]: v for v in json.loads(summary.read_text())["verdicts"]}
    assert verdicts["rto"]["valid"] is True and verdicts["rto"]["value"] > 0
    assert verdicts["rpo"]["valid"] is True
    (history,) = (tmp_path / "runs").glob("*/histories/*.jsonl")
    ops = [r["op"] for r in read_chain(history).records if "op" in r]
    interlocks = [o["value"] for o in ops if o["value"].get("check") == "interlocks"]
    assert [i["resource"] for i in interlocks] == [group]
    assert interlocks[0]["market_hours"]["allowed"] is True
    # healed by difference: the group is the seed again, and nothing is left on the lab
    assert security_group_drift(fresh_lab) == []
    assert fault_traces(fresh_lab) == []
    # the planted credential is nowhere: output, Allure results, run folder
    assert SECRET_KEY not in output
    for folder in (tmp_path / "runs", tmp_path / "allure"):
        assert scan_folder(folder, {"AWS_SECRET_ACCESS_KEY": SECRET_KEY}) == []


def test_without_allow_destructive_the_interlock_refuses_before_any_fault(
    fresh_lab: Lab, hybrid: Path, tmp_path: Path
) -> None:
    done = run_drills(tmp_path, hybrid, "-k", OUTAGE)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "inconclusive: When step '{region} is cut off by its security group' failed:" in output
    assert "InterlockRefused" in output and "--dr-allow-destructive was not given" in output
    assert ledger_kinds(tmp_path) == []
    assert security_group_drift(fresh_lab) == []


def test_production_in_a_blackout_window_is_refused_without_an_override(
    fresh_lab: Lab, hybrid: Path, tmp_path: Path
) -> None:
    text = hybrid.read_text().replace('environment = "staging"', 'environment = "production"')
    text += (
        "\n[[blackout_windows]]\n"
        'start = "00:00"\nend = "23:59"\ntimezone = "UTC"\n'
        'weekdays = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]\n'
        "exchange_holidays = false\n"
    )
    hybrid.write_text(text)
    done = run_drills(tmp_path, hybrid, "-k", OUTAGE, "--dr-allow-destructive")
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "InterlockRefused" in output and "--dr-override-market-hours" in output
    assert ledger_kinds(tmp_path) == []


def test_plan_mode_lists_the_aws_resources_and_changes_nothing(
    fresh_lab: Lab, hybrid: Path, tmp_path: Path
) -> None:
    group = group_id_of(LabControlPlane.of(fresh_lab).clients, "us-east-1")
    done = run_drills(tmp_path, hybrid, "-k", OUTAGE, "--dr-plan")
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"EC2 security group {group} in us-east-1" in done.stdout
    assert "Route 53 zone" in done.stdout
    assert ledger_kinds(tmp_path) == []
    assert security_group_drift(fresh_lab) == []
