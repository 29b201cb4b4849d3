"""The quarterly compliance report of a whole run, in Markdown and HTML.

Built from the run folder alone (plan, run metadata, verdicts, histories, ledger, clock
offsets) and the stored runs before it (trends), so anyone holding the package can rebuild
it. Sections follow what an examiner asks: what was planned and approved, what ran, what was
measured and how, what was lost, what stayed broken, how far to trust the figures.
"""

from __future__ import annotations

import base64
import html
import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drkit.cost import break_even
from drkit.evidence.attachments import ledger_rows, measured_trend, verdict_of
from drkit.evidence.clock import CLOCK_FILE
from drkit.evidence.plan import PLAN_FILE, RUN_FILE, plan_hash
from drkit.measure import observations as observed
from drkit.measure.chain import read_chain
from drkit.measure.history import load_history

# FINRA Rule 4370(c): the elements a business-continuity plan must address, at a minimum.
FINRA_4370_ELEMENTS: tuple[tuple[str, str], ...] = (
    ("c1", "Data back-up and recovery (hard copy and electronic)"),
    ("c2", "All mission critical systems"),
    ("c3", "Financial and operational assessments"),
    ("c4", "Alternate communications between customers and the member"),
    ("c5", "Alternate communications between the member and its employees"),
    ("c6", "Alternate physical location of employees"),
    ("c7", "Critical business constituent, bank, and counter-party impact"),
    ("c8", "Regulatory reporting"),
    ("c9", "Communications with regulators"),
    ("c10", "Prompt customer access to funds and securities if the member cannot continue"),
)
# Which drill tags exercise which element (the rest are outside what a drill can show).
ELEMENT_TAGS: dict[str, frozenset[str]] = {
    "c1": frozenset({"point_in_time_restore", "rpo_breach", "failback", "planned_switchover"}),
    "c2": frozenset(
        {"region_outage", "dns_failover", "flapping", "split_brain", "finra_quarterly"}
    ),
}
LAB_CAVEATS = (
    "Both regions run on one machine over loopback: real cross-region latency, bandwidth and "
    "packet loss appear only where a drill injects them with Toxiproxy.",
    "Security groups are moto's EC2 API; the lab enforces their rules by blackholing the "
    "matching Toxiproxy paths, so a revoked rule cuts traffic only on the paths the lab "
    "routes through Toxiproxy.",
    "Route 53, CloudWatch and S3 are moto in server mode: changes are INSYNC at once, and the "
    "lab evaluates alarms and health checks itself (moto never does).",
    "PostgreSQL streaming replication, promotion (pg_promote) and pg_rewind are real; managed "
    "services (RDS, Aurora global databases) promote and replicate differently.",
    "The lab's timing profile (0.5 s health checks, 1 s DNS TTL) is faster than production's: "
    "lab RTOs prove the mechanism and its budget, not production's minutes.",
    "All clocks are this machine's: the database clock offsets measure one host's clocks.",
)
METHOD = {
    "RTO": "From the disaster (the first fault marked as the disaster, from the harness's "
    "monotonic clock) to the first acknowledged write on the new writer that is followed by 5 "
    "more successful writes on it. Error bar: the writer's period (the true recovery may fall "
    "anywhere between two writes). Phases from the recovery marks: detection, decision, "
    "fencing, promotion, DNS switch, client convergence.",
    "RPO": "From the final read of the surviving database: an acknowledged write is lost when "
    "its id is absent or its content hash differs. RPO is 0 with no loss, else the span from "
    "the oldest lost acknowledgement to the disaster. Writes whose outcome is unknown are "
    "listed apart and never counted as lost. Error bar: the writer's period.",
}
SIGN_OFF = (
    "Prepared by (operator)",
    "Approved by (plan approver)",
    "Business-continuity plan owner",
    "Senior management approval (FINRA Rule 4370(d))",
    "Compliance review",
)


@dataclass
class DrillRecord:
    name: str
    summary: dict[str, Any]
    history: Path | None
    plan: dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return str(self.plan.get("scenario") or self.name)

    @property
    def status(self) -> str:
        result = self.summary.get("result") or {}
        if result.get("status"):
            return str(result["status"])
        verdicts = self.summary.get("verdicts", [])
        return "passed" if verdicts and all(v["valid"] is True for v in verdicts) else "unknown"


