"""A drill's evidence as report attachments: tables (CSV, HTML) and charts (PNG).

Everything here reads what the drill recorded (its history, verdicts and ledger); nothing is
measured again. Each builder returns None when the drill has nothing of that kind, so a
report never shows an empty chart posing as evidence.
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drkit.measure import observations as observed
from drkit.measure.chain import read_chain
from drkit.measure.history import Op


@dataclass(frozen=True)
class Attachment:
    name: str
    body: bytes
    mime: str  # text/csv, text/html, image/png, application/json
    extension: str


def _utc(wall: float | None) -> str:
    if wall is None:
        return ""
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds")


def _csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def _table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    """A self-contained HTML table (no script, no outside style)."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    style = (
        "body{font-family:sans-serif;font-size:13px}table{border-collapse:collapse}"
        "td,th{border:1px solid #bbb;padding:3px 8px;text-align:left;vertical-align:top}"
        "th{background:#eee}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body><h3>{html.escape(title)}</h3>"
        f"<table><tr>{head}</tr>{body}</table></body></html>"
    ).encode()


def verdict_of(summary: Mapping[str, Any], checker: str) -> Mapping[str, Any] | None:
    for verdict in summary.get("verdicts", []):
        if verdict.get("checker") == checker:
            return verdict
    return None


def lost_writes(ops: Sequence[Op], summary: Mapping[str, Any]) -> Attachment | None:
    """The acknowledged writes the surviving database lacks (CSV); None when RPO was not
    measured. An RPO measured with no loss gives the header alone: zero lost, on the record."""
    verdict = verdict_of(summary, "rpo")
    if verdict is None:
        return None
    lost = set((verdict.get("details") or {}).get("lost_ids", []))
    acked = {
        op.value.get("id"): op
        for op in ops
        if op.kind == "write" and op.type == "ok" and isinstance(op.value, dict)
    }
    rows = [
        (
            doc_id,
            _utc(acked[doc_id].wall) if doc_id in acked else "",
            getattr(acked.get(doc_id), "region", ""),
        )
        for doc_id in sorted(lost)
    ]
    return Attachment(
        "lost acknowledged writes",
        _csv(("id", "acknowledged_at_utc", "acknowledged_by"), rows),
        "text/csv",
        "csv",
    )


def ledger_rows(ledger: Path, since: float | None, until: float | None) -> list[dict[str, Any]]:
    """Each fault and recovery action the ledger recorded in [since, until]: what, when
    injected or applied, when healed, and whether the heal was read back."""
    if not ledger.exists():
        return []
    records: dict[int, dict[str, Any]] = {}
    for event in read_chain(ledger).records:
        name, wall = event.get("event"), float(event.get("wall") or 0.0)
        if name == "intent":
            rec = event["record"]
            if (since is not None and wall < since) or (until is not None and wall > until):
                continue
            records[rec["id"]] = {
                "id": rec["id"],
                "category": rec["category"],
                "kind": rec["kind"],
                "description": rec["description"],
                "intended_at": wall,
            }
        elif (rid := event.get("id")) in records:
            records[rid][str(name)] = wall
            if "error" in event:
                records[rid]["problem"] = f"{name}: {event['error']}"
    return list(records.values())


def _state(row: Mapping[str, Any]) -> str:
    if "healed" in row:
        return "healed, read back"
    if "undone" in row:
        return "undone, read back"
    if row["category"] == "recovery" and "applied" in row:
        return "applied (left in place; the lab reset ends it)"
    return str(row.get("problem", "still applied"))


def ledger_table(ledger: Path, since: float | None, until: float | None) -> Attachment | None:
    rows = ledger_rows(ledger, since, until)
    if not rows:
        return None
    table = [
        (
            r["id"],
            r["category"],
            r["description"],
            _utc(r.get("injected") or r.get("applied")),
            _utc(r.get("healed")),
            _state(r),
        )
        for r in rows
    ]
    header = ("#", "category", "fault or recovery action", "applied (UTC)", "healed (UTC)", "state")
    return Attachment(
        "fault and recovery ledger",
        _table("Fault and recovery ledger", header, table),
        "text/html",
        "html",
    )


