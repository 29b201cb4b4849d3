"""The run-level files of the Allure results: environment, executor and categories."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from drkit.measure.outcome import allure_categories


def _escape(value: str) -> str:
    """A Java properties value: backslashes, line breaks and separators escaped."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace("=", "\\=").replace(":", "\\:")


def environment(meta: Mapping[str, Any], clocks: Mapping[str, Any]) -> dict[str, str]:
    """What the report's Environment panel shows: target, regions, versions, people, clocks."""
    env = {
        "run.id": str(meta.get("run_id")),
        "target": str(meta.get("target")),
        "environment": str(meta.get("environment")),
        "regions": ", ".join(meta.get("regions", [])),
        "quarter": str(meta.get("quarter") or "-"),
        "git.commit": str(meta.get("git_commit")),
        "host": str(meta.get("host")),
        "operator": str(meta.get("operator")),
        "approver": str(meta.get("approver") or "-"),
        "change.ticket": str(meta.get("change_ticket") or "-"),
        "plan.sha256": str(meta.get("plan_sha256") or "-"),
    }
    for tool, version in (meta.get("tool_versions") or {}).items():
        env[f"version.{tool}"] = str(version)
    for when, offsets in clocks.items():
        for offset in offsets:
            value = (
                f"{offset['offset_s'] * 1000:+.3f} ms +- {offset['uncertainty_s'] * 1000:.3f} ms"
                if offset.get("offset_s") is not None
                else f"not measured: {offset.get('error')}"
            )
            env[f"clock.{when}.{offset['source']}"] = value
    return env


def write(results: Path, meta: Mapping[str, Any] | None, clocks: Mapping[str, Any]) -> None:
    """categories.json always; environment.properties and executor.json when the run has
    metadata (a run that registered a plan)."""
    results.mkdir(parents=True, exist_ok=True)
    (results / "categories.json").write_text(json.dumps(allure_categories(), indent=2))
    if meta is None:
        return
    lines = [f"{k.replace(' ', '_')}={_escape(v)}" for k, v in environment(meta, clocks).items()]
    (results / "environment.properties").write_text("\n".join(lines) + "\n")
    executor = {
        "name": f"drkit on {meta.get('host')}",
        "type": "drkit",
        "buildName": f"drill run {meta.get('run_id')}",
        "buildOrder": meta.get("run_id"),
        "reportName": f"DR drill report {meta.get('quarter') or meta.get('run_id')}",
    }
    (results / "executor.json").write_text(json.dumps(executor, indent=2))