def _load_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else None


def load_run(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any], list[DrillRecord]]:
    """run.json, plan.json and one record per drill summary (in start order)."""
    meta = _load_json(run_dir / RUN_FILE) or {"run_id": run_dir.name}
    plan = _load_json(run_dir / PLAN_FILE) or {"drills": []}
    planned = {d["name"]: d for d in plan.get("drills", [])}
    drills = []
    for path in sorted((run_dir / "verdicts").glob("*.json")):
        summary = json.loads(path.read_text())
        history = run_dir / "histories" / path.name.replace(".json", ".jsonl")
        drills.append(
            DrillRecord(
                summary["name"],
                summary,
                history if history.exists() else None,
                planned.get(summary["name"], {}),
            )
        )
    drills.sort(key=lambda d: d.summary.get("started") or 0)
    return meta, plan, drills


def _utc(wall: float | None) -> str:
    if wall is None:
        return "-"
    return datetime.fromtimestamp(wall, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def _figure(verdict: Mapping[str, Any] | None) -> str:
    if verdict is None:
        return "not measured"
    value = verdict.get("value")
    if value is None:
        return f"not measured ({verdict.get('reason', '')})"
    bar = verdict.get("error_bar")
    return f"{value:.3f} s" + (f" +- {bar:.3f} s" if bar is not None else "")


def _state(verdict: Mapping[str, Any] | None) -> str:
    if verdict is None:
        return "-"
    valid = verdict.get("valid")
    return "PASS" if valid is True else "FAIL" if valid is False else "UNKNOWN"


# -- the document: sections of paragraphs, tables and images, rendered twice --------------


@dataclass
class Section:
    title: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def text(self, paragraph: str) -> Section:
        self.blocks.append(("text", paragraph))
        return self

    def bullets(self, items: Sequence[str]) -> Section:
        self.blocks.append(("bullets", list(items)))
        return self

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Section:
        self.blocks.append(("table", (list(header), [list(map(str, r)) for r in rows])))
        return self

    def image(self, path: str, png: bytes, alt: str) -> Section:
        self.blocks.append(("image", (path, png, alt)))
        return self


def _md_cell(value: str) -> str:
    return value.replace("|", "\\|").replace("\n", " ")


def to_markdown(title: str, sections: Sequence[Section]) -> str:
    out = [f"# {title}", ""]
    for section in sections:
        out += [f"## {section.title}", ""]
        for kind, body in section.blocks:
            if kind == "text":
                out += [body, ""]
            elif kind == "bullets":
                out += [f"- {b}" for b in body] + [""]
            elif kind == "table":
                header, rows = body
                out.append("| " + " | ".join(map(_md_cell, header)) + " |")
                out.append("|" + "---|" * len(header))
                out += ["| " + " | ".join(map(_md_cell, r)) + " |" for r in rows]
                out.append("")
            elif kind == "image":
                path, _, alt = body
                out += [f"![{alt}]({path})", ""]
    return "\n".join(out)


STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222;line-height:1.4}"
    "table{border-collapse:collapse;margin:.5em 0 1em}td,th{border:1px solid #bbb;"
    "padding:3px 8px;text-align:left;vertical-align:top;font-size:13px}th{background:#eee}"
    "img{max-width:100%;border:1px solid #ddd}.sign td{height:2.2em;min-width:14em}"
)