def preflight_table(ops: Sequence[Op]) -> Attachment | None:
    """Every pre-flight the drill took: each check, its answer, and why it refused."""
    rows: list[tuple[Any, ...]] = []
    for op in ops:
        if op.kind != "health" or not isinstance(op.value, dict):
            continue
        if op.value.get("check") != observed.PREFLIGHT:
            continue
        verdict = "ready" if op.value.get("ready") else "refused"
        checks = op.value.get("checks") or {}
        for name, result in checks.items() if isinstance(checks, dict) else enumerate(checks):
            rows.append(
                (
                    _utc(op.wall),
                    op.value.get("mode", ""),
                    verdict,
                    name,
                    json.dumps(result, default=str),
                )
            )
        for issue in op.value.get("issues") or []:
            rows.append((_utc(op.wall), op.value.get("mode", ""), verdict, "issue", issue))
    if not rows:
        return None
    header = ("at (UTC)", "mode", "answer", "check", "result")
    return Attachment(
        "pre-flight checks", _table("Pre-flight checks", header, rows), "text/html", "html"
    )


RECONCILE_CHECKS = (observed.INDEX_DRIFT, observed.RECONCILIATION, observed.COMPARISON)


def reconciliation(ops: Sequence[Op]) -> Attachment | None:
    """Drift read back, the repair, and database/index comparisons: missing, extra and stale
    ids as recorded (JSON)."""
    found = [
        {"at": _utc(op.wall), "region": op.region, **op.value}
        for op in ops
        if op.kind == "health"
        and isinstance(op.value, dict)
        and op.value.get("check") in RECONCILE_CHECKS
    ]
    if not found:
        return None
    body = json.dumps(found, indent=2, default=str).encode()
    return Attachment("reconciliation across database and index", body, "application/json", "json")


def charts(
    ops: Sequence[Op],
    summary: Mapping[str, Any],
    *,
    title: str,
    runs: Path | None,
) -> list[Attachment]:
    """The timeline, the replication lag, the RTO waterfall and the RTO/RPO trend (PNG)."""
    from drkit.evidence import charts as draw

    found: list[Attachment] = []
    if ops:
        found.append(
            Attachment("timeline", draw.timeline_chart(ops, title=title), "image/png", "png")
        )
    threshold = (summary.get("profile") or {}).get("lag_alarm_threshold_s")
    if (lag := draw.lag_chart(ops, title=title, threshold_s=threshold)) is not None:
        found.append(Attachment("replication lag", lag, "image/png", "png"))
    rto = verdict_of(summary, "rto")
    objective = rto.get("objective") if rto else None
    budget = verdict_of(summary, "budget")
    waterfall = draw.rto_waterfall(
        ops,
        title=title,
        objective_s=objective,
        budget_s=budget.get("objective") if budget else None,
        error_bar_s=rto.get("error_bar") if rto else None,
    )
    if waterfall is not None:
        found.append(Attachment("RTO waterfall by phase", waterfall, "image/png", "png"))
    measured = rto is not None or verdict_of(summary, "rpo") is not None
    if runs is not None and measured:
        points = measured_trend(runs, str(summary.get("name")))
        if points:
            found.append(
                Attachment(
                    "RTO and RPO across runs",
                    draw.trend_chart(points, title=title),
                    "image/png",
                    "png",
                )
            )
    return found


def measured_trend(runs: Path, name: str, last: int = 10) -> list[Any]:
    """The drill's RTO/RPO in the last runs that kept verdicts (older runs kept histories
    only: nothing measured to show)."""
    from drkit.evidence.charts import load_trend

    return [p for p in load_trend(runs, name, last=last) if p.verdict != "no verdicts"]


def for_drill(
    ops: Sequence[Op],
    summary: Mapping[str, Any],
    ledger: Path,
    *,
    title: str,
    runs: Path | None = None,
) -> list[Attachment]:
    """Every attachment a drill's report entry gets, in reading order."""
    found = charts(ops, summary, title=title, runs=runs)
    since, until = summary.get("started"), summary.get("finished")
    for built in (
        lost_writes(ops, summary),
        ledger_table(ledger, since, until),
        preflight_table(ops),
        reconciliation(ops),
    ):
        if built is not None:
            found.append(built)
    return found
