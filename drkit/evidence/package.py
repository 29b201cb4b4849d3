"""The evidence package: one folder (and its zip) an auditor can open offline, months later.

    <out>/drkit-evidence-<quarter>-<run id>/
        allure-results/         the raw Allure results (labels, links, attachments)
        report/index.html       the Allure 3 report as a folder
        report.html             the same report as one file
        compliance/             the quarterly compliance report (.md, .html, trend charts)
        run/                    run.json, plan.json (+ .sha256), clock.json, ledger.jsonl,
                                histories/, verdicts/, evidence/ (exported rows, reports)
        manifest.json           SHA-256 and size of every file, chains, plan hash, signer
        manifest.sig            its Ed25519 signature

The build refuses a run whose plan no longer matches its hash, whose history or ledger chain
is broken, or whose files hold a configured secret.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drkit.errors import ConfigError
from drkit.evidence import secrets
from drkit.evidence.plan import PLAN_FILE, RUN_FILE, git_commit, plan_hash, tool_versions
from drkit.evidence.seal import EvidenceError, SigningKey, load_signing_key, seal
from drkit.paths import state_dir

QUARTER = re.compile(r"^\d{4}-Q[1-4]$")
RUN_FILES = (RUN_FILE, PLAN_FILE, "plan.json.sha256", "clock.json", "ledger.jsonl")
RUN_FOLDERS = ("histories", "verdicts", "evidence")


@dataclass
class Package:
    folder: Path
    zip: Path
    report: Path  # report/index.html
    single_file: Path  # report.html
    compliance: Path  # compliance/compliance-<quarter>.html
    status: str
    key_kind: str
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "zip": str(self.zip),
            "report": str(self.report),
            "single_file_report": str(self.single_file),
            "compliance_report": str(self.compliance),
            "status": self.status,
            "key": self.key_kind,
            "timings_s": self.timings,
        }


def run_folder(results: Path) -> Path:
    """The run folder from `--results`: the run folder itself or its allure-results/."""
    results = Path(results)
    if not results.exists():
        raise ConfigError(
            f"--results {results}: no such folder; pass a run folder such as "
            "reports/runs/<run-id> (the newest is printed at the end of `make drill`)"
        )
    if not results.is_dir():
        raise ConfigError(f"--results {results}: not a folder; pass a run folder")
    run = results.parent if results.name == "allure-results" else results
    if not (run / "allure-results").is_dir():
        raise ConfigError(
            f"--results {results}: no allure-results/ in {run}; pass the folder of a drill run "
            "(reports/runs/<run-id>)"
        )
    return run


def check_quarter(quarter: str) -> str:
    if not QUARTER.match(quarter):
        raise ConfigError(
            f"--quarter {quarter!r}: not a quarter; write it as YYYY-Qn, e.g. 2026-Q4"
        )
    return quarter


def build_package(
    results: Path,
    *,
    quarter: str,
    out: Path,
    key: SigningKey | None = None,
    firm: str = "the firm",
    state: Path | None = None,
    progress: Callable[[str], None] = lambda stage: None,
) -> Package:
    check_quarter(quarter)
    run = run_folder(results)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    try:
        digest = plan_hash(run)
    except ValueError as exc:
        raise EvidenceError(str(exc)) from None
    meta = json.loads((run / RUN_FILE).read_text()) if (run / RUN_FILE).exists() else {}
    key = key or load_signing_key()
    folder = Path(out) / f"drkit-evidence-{quarter}-{run.name}"
    if folder.exists():
        raise ConfigError(
            f"{folder} already exists; choose another --out or remove it (a package is never "
            "overwritten)"
        )
    folder.mkdir(parents=True)
    try:
        return _build(
            run, folder, quarter, meta, digest, key, firm, state, timings, started, progress
        )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _build(
    run: Path,
    folder: Path,
    quarter: str,
    meta: dict[str, Any],
    digest: str | None,
    key: SigningKey,
    firm: str,
    state: Path | None,
    timings: dict[str, float],
    started: float,
    progress: Callable[[str], None],
) -> Package:
    from drkit.evidence.html import render_report
    from drkit.evidence.run_report import build_run_report

    progress("copying the run folder")
    shutil.copytree(run / "allure-results", folder / "allure-results")
    (folder / "run").mkdir()
    for name in RUN_FILES:
        if (run / name).exists():
            shutil.copy2(run / name, folder / "run" / name)
    for name in RUN_FOLDERS:
        if (run / name).is_dir():
            shutil.copytree(run / name, folder / "run" / name)
    timings["copy"] = _lap(started)

    progress("writing the compliance report")
    t = time.perf_counter()
    report = build_run_report(run, quarter=quarter, firm=firm, key_kind=key.kind)
    stem = f"compliance-{quarter}"
    report.write(folder / "compliance", stem)
    timings["compliance_report"] = _lap(t)

    progress("rendering the HTML report (Allure)")
    t = time.perf_counter()
    name = f"DR drill report {quarter} (run {run.name})"
    index = render_report(folder / "allure-results", folder / "report", name=name)
    timings["html_folder"] = _lap(t)
    progress("rendering the one-file HTML report (Allure)")
    t = time.perf_counter()
    scratch = folder.parent / f".{folder.name}.single"
    try:
        single = render_report(folder / "allure-results", scratch, single_file=True, name=name)
        shutil.move(str(single), folder / "report.html")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    timings["html_single_file"] = _lap(t)

    progress("scanning for configured secrets")
    t = time.perf_counter()
    configured = secrets.configured_secrets(state or state_dir())
    if leaks := secrets.scan_folder(folder, configured):
        raise EvidenceError(
            f"refusing to seal {folder}: a configured secret is in it ({secrets.describe(leaks)}); "
            "find what wrote it, remove it from the run folder, and build again"
        )
    timings["secret_scan"] = _lap(t)

    progress("sealing: manifest, signature, zip")
    t = time.perf_counter()
    zip_path = seal(
        folder,
        meta={
            "run_id": meta.get("run_id", run.name),
            "quarter": quarter,
            "plan_sha256": digest,
            "git_commit": meta.get("git_commit") or git_commit(),
            "tool_versions": meta.get("tool_versions") or tool_versions(),
            "target": meta.get("target", "lab"),
            "environment": meta.get("environment", "lab"),
            "approver": meta.get("approver"),
            "change_ticket": meta.get("change_ticket"),
            "result": report.status,
        },
        key=key,
    )
    timings["seal"] = _lap(t)
    timings["total"] = _lap(started)
    return Package(
        folder,
        zip_path,
        index,
        folder / "report.html",
        folder / "compliance" / f"{stem}.html",
        report.status,
        key.kind,
        timings,
    )


def _lap(since: float) -> float:
    return round(time.perf_counter() - since, 3)
