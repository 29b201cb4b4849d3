"""The registered plan: what a run will do, written and hashed before its first fault.

For the selected drills and target: every drill, its objectives and budget, every fault it
would inject, every resource it would touch and its expected duration. Building it changes
nothing; the approver and change ticket are recorded with it. The run's metadata (`run.json`:
who, where, which versions) is written beside it.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import platform
import socket
import statistics
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from drkit.config import RPO_OBJECTIVE_SECONDS, RTO_OBJECTIVE_SECONDS
from drkit.paths import PROJECT_ROOT

PLAN_FORMAT = "drkit-plan/1"
PLAN_FILE = "plan.json"
HASH_FILE = "plan.json.sha256"
RUN_FILE = "run.json"
PACKAGES = (
    "drkit",
    "pytest",
    "pytest-bdd",
    "allure-pytest-bdd",
    "boto3",
    "moto",
    "psycopg",
    "pinecone",
    "matplotlib",
    "cryptography",
)


@dataclass
class PlannedDrill:
    """One scenario (one example of an outline) as it will run."""

    name: str
    feature: str
    scenario: str
    tags: list[str]
    steps: list[dict[str, Any]]
    objectives: dict[str, float] = field(default_factory=dict)
    expected_duration_s: float | None = None
    duration_basis: str = ""
    aws_resources: list[str] = field(default_factory=list)  # with --dr-target aws

    @property
    def faults(self) -> list[dict[str, Any]]:
        return [s for s in self.steps if s["kind"] == "fault"]

    @property
    def resources(self) -> list[str]:
        seen: dict[str, None] = {}
        for step in self.steps:
            for resource in step["resources"]:
                seen.setdefault(resource, None)
        return list(seen)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "feature": self.feature,
            "scenario": self.scenario,
            "tags": self.tags,
            "objectives": self.objectives,
            "faults": [f"{f['text']}" for f in self.faults],
            "resources": self.resources,
            "destructive": any(s["destructive"] for s in self.steps),
            "expected_duration_s": self.expected_duration_s,
            "duration_basis": self.duration_basis,
            "aws_resources": self.aws_resources,
            "steps": self.steps,
        }


def objectives_of(steps: Iterable[Mapping[str, Any]], budget_s: float) -> dict[str, float]:
    """RTO and RPO objectives as the drill's Given steps set them (defaults otherwise)."""
    found: dict[str, float] = {"rto_s": RTO_OBJECTIVE_SECONDS, "rpo_s": RPO_OBJECTIVE_SECONDS}
    for step in steps:
        found.update(step.get("sets", {}))
    found["budget_s"] = budget_s
    return found


def past_durations(runs: Path, keep: int = 5) -> dict[str, list[float]]:
    """Each drill's measured durations in the last `keep` stored runs that ran it."""
    found: dict[str, list[float]] = {}
    if not runs.is_dir():
        return found
    for run in sorted((p for p in runs.iterdir() if p.is_dir()), reverse=True):
        for summary in (run / "verdicts").glob("*.json"):
            try:
                data = json.loads(summary.read_text())
                took = float(data["finished"]) - float(data["started"])
            except (OSError, ValueError, KeyError, TypeError):
                continue  # a summary from an older format or an interrupted write
            durations = found.setdefault(str(data.get("name")), [])
            if len(durations) < keep:
                durations.append(took)
    return found


def estimate(drills: Sequence[PlannedDrill], runs: Path) -> None:
    """Expected duration: the median of the drill's last runs, or unknown (never run here)."""
    past = past_durations(runs)
    for drill in drills:
        if durations := past.get(drill.name):
            drill.expected_duration_s = round(statistics.median(durations), 1)
            drill.duration_basis = f"median of the last {len(durations)} runs in {runs}"
        else:
            drill.expected_duration_s = None
            drill.duration_basis = "unknown: no stored run of this drill"


def build_plan(
    drills: Sequence[PlannedDrill],
    *,
    run_id: str,
    target: str,
    regions: Sequence[str],
    approver: str | None,
    change_ticket: str | None,
    quarter: str | None,
    profile: Mapping[str, Any],
) -> dict[str, Any]:
    known = [d.expected_duration_s for d in drills if d.expected_duration_s is not None]
    return {
        "format": PLAN_FORMAT,
        **_run_fields(run_id, target, regions, approver, change_ticket, quarter, "created_at"),
        "timing_profile": dict(profile),
        "drills": [d.to_json() for d in drills],
        "totals": {
            "drills": len(drills),
            "faults": sum(len(d.faults) for d in drills),
            "destructive_drills": sum(1 for d in drills if any(s["destructive"] for s in d.steps)),
            "resources": sorted({r for d in drills for r in d.resources}),
            "aws_resources": sorted({r for d in drills for r in d.aws_resources}),
            "expected_duration_s": round(sum(known), 1) if known else None,
            "drills_without_estimate": len(drills) - len(known),
        },
    }


