"""`drkit plan` against a running lab: it lists what the drills would do and changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from drkit.clients.toxiproxy import Toxic
from drkit.lab.control_plane import LabControlPlane, current_rules
from drkit.lab.lab import Lab
from drkit.lab.topology import REGIONS
from drkit.paths import PROJECT_ROOT

pytestmark = pytest.mark.integration


def snapshot(lab: Lab) -> dict[str, Any]:
    """What a drill could change: proxies and their toxics, security-group rules, the
    databases' roles, the public record, the watcher, the ledger pointer."""
    with lab.toxiproxy.client() as client:
        proxies = {
            name: (p.enabled, p.upstream, sorted(t.name for t in p.toxics))
            for name, p in client.proxies().items()
        }
    control = LabControlPlane.of(lab)
    rules = {r: sorted(x.describe() for x in current_rules(control.clients, r)) for r in REGIONS}
    roles = {r: c.in_recovery() for r, c in lab.database.clusters.items()}
    pointer = lab.state / "open-faults.json"
    return {
        "proxies": proxies,
        "rules": rules,
        "in_recovery": roles,
        "record": control.public_record(),
        "watcher": lab.watcher.pid(),
        "pointer": pointer.read_text() if pointer.exists() else None,
    }


def test_plan_lists_faults_and_resources_and_changes_nothing(
    fresh_lab: Lab, tmp_path: Path
) -> None:
    before = snapshot(fresh_lab)
    env = {**os.environ, "DRKIT_RUNS_DIR": str(tmp_path / "runs")}
    done = subprocess.run(
        [sys.executable, "-m", "drkit.cli", "plan", "--approver", "Jane Roe", "--json"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["approver"] == "Jane Roe"
    assert plan["totals"]["drills"] >= 17
    faults = {f for d in plan["drills"] for f in d["faults"]}
    assert "region outage: every ingress rule of us-east-1's security group revoked" in faults
    assert "security group of us-east-1 (lab EC2 on moto)" in plan["totals"]["resources"]
    assert snapshot(fresh_lab) == before
    # the snapshot sees a change when there is one: a toxic, added and removed
    proxy = "us-east-1.db.from-us-west-2"
    with fresh_lab.toxiproxy.client() as client:
        client.add_toxic(proxy, Toxic("plan-control", "latency", "downstream", 1.0, {"latency": 1}))
        try:
            assert snapshot(fresh_lab) != before
        finally:
            client.remove_toxic(proxy, "plan-control")
    assert snapshot(fresh_lab) == before
