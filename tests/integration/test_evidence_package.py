"""The evidence package of one real drill run: labels, links, attachments, plan, clocks, seal,
secrets and the compliance report, as an auditor would open them.

One nested pytest runs two drills of the catalog against the session's lab (a region outage
with automated failover, and a DR index with 5 % of its vectors missing) with an approver, a
change ticket, a quarter and secrets planted in its environment; the package is built once from
its run folder and signed with a key made for the test. Needs the lab, Node.js and Allure 3.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets as token
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from drkit.cli import main as drkit_main
from drkit.evidence import secrets
from drkit.evidence.html import ReportToolMissing, remote_references
from drkit.evidence.package import Package, build_package
from drkit.evidence.seal import EvidenceError, generate_keypair, load_signing_key
from drkit.lab.lab import Lab
from drkit.measure.outcome import allure_categories
from drkit.paths import RUN_ID_ENV, new_run_id, runs_dir

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
QUARTER = "2026-Q4"
APPROVER = "A. Approver"
TICKET = "CHG-4370"
TMS_PATTERN = "https://change.example.invalid/{}"
REGION_OUTAGE = "us-east-1 is cut off by its security group and the watcher fails over"
PARTIAL = "5 % of the DR index's vectors are missing"
SELECTION = "security_group_and_the_watcher_fails_over or (vectors_are_mode and missing)"
PLANTED = ("DRKIT_TEST_DB_PASSWORD", "AWS_SECRET_ACCESS_KEY", "PINECONE_API_KEY")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MIN_CHART_WIDTH = 800


@dataclass(frozen=True)
class DrillRun:
    folder: Path  # the run folder: run.json, plan.json, clock.json, allure-results/, ...
    results: dict[str, dict[str, Any]]  # Allure result by scenario name
    planted: dict[str, str]  # environment variable -> the secret value the run was given

    @property
    def allure(self) -> Path:
        return self.folder / "allure-results"


@dataclass(frozen=True)
class Sealed:
    package: Package
    public_key: Path
    private_key: Path


@pytest.fixture(scope="module")
def drill_run(lab: Lab) -> DrillRun:
    """Two drills in a nested pytest on the session's lab, with secrets in its environment."""
    planted = {name: token.token_urlsafe(18) for name in PLANTED}  # 24 characters each
    run_id = new_run_id()
    command = [
        *(sys.executable, "-m", "pytest", "drills", "-q", "-p", "no:cacheprovider"),
        *("-k", SELECTION, "--dr-approver", APPROVER, "--dr-change-ticket", TICKET),
        *("--dr-quarter", QUARTER, "--allure-link-pattern", f"tms:{TMS_PATTERN}"),
    ]
    # A child process: Allure's plugin manager is process-global (see test_negative_controls);
    # the lab, its lock and the runs folder come through the environment.
    done = subprocess.run(
        command,
        cwd=ROOT,
        env={**os.environ, **planted, RUN_ID_ENV: run_id},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(
            f"the nested drill run failed (exit {done.returncode}); its output ends:\n"
            f"{done.stdout[-4000:]}{done.stderr[-2000:]}",
            pytrace=False,
        )
    folder = runs_dir() / run_id
    results = {}
    for path in (folder / "allure-results").glob("*-result.json"):
        result = json.loads(path.read_text())
        results[result["name"]] = result
    assert set(results) == {REGION_OUTAGE, PARTIAL}, f"Allure results: {sorted(results)}"
    return DrillRun(folder, results, planted)


@pytest.fixture(scope="module")
def sealed(drill_run: DrillRun, lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Sealed:
    """The package of the run, signed with a key made for this test."""
    keys = tmp_path_factory.mktemp("keys")
    private, public = keys / "signing.pem", keys / "signing.pub.pem"
    generate_keypair(private, public)
    out = tmp_path_factory.mktemp("evidence")
    try:
        package = build_package(
            drill_run.folder,
            quarter=QUARTER,
            out=out,
            key=load_signing_key(private),
            state=lab.state,
        )
    except ReportToolMissing as exc:
        pytest.fail(str(exc), pytrace=False)  # CI installs the tools: their absence is a bug
    return Sealed(package, public, private)


def _labels(result: dict[str, Any], name: str) -> list[str]:
    return [label["value"] for label in result.get("labels", []) if label["name"] == name]


def _attachments(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["name"]: a for a in result.get("attachments", [])}


def _verify(path: Path, public_key: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """`drkit evidence verify PATH --public-key KEY`: its exit status and what it printed."""
    capsys.readouterr()
    status = drkit_main(["evidence", "verify", str(path), "--public-key", str(public_key)])
    said = capsys.readouterr()
    return status, said.out + said.err


# -- Allure: labels, links, attachments, run-level files ----------------------------------


@pytest.mark.parametrize(
    ("scenario", "feature", "owner", "tag", "rules"),
    [
        (
            REGION_OUTAGE,
            "Region outage with automated failover",
            "sre",
            "region_outage",
            {"FINRA Rule 4370", "SEC Rule 17a-4"},
        ),
        (
            PARTIAL,
            "Partial consistency of the DR index",
            "search",
            "partial_consistency",
            {"FINRA Rule 4370"},
        ),
    ],
    ids=["region-outage", "partial-consistency"],
)
def test_each_result_carries_the_labels_and_links_an_auditor_filters_by(
    drill_run: DrillRun, scenario: str, feature: str, owner: str, tag: str, rules: set[str]
) -> None:
    result = drill_run.results[scenario]
    expected = {
        "epic": ["Business-continuity plan (FINRA Rule 4370)"],
        "feature": [feature],
        "story": [scenario],
        "severity": ["critical"],
        "owner": [owner],
        "approver": [APPROVER],
    }
    found = {name: _labels(result, name) for name in expected}
    assert found == expected, f"labels of {scenario!r}: {result.get('labels')}"
    assert tag in _labels(result, "tag"), f"no tag {tag!r}: {result.get('labels')}"

    links = result.get("links", [])
    named = {link.get("name") for link in links if link.get("type") == "link"}
    assert named == rules, f"rule links of {scenario!r}: {links}"
    assert all(link["url"].startswith("https://") for link in links if link["name"] in rules)
    tms = [link for link in links if link.get("type") == "tms"]
    assert [link["url"] for link in tms] == [TMS_PATTERN.format(TICKET)], (
        f"the change ticket's link did not get --allure-link-pattern: {links}"
    )


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        (
            REGION_OUTAGE,
            {
                "timeline": "image/png",
                "RTO waterfall by phase": "image/png",
                "lost acknowledged writes": "text/csv",
                "fault and recovery ledger": "text/html",
            },
        ),
        (
            PARTIAL,
            {
                "pre-flight checks": "text/html",
                "reconciliation across database and index": "application/json",
            },
        ),
    ],
    ids=["region-outage", "partial-consistency"],
)
def test_each_drill_attaches_its_evidence_with_its_mime_type(
    drill_run: DrillRun, scenario: str, expected: dict[str, str]
) -> None:
    attached = _attachments(drill_run.results[scenario])
    found = {name: attached[name]["type"] for name in expected if name in attached}
    assert found == expected, f"{scenario!r} attached {sorted(attached)}"
    for name in expected:
        source = drill_run.allure / attached[name]["source"]
        assert source.is_file() and source.stat().st_size > 0, f"{name}: {source} is empty"


def test_lost_writes_are_a_csv_with_its_header(drill_run: DrillRun) -> None:
    attached = _attachments(drill_run.results[REGION_OUTAGE])["lost acknowledged writes"]
    lines = (drill_run.allure / attached["source"]).read_text().splitlines()
    assert lines[0] == "id,acknowledged_at_utc,acknowledged_by", lines[:3]


def test_reconciliation_is_json_counting_the_missing_vectors(drill_run: DrillRun) -> None:
    """The drift read back and the repair agree on how many vectors were missing."""
    attached = _attachments(drill_run.results[PARTIAL])
    body = drill_run.allure / attached["reconciliation across database and index"]["source"]
    records = {r["check"]: r for r in json.loads(body.read_text())}
    drift, repair = records.get("index drift"), records.get("reconciliation")
    assert drift and repair, f"no drift or no repair recorded: {list(records)}"
    assert drift["mode"] == "missing" and drift["count"] > 0, drift
    assert repair["missing"] == drift["count"], (drift, repair)


def test_every_chart_renders(drill_run: DrillRun) -> None:
    """Each PNG attachment is a real image of a readable size (not an empty placeholder)."""
    charts = [
        (scenario, a)
        for scenario, result in drill_run.results.items()
        for a in result.get("attachments", [])
        if a["type"] == "image/png"
    ]
    names = {a["name"] for scenario, a in charts if scenario == REGION_OUTAGE}
    assert {"timeline", "RTO waterfall by phase"} <= names, names
    for scenario, chart in charts:
        data = (drill_run.allure / chart["source"]).read_bytes()
        where = f"{scenario!r} chart {chart['name']!r} ({chart['source']})"
        assert data[:8] == PNG_SIGNATURE, f"{where} is not a PNG: {data[:16]!r}"
        assert data[12:16] == b"IHDR", f"{where} has no IHDR chunk first"
        width, height = struct.unpack(">II", data[16:24])
        assert width >= MIN_CHART_WIDTH and height > 0, f"{where} is {width}x{height} px"


def test_run_level_allure_files(drill_run: DrillRun) -> None:
    lines = (drill_run.allure / "environment.properties").read_text().splitlines()
    environment = dict(line.split("=", 1) for line in lines if "=" in line)
    assert environment["target"] == "lab", environment
    assert environment["approver"] == APPROVER, environment
    assert environment["change.ticket"] == TICKET, environment
    assert environment["git.commit"] not in ("", "None"), environment
    clocks = [key for key in environment if key.startswith("clock.start.")]
    assert len(clocks) == 2, f"clock.start entries: {clocks}"

    executor = json.loads((drill_run.allure / "executor.json").read_text())
    assert executor["type"] == "drkit" and drill_run.folder.name in executor["buildName"]
    categories = json.loads((drill_run.allure / "categories.json").read_text())
    assert categories == allure_categories()


# -- the run folder: registered plan, run metadata, clocks ---------------------------------


def test_the_plan_is_registered_with_its_hash(drill_run: DrillRun) -> None:
    plan_bytes = (drill_run.folder / "plan.json").read_bytes()
    recorded = (drill_run.folder / "plan.json.sha256").read_text().split()
    assert recorded == [hashlib.sha256(plan_bytes).hexdigest(), "plan.json"], recorded

    plan = json.loads(plan_bytes)
    assert (plan["approver"], plan["change_ticket"]) == (APPROVER, TICKET)
    outage = [d for d in plan["drills"] if d["scenario"] == REGION_OUTAGE]
    assert len(outage) == 1, [d["scenario"] for d in plan["drills"]]
    faults, resources = outage[0]["faults"], outage[0]["resources"]
    assert any("us-east-1" in f and "security group" in f for f in faults), faults
    assert "security group of us-east-1 (lab EC2 on moto)" in resources, resources

    run = json.loads((drill_run.folder / "run.json").read_text())
    assert (run["approver"], run["change_ticket"]) == (APPROVER, TICKET), run
    assert run["plan_sha256"] == recorded[0], run


def test_clock_offsets_bracket_the_run(drill_run: DrillRun) -> None:
    recorded = json.loads((drill_run.folder / "clock.json").read_text())
    servers = {"PostgreSQL us-east-1", "PostgreSQL us-west-2"}
    for when in ("start", "end"):
        offsets = {o["source"]: o for o in recorded.get(when, [])}
        assert set(offsets) == servers, f"clock.json {when}: {recorded.get(when)}"
        for source, offset in offsets.items():
            assert offset["offset_s"] is not None, f"{when} {source}: {offset}"
            assert offset["uncertainty_s"] > 0, f"{when} {source}: {offset}"


# -- the seal ------------------------------------------------------------------------------


def test_the_sealed_package_verifies_with_its_public_key(
    sealed: Sealed, capsys: pytest.CaptureFixture[str]
) -> None:
    for path in (sealed.package.folder, sealed.package.zip):
        status, said = _verify(path, sealed.public_key, capsys)
        assert status == 0, f"verify {path.name}: exit {status}:\n{said}"
        assert "intact" in said, said


@pytest.mark.parametrize("tampering", ["changed", "added", "missing"])
def test_a_tampered_copy_names_the_file(
    sealed: Sealed, tmp_path: Path, tampering: str, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / sealed.package.folder.name
    shutil.copytree(sealed.package.folder, copy)
    rel = "run/plan.json"
    if tampering == "changed":
        data = bytearray((copy / rel).read_bytes())
        data[len(data) // 2] ^= 0x01  # one bit of one byte
        (copy / rel).write_bytes(bytes(data))
    elif tampering == "added":
        rel = "run/evidence/afterthought.txt"
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        (copy / rel).write_text("added after the seal\n")
    else:
        (copy / rel).unlink()

    status, said = _verify(copy, sealed.public_key, capsys)

    assert status != 0, f"verify passed a package with {rel} {tampering}:\n{said}"
    assert f"{tampering}: {rel}" in said, said


def test_another_public_key_fails(
    sealed: Sealed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.pub.pem"
    generate_keypair(tmp_path / "other.pem", other)

    status, said = _verify(sealed.package.folder, other, capsys)

    assert status != 0, f"verify passed with a key that did not sign:\n{said}"
    assert "not the public key supplied" in said, said


# -- secrets -------------------------------------------------------------------------------


def test_no_configured_secret_is_anywhere_in_the_package(
    drill_run: DrillRun, sealed: Sealed, lab: Lab
) -> None:
    lab_secrets = secrets.configured_secrets(lab.state, environ={})
    assert lab_secrets, f"no lab secret in {lab.state / 'secrets.json'}: the scan would be empty"
    planted = secrets.configured_secrets(environ=drill_run.planted)
    assert len(planted) == len(PLANTED), planted.keys()
    looked_for = {**lab_secrets, **planted}

    leaks = secrets.scan_folder(sealed.package.folder, looked_for)
    leaks += secrets.scan_zip(sealed.package.zip, looked_for)

    assert not leaks, f"secrets in the package: {secrets.describe(leaks)}"


def test_build_refuses_a_run_folder_holding_a_secret(
    drill_run: DrillRun,
    sealed: Sealed,
    lab: Lab,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The positive control of the scan: a secret written where no chain guards it."""
    name, value = "DRKIT_TEST_DB_PASSWORD", drill_run.planted["DRKIT_TEST_DB_PASSWORD"]
    monkeypatch.setenv(name, value)
    copy = tmp_path / "runs" / drill_run.folder.name
    shutil.copytree(drill_run.folder, copy)
    notes = copy / "evidence" / "operator-notes.txt"
    notes.parent.mkdir(exist_ok=True)
    notes.write_text(f"connected with password {value}\n")
    out = tmp_path / "evidence"

    with pytest.raises(EvidenceError) as refused:
        build_package(
            copy,
            quarter=QUARTER,
            out=out,
            key=load_signing_key(sealed.private_key),
            state=lab.state,
        )

    message = str(refused.value)
    assert "run/evidence/operator-notes.txt" in message, message
    assert f"environment variable {name}" in message, message
    assert value not in message, "the refusal printed the secret's value"
    assert not out.exists() or not any(out.iterdir()), "a refused build left a package behind"


# -- the compliance report -----------------------------------------------------------------


def test_the_compliance_report_states_what_an_examiner_asks(
    drill_run: DrillRun, sealed: Sealed
) -> None:
    summaries = [json.loads(p.read_text()) for p in (drill_run.folder / "verdicts").glob("*.json")]
    outage = [s for s in summaries if "security_group" in s["name"]]
    assert len(outage) == 1, [s["name"] for s in summaries]
    rto = [v for v in outage[0]["verdicts"] if v["checker"] == "rto"]
    assert len(rto) == 1 and rto[0]["value"] is not None, outage[0]["verdicts"]
    plan_sha256 = (drill_run.folder / "plan.json.sha256").read_text().split()[0]
    expected = [
        APPROVER,
        plan_sha256,
        f"{rto[0]['value']:.3f} s",
        "Clock evidence",
        "Fidelity caveats",
        "FINRA Rule 4370 plan elements",
        "Sign-off",
        "Break-even",
    ]
    compliance = sealed.package.folder / "compliance"
    for path in (
        compliance / f"compliance-{QUARTER}.md",
        compliance / f"compliance-{QUARTER}.html",
    ):
        text = path.read_text()
        missing = [fragment for fragment in expected if fragment not in text]
        assert not missing, f"{path.name} lacks {missing}"


def test_the_compliance_html_loads_nothing_from_outside(sealed: Sealed) -> None:
    page = (sealed.package.folder / "compliance" / f"compliance-{QUARTER}.html").read_text()
    loads = re.findall(r"""\b(?:src|href)\s*=\s*["']?\s*((?:https?:)?//[^\s"'>]+)""", page, re.I)
    assert not loads, f"the compliance report loads from outside: {loads[:5]}"
    assert not remote_references(page), remote_references(page)[:5]