def _run_fields(
    run_id: str,
    target: str,
    regions: Sequence[str],
    approver: str | None,
    change_ticket: str | None,
    quarter: str | None,
    stamp: str,
) -> dict[str, Any]:
    """What the plan and the run's metadata both say of the run (`stamp`: when, named)."""
    return {
        "run_id": run_id,
        stamp: datetime.now(UTC).isoformat(timespec="seconds"),
        "target": target,
        "environment": "lab" if target == "lab" else "aws",
        "regions": list(regions),
        "approver": approver,
        "change_ticket": change_ticket,
        "quarter": quarter,
    }


def canonical(plan: Mapping[str, Any]) -> bytes:
    return (json.dumps(plan, indent=2, sort_keys=True) + "\n").encode()


def write_plan(run_dir: Path, plan: Mapping[str, Any]) -> str:
    """`plan.json` and its SHA-256 (`plan.json.sha256`, sha256sum's format); the hash."""
    run_dir.mkdir(parents=True, exist_ok=True)
    body = canonical(plan)
    digest = hashlib.sha256(body).hexdigest()
    (run_dir / PLAN_FILE).write_bytes(body)
    (run_dir / HASH_FILE).write_text(f"{digest}  {PLAN_FILE}\n")
    return digest


def plan_hash(run_dir: Path) -> str | None:
    """The plan's recorded hash, checked against the file; None when there is no plan."""
    path, recorded = run_dir / PLAN_FILE, run_dir / HASH_FILE
    if not path.exists() or not recorded.exists():
        return None
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    expected = recorded.read_text().split()[0]
    if digest != expected:
        raise ValueError(
            f"{path}: its SHA-256 is {digest}, but {recorded.name} recorded {expected}; "
            "the plan changed after it was registered"
        )
    return digest


def render_text(plan: Mapping[str, Any]) -> str:
    """The plan as an approver reads it."""
    totals = plan["totals"]
    expected = totals["expected_duration_s"]
    lines = [
        f"drkit plan {plan['run_id']}: {_count(totals['drills'], 'drill')} on the "
        f"{plan['target']} target "
        f"({', '.join(plan['regions'])}); nothing has been changed",
        f"approver: {plan['approver'] or '(none given: --dr-approver)'}; change ticket: "
        f"{plan['change_ticket'] or '(none given: --dr-change-ticket)'}",
        f"faults: {totals['faults']}; destructive drills: {totals['destructive_drills']}; "
        f"expected duration: "
        + (f"{expected:.0f}s" if expected is not None else "unknown")
        + (
            f" (+{_count(totals['drills_without_estimate'], 'drill')} never run here)"
            if totals["drills_without_estimate"] and expected is not None
            else ""
        ),
        "",
    ]
    for drill in plan["drills"]:
        obj = drill["objectives"]
        took = drill["expected_duration_s"]
        lines.append(f"* {drill['feature']}: {drill['scenario']}")
        lines.append(
            f"    objectives: RTO {obj['rto_s']:g}s, RPO {obj['rpo_s']:g}s, "
            f"budget {obj['budget_s']:g}s; expected "
            + (f"{took:.0f}s" if took is not None else "unknown")
        )
        for fault in drill["faults"]:
            lines.append(f"    fault: {fault}")
        for step in drill["steps"]:
            if step["kind"] == "recovery":
                lines.append(f"    recovery: {step['text']}")
        if drill["resources"]:
            lines.append(f"    touches: {'; '.join(drill['resources'])}")
        for resource in drill.get("aws_resources", []):
            lines.append(f"    aws: {resource}")
    lines += ["", "resources touched by the run:"]
    lines += [f"  - {r}" for r in totals["resources"]]
    if totals.get("aws_resources"):
        lines += ["", "AWS resources touched by the run:"]
        lines += [f"  - {r}" for r in totals["aws_resources"]]
    return "\n".join(lines)


# -- run metadata -------------------------------------------------------------------------


def git_commit(root: Path = PROJECT_ROOT) -> str:
    """HEAD's commit, with `-dirty` when the work tree has changes; `unknown` outside git."""
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def _command_version(argv: Sequence[str]) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else None