def to_html(title: str, sections: Sequence[Section]) -> str:
    """One self-contained page: inline style, images as data URIs, no script, no request."""
    out = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for section in sections:
        out.append(f"<h2>{html.escape(section.title)}</h2>")
        for kind, body in section.blocks:
            if kind == "text":
                out.append(f"<p>{html.escape(body)}</p>")
            elif kind == "bullets":
                out.append("<ul>" + "".join(f"<li>{html.escape(b)}</li>" for b in body) + "</ul>")
            elif kind == "table":
                header, rows = body
                cls = " class='sign'" if section.title == "Sign-off" else ""
                out.append(f"<table{cls}><tr>")
                out.append("".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>")
                for row in rows:
                    cells = "".join(f"<td>{html.escape(c)}</td>" for c in row)
                    out.append(f"<tr>{cells}</tr>")
                out.append("</table>")
            elif kind == "image":
                _, png, alt = body
                data = base64.b64encode(png).decode()
                out.append(f"<p><img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'>")
    out.append("</body></html>")
    return "\n".join(out)


# -- the report ------------------------------------------------------------------------------


@dataclass
class RunReport:
    title: str
    sections: list[Section]
    images: dict[str, bytes]  # relative path -> PNG, written beside the Markdown
    status: str

    def markdown(self) -> str:
        return to_markdown(self.title, self.sections)

    def html(self) -> str:
        return to_html(self.title, self.sections)

    def write(self, out: Path, stem: str) -> list[Path]:
        out.mkdir(parents=True, exist_ok=True)
        written = [out / f"{stem}.md", out / f"{stem}.html"]
        written[0].write_text(self.markdown())
        written[1].write_text(self.html())
        for rel, png in self.images.items():
            path = out / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(png)
            written.append(path)
        return written


def build_run_report(
    run_dir: Path,
    *,
    quarter: str,
    firm: str = "the firm",
    runs_root: Path | None = None,
    trend_runs: int = 10,
    key_kind: str | None = None,
) -> RunReport:
    meta, plan, drills = load_run(run_dir)
    environment = str(meta.get("environment", "lab"))
    failed = [d for d in drills if d.status != "passed"]
    status = "TEST PASSED" if drills and not failed else "TEST FAILED"
    if not drills:
        status = "NO DRILL RAN"
    title = f"Business continuity test report {quarter}: {firm}"
    ledger = run_dir / "ledger.jsonl"
    sections = [
        _summary(meta, plan, drills, status, quarter, firm, environment),
        _plan_section(run_dir, meta, plan),
        _scope(meta, plan, environment),
        _timeline(drills, ledger),
        _measurements(drills),
        _lost_writes(drills),
        _reconciliation(drills),
        _ledger(ledger),
        _clocks(run_dir),
        _caveats(environment, key_kind),
        _findings(drills),
    ]
    images: dict[str, bytes] = {}
    sections.append(_trends(drills, runs_root or run_dir.parent, trend_runs, images))
    sections += [_break_even(), _elements(drills), _sign_off(meta)]
    return RunReport(title, sections, images, status)


def _summary(
    meta: Mapping[str, Any],
    plan: Mapping[str, Any],
    drills: Sequence[DrillRecord],
    status: str,
    quarter: str,
    firm: str,
    environment: str,
) -> Section:
    passed = sum(1 for d in drills if d.status == "passed")
    where = "the embedded lab (not production)" if environment == "lab" else environment
    return (
        Section("Result")
        .text(
            f"Result: {status}. {passed} of {len(drills)} drills passed. Run {meta.get('run_id')} "
            f"on {where}, started {meta.get('started_at', '-')}, quarter {quarter}."
        )
        .text(
            f"{firm[:1].upper()}{firm[1:]} tested its business-continuity plan as required by "
            "FINRA Rule 4370 by injecting real faults and failing over to the DR region; every "
            "figure below was measured black-box by the drill harness from the drills' own "
            "histories, which are preserved in this package (SEC Rule 17a-4)."
        )
        .table(
            ("drill", "result", "RTO", "RPO", "lost writes", "other verdicts"),
            [
                (
                    d.title,
                    d.status,
                    _figure(verdict_of(d.summary, "rto")),
                    _figure(verdict_of(d.summary, "rpo")),
                    _lost_count(d),
                    ", ".join(
                        f"{v['checker']} {_state(v)}"
                        for v in d.summary.get("verdicts", [])
                        if v["checker"] not in ("rto", "rpo")
                    )
                    or "-",
                )
                for d in drills
            ],
        )
    )


def _lost_count(drill: DrillRecord) -> str:
    rpo = verdict_of(drill.summary, "rpo")
    if rpo is None:
        return "-"
    return str((rpo.get("details") or {}).get("lost_count", "?"))


def _plan_section(run_dir: Path, meta: Mapping[str, Any], plan: Mapping[str, Any]) -> Section:
    section = Section("Test plan and objectives, as registered")
    try:
        digest = plan_hash(run_dir)
    except ValueError as exc:
        return section.text(f"THE REGISTERED PLAN DOES NOT MATCH ITS HASH: {exc}")
    if digest is None:
        return section.text("No registered plan was found in the run folder.")
    section.text(
        f"Plan {PLAN_FILE} registered at {plan.get('created_at')}, SHA-256 {digest}, written "
        "and hashed before the first fault. Approver: "
        f"{plan.get('approver') or 'none recorded'}; change ticket: "
        f"{plan.get('change_ticket') or 'none recorded'}; operator: {meta.get('operator')}; "
        f"host: {meta.get('host')}; code: {meta.get('git_commit')}."
    )
    rows = []
    for d in plan.get("drills", []):
        obj = d["objectives"]
        expected = d.get("expected_duration_s")
        rows.append(
            (
                d["scenario"],
                f"RTO {obj['rto_s'] / 60:g} min, RPO {obj['rpo_s'] / 60:g} min, "
                f"budget {obj['budget_s']:g} s",
                "; ".join(d["faults"]) or "-",
                f"{expected:.0f} s" if expected is not None else "unknown",
            )
        )
    section.table(("drill", "objectives", "faults", "expected duration"), rows)
    versions = meta.get("tool_versions") or {}
    section.text("Tool versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    return section


def _scope(meta: Mapping[str, Any], plan: Mapping[str, Any], environment: str) -> Section:
    totals = plan.get("totals", {})
    section = Section("Scope and blast radius").text(
        f"Environment: {environment}. Regions: {', '.join(meta.get('regions', []))}. "
        f"{totals.get('drills', 0)} drills, {totals.get('faults', 0)} faults, "
        f"{totals.get('destructive_drills', 0)} drills with destructive steps."
    )
    if environment == "lab":
        section.text(
            "Blast radius: the embedded lab only (loopback addresses on one machine); no "
            "production or shared resource was reachable."
        )
    return section.bullets(totals.get("resources", []) or ["(no resource listed)"])


def _timeline(drills: Sequence[DrillRecord], ledger: Path) -> Section:
    events: list[tuple[float, str, str]] = []
    for d in drills:
        s = d.summary
        if s.get("started"):
            events.append((s["started"], d.title, "drill started"))
        if s.get("finished"):
            events.append((s["finished"], d.title, f"drill finished: {d.status}"))
        if d.history is not None:
            for op in load_history(d.history).ops:
                if op.kind == "recovery" and isinstance(op.value, dict):
                    events.append((op.wall, d.title, f"recovery: {op.value.get('phase')}"))
    for row in ledger_rows(ledger, None, None):
        owner = next(
            (
                d.title
                for d in drills
                if (d.summary.get("started") or 0)
                <= row["intended_at"]
                <= (d.summary.get("finished") or float("inf"))
            ),
            "-",
        )
        at = row.get("injected") or row.get("applied")
        if at:
            events.append((at, owner, f"{row['category']} applied: {row['description']}"))
        if row.get("healed"):
            events.append((row["healed"], owner, f"healed: {row['description']}"))
    events.sort()
    return Section("Timeline").table(
        ("time (UTC)", "drill", "event"), [(_utc(t), who, what) for t, who, what in events]
    )


def _measurements(drills: Sequence[DrillRecord]) -> Section:
    section = Section("Measured RTO and RPO")
    section.text("Method. RTO: " + METHOD["RTO"])
    section.text("RPO: " + METHOD["RPO"])
    rows = []
    for d in drills:
        rto, rpo, budget = (verdict_of(d.summary, c) for c in ("rto", "rpo", "budget"))
        if rto is None and rpo is None:
            continue
        rows.append(
            (
                d.title,
                _figure(rto),
                f"{rto['objective']:g} s" if rto and rto.get("objective") else "-",
                _state(rto),
                f"{_state(budget)} ({budget['objective']:g} s)" if budget else "-",
                _figure(rpo),
                f"{rpo['objective']:g} s" if rpo and rpo.get("objective") else "-",
                _state(rpo),
            )
        )
    header = ("drill", "RTO", "objective", "RTO", "budget", "RPO", "objective", "RPO")
    section.table(header, rows or [("no drill measured RTO or RPO",) + ("-",) * 7])
    phases = [
        (d.title, p, f"{v:.3f} s")
        for d in drills
        for p, v in (d.summary.get("failover_phases") or {}).items()
        if isinstance(v, int | float)
    ]
    if phases:
        section.text("Failover phases, as the orchestrator recorded them:")
        section.table(("drill", "phase", "duration"), phases)
    return section


def _lost_writes(drills: Sequence[DrillRecord]) -> Section:
    section = Section("Lost acknowledged writes")
    for d in drills:
        rpo = verdict_of(d.summary, "rpo")
        if rpo is None:
            continue
        details = rpo.get("details") or {}
        lost = details.get("lost_ids", [])
        shown = ", ".join(lost[:20]) + (f" and {len(lost) - 20} more" if len(lost) > 20 else "")
        unknown = len(details.get("indeterminate_absent", []))
        section.text(
            f"{d.title}: {len(lost)} acknowledged writes lost"
            + (f" ({shown})" if lost else "")
            + (f"; {unknown} writes of unknown outcome absent (not counted)" if unknown else "")
            + ". The full list is the drill's 'lost acknowledged writes' CSV in the Allure report."
        )
    if not section.blocks:
        section.text("No drill in this run measured RPO.")
    return section


def _reconciliation(drills: Sequence[DrillRecord]) -> Section:
    section = Section("Reconciliation across database and index")
    rows = []
    for d in drills:
        if d.history is None:
            continue
        for op in load_history(d.history).ops:
            value = op.value if isinstance(op.value, dict) else {}
            check = value.get("check")
            if check == observed.COMPARISON:
                for pair, r in (value.get("pairs") or {}).items():
                    rows.append(
                        (d.title, pair, r.get("equal"), _n(r.get("missing")), _n(r.get("extra")),
                         _n(r.get("stale")))
                    )  # fmt: skip
            elif check == observed.RECONCILIATION:
                rows.append(
                    (d.title, f"{op.region} index repaired from its database", "-",
                     _n(value.get("upserted_missing", value.get("missing"))),
                     _n(value.get("deleted_extra", value.get("extra"))),
                     _n(value.get("upserted_stale", value.get("stale"))))
                )  # fmt: skip
            elif check == observed.INDEX_DRIFT:
                rows.append(
                    (d.title, f"{op.region} drift read back ({value.get('mode')})", "-",
                     value.get("count") if value.get("mode") == "missing" else 0, 0,
                     value.get("count") if value.get("mode") == "stale" else 0)
                )  # fmt: skip
    if rows:
        section.table(("drill", "compared", "equal", "missing", "extra", "stale"), rows)
    else:
        section.text("No drill in this run compared databases and indexes.")
    return section


def _n(value: Any) -> Any:
    return len(value) if isinstance(value, list | tuple | dict) else value


def _ledger(ledger: Path) -> Section:
    section = Section("Fault and recovery ledger")
    if not ledger.exists():
        return section.text("The run recorded no fault.")
    chain = read_chain(ledger)
    section.text(
        f"{ledger.name}: {len(chain.records)} chained records, "
        + ("chain intact" if chain.broken is None else f"CHAIN BROKEN: {chain.broken}")
        + f", last hash {chain.last_hash}."
    )
    rows = []
    for r in ledger_rows(ledger, None, None):
        state = "healed, read back" if "healed" in r else r.get("problem", "")
        if not state and r["category"] == "recovery":
            state = "left in place (recovery action); the lab reset ends it"
        rows.append(
            (r["id"], r["category"], r["description"],
             _utc(r.get("injected") or r.get("applied")), _utc(r.get("healed")),
             state or "still applied")
        )  # fmt: skip
    return section.table(("#", "category", "what", "applied", "healed", "state"), rows)


def _clocks(run_dir: Path) -> Section:
    section = Section("Clock evidence")
    recorded = _load_json(run_dir / CLOCK_FILE)
    if not recorded:
        return section.text("No clock offsets were recorded for this run.")
    section.text(
        "Offset of each server's clock from the harness's (server minus harness; NTP's "
        "method: the best of 7 round trips, uncertainty half the round trip). Durations never "
        "mix clocks; wall times are used only to match acknowledgements with commit times."
    )
    rows = []
    for when, offsets in recorded.items():
        for o in offsets:
            if o.get("offset_s") is None:
                rows.append(
                    (when, o["source"], "not measured", o.get("error", ""), o["measured_at"])
                )
            else:
                rows.append(
                    (when, o["source"], f"{o['offset_s'] * 1000:+.3f} ms",
                     f"+- {o['uncertainty_s'] * 1000:.3f} ms", o["measured_at"])
                )  # fmt: skip
    return section.table(("when", "clock", "offset", "uncertainty", "measured at"), rows)


def _caveats(environment: str, key_kind: str | None) -> Section:
    section = Section("Fidelity caveats")
    if environment == "lab":
        section.bullets(LAB_CAVEATS)
    else:
        section.bullets(
            [
                "Managed cross-region replication ignores security groups and network ACLs: a "
                "drill whose fault did not interrupt replication reports its RPO as not "
                "exercised."
            ]
        )
    if key_kind == "lab":
        section.text(
            "This package is signed with a lab key created on this machine: it proves the "
            "files did not change, not who produced them. Not fit for production evidence."
        )
    return section


def _findings(drills: Sequence[DrillRecord]) -> Section:
    section = Section("Findings")
    found = []
    for d in drills:
        result = d.summary.get("result") or {}
        if d.status != "passed":
            found.append(f"{d.title}: {result.get('message') or d.status}")
        for v in d.summary.get("verdicts", []):
            if v["valid"] is not True:
                found.append(f"{d.title}: {v['checker']}: {_state(v)}: {v['reason']}")
    return section.bullets(found) if found else section.text("No findings: every drill passed.")


def _trends(
    drills: Sequence[DrillRecord], runs_root: Path, last: int, images: dict[str, bytes]
) -> Section:
    from drkit.evidence import charts

    section = Section("RTO and RPO across stored runs")
    section.text(
        f"Each drill's measured RTO and RPO in up to the last {last} stored runs of "
        f"{runs_root.name}/ (our own measurements, not test durations)."
    )
    for d in drills:
        if verdict_of(d.summary, "rto") is None and verdict_of(d.summary, "rpo") is None:
            continue
        points = measured_trend(runs_root, d.name, last=last)
        if not points:
            continue
        rows = [(p.run_id, _fmt(p.rto_s), _fmt(p.rpo_s), p.verdict) for p in points]
        rtos = [p.rto_s for p in points if p.rto_s is not None]
        spread = (
            f"; RTO median {statistics.median(rtos):.3f} s over {len(rtos)} runs" if rtos else ""
        )
        section.text(f"{d.title}{spread}:")
        section.table(("run", "RTO", "RPO", "result"), rows)
        rel = f"trends/{d.history.stem if d.history else d.name}.png"
        png = charts.trend_chart(points, title=d.title)
        images[rel] = png
        section.image(rel, png, f"RTO and RPO of {d.title} across runs")
    return section


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} s"


def _break_even() -> Section:
    result = break_even()
    return (
        Section("Break-even analysis")
        .text(result.statement())
        .text(
            f"Break-even: {result.break_even_years:.1f} years of hot DR per avoided outage "
            "(inputs: `drkit cost --help`)."
        )
    )


def _elements(drills: Sequence[DrillRecord]) -> Section:
    tags: set[str] = set()
    for d in drills:
        tags.update(d.plan.get("tags", []))
    rows = []
    for code, name in FINRA_4370_ELEMENTS:
        covering = ELEMENT_TAGS.get(code, frozenset()) & tags
        if covering:
            state = "covered by this run: " + ", ".join(sorted(covering))
        elif code in ELEMENT_TAGS:
            state = "not covered by this run (no drill of that kind ran)"
        else:
            state = "outside what a technical drill shows; evidence from the BCP owner"
        rows.append((f"4370({code[0]})({code[1:]})", name, state))
    return Section("FINRA Rule 4370 plan elements").table(
        ("element", "requirement", "this run"), rows
    )


def _sign_off(meta: Mapping[str, Any]) -> Section:
    rows = [
        (role, meta.get("operator") if role.startswith("Prepared") else (
            meta.get("approver") if role.startswith("Approved") else ""), "", "")
        for role in SIGN_OFF
    ]  # fmt: skip
    return Section("Sign-off").table(("role", "name", "signature", "date"), rows)