def tool_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    if pg := _command_version(["pg_config", "--version"]):
        versions["postgresql"] = pg.removeprefix("PostgreSQL ")
    lock = PROJECT_ROOT / "reports" / "package-lock.json"
    if lock.exists():
        packages = json.loads(lock.read_text()).get("packages", {})
        if allure := packages.get("node_modules/allure", {}).get("version"):
            versions["allure (npm)"] = allure
    return versions


def operator() -> str:
    try:
        return os.environ.get("DRKIT_OPERATOR") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def run_metadata(
    *,
    run_id: str,
    target: str,
    regions: Sequence[str],
    approver: str | None,
    change_ticket: str | None,
    quarter: str | None,
    argv: Sequence[str],
) -> dict[str, Any]:
    return {
        **_run_fields(run_id, target, regions, approver, change_ticket, quarter, "started_at"),
        "operator": operator(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "git_commit": git_commit(),
        "tool_versions": tool_versions(),
        "command": list(argv),
    }


# -- the aws target: what each lab-named resource is on AWS --------------------------------


def aws_resources_of(drill: PlannedDrill, aws: Any) -> list[str]:
    """The AWS resources behind a drill's resources, from the aws config (an AwsConfig)."""
    import re

    found: dict[str, None] = {}

    def add(text: str) -> None:
        found.setdefault(text, None)

    def regions_in(resource: str) -> list[str]:
        named = [r for r in aws.regions if r in resource]
        return named or (list(aws.regions) if "both regions" in resource else [])

    for resource in drill.resources:
        if resource.startswith("security group of"):
            for region in regions_in(resource):
                net = aws.regions[region].network
                ports = ", ".join(map(str, net.ports)) or "all ports"
                for group in net.security_groups or ("(none declared: the fault is refused)",):
                    add(f"EC2 security group {group} in {region} (ports {ports}; ingress and "
                        "egress snapshotted, restored by difference)")  # fmt: skip
        elif resource.startswith("PostgreSQL in"):
            for region in regions_in(resource):
                db = aws.regions[region].database
                how = {
                    "rds": f"RDS instance {db.identifier}",
                    "aurora-global": f"Aurora global cluster {db.identifier}",
                }.get(aws.promotion, "self-managed PostgreSQL (pg_promote)")
                instance = f", EC2 instance {db.ec2_instance_id}" if db.ec2_instance_id else ""
                add(f"database {db.host}:{db.port} in {region}: {how}{instance}")
        elif resource.startswith("public DNS record"):
            r53 = aws.route53
            add(f"Route 53 zone {r53.zone_id} record {r53.record} ({r53.mode}, TTL {r53.ttl} s)")
        elif resource.startswith("index of"):
            for region in regions_in(resource):
                index = aws.regions[region].index
                none = f"no Pinecone index configured in {region}: index steps are refused"
                add(f"Pinecone index {index.host} ({region})" if index else none)
        elif resource.startswith("failover watcher"):
            ours = "drkit's watcher, run by the harness (health checks from the DR region)"
            theirs = "the organisation's own failover automation (observed, not driven)"
            add(ours if aws.automation == "drkit-watcher" else theirs)
        elif resource.startswith("fence on"):
            for region in regions_in(resource) or [aws.primary_region]:
                add(_fence_of(aws, region))
        elif re.search(r"Toxiproxy|replication link", resource):
            templates = {k: v for k, v in aws.fis_templates.items() if k.startswith("replication")}
            for name, template in templates.items():
                add(f"AWS FIS experiment template {template} ({name}; started, stopped on heal)")
            if not templates:
                add(f"{resource}: a Toxiproxy path, which exists on the lab's data plane only; "
                    "on AWS this fault needs an FIS template (fis_templates.replication_latency, "
                    "replication_bandwidth)")  # fmt: skip
    add(f"CloudWatch namespace {aws.cloudwatch_namespace} (drill metrics written)")
    for stop in aws.stop_conditions:
        add(f"stop condition {stop.name}: " + (f"alarm {stop.alarm} (read)" if stop.alarm
            else f"probe {stop.probe_url} (read)"))  # fmt: skip
    return list(found)


def _fence_of(aws: Any, region: str) -> str:
    """What fencing `region` touches on the aws target: its database moved into the
    quarantine group, or nothing (recorded as not fenced)."""
    quarantine = aws.regions[region].network.quarantine_group
    if quarantine is None:
        return (
            f"no fence in {region}: no quarantine_group declared (the failover records the old "
            "primary as NOT fenced)"
        )
    db = aws.regions[region].database
    instance = (
        f"RDS instance {db.identifier}"
        if aws.promotion == "rds"
        else f"EC2 instance {db.ec2_instance_id}"
    )
    return (
        f"fence of {region}: {instance} moved into quarantine group {quarantine} (its groups "
        "put back at failback)"
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
