"""Verdicts on what the drill observed: replication samples, alarms, pre-flights, drift.

The drill records each observation in its history as a ``health`` op (see ``History.observe``);
these checkers judge the recorded ops only, so a hand-built history exercises them exactly as a
live drill does, and each can fail.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from drkit.measure.history import Op
from drkit.measure.ops import value_field
from drkit.measure.verdict import Verdict

REPLICATION = "replication"
PREFLIGHT = "preflight"
INDEX_DRIFT = "index drift"
RECONCILIATION = "reconciliation"
WATCHER = "watcher"
SLOT = "replication slot"
REBUILD = "rebuild"
ORPHANS = "orphaned writes"
REWIND = "rewind"
COMPARISON = "comparison"
BASE_BACKUP = "base backup"
BULK_DELETE = "bulk delete"
DELETE_REPLICATED = "delete replicated"
RESTORE = "restore"
PRETEST = "pre-test"
BASELINE = "baseline"
LATENCY = "latency"
TEST_QUERY = "test query"
REPORT = "compliance report"
FAILOVER_STATES = ("failed_over", "failover_failed")


def observations(ops: Sequence[Op], check: str) -> list[Op]:
    return [
        op
        for op in ops
        if op.kind == "health" and op.type == "ok" and value_field(op.value, "check") == check
    ]


def _fault_moments(ops: Sequence[Op], f: str) -> list[float]:
    return [
        op.mono
        for op in ops
        if op.kind == "fault" and op.type == "ok" and value_field(op.value, "f") == f
    ]


def _first_fault(ops: Sequence[Op]) -> float | None:
    moments = _fault_moments(ops, "inject")
    return min(moments) if moments else None


def _last_heal(ops: Sequence[Op]) -> float | None:
    moments = _fault_moments(ops, "heal")
    return max(moments) if moments else None


def _lag(op: Op) -> float:
    return float(value_field(op.value, "lag_s") or 0.0)


def check_lag_rose(ops: Sequence[Op], threshold_s: float) -> Verdict:
    """Some replication sample after the first fault measured a lag above ``threshold_s``."""
    start = _first_fault(ops)
    samples = [op for op in observations(ops, REPLICATION) if start is None or op.mono >= start]
    if not samples:
        return Verdict("lag_rose", False, "no replication sample was taken", None, threshold_s)
    peak = max(samples, key=_lag)
    since = f"{peak.mono - start:.1f}s after the fault" if start is not None else "with no fault"
    valid = _lag(peak) > threshold_s
    verb = "rose above" if valid else "never rose above"
    return Verdict(
        "lag_rose",
        valid,
        f"replication lag peaked at {_lag(peak):.2f}s ({since}, {len(samples)} samples); it "
        f"{verb} the {threshold_s:g}s threshold",
        round(_lag(peak), 3),
        threshold_s,
    )


def check_alarm_fired(ops: Sequence[Op]) -> Verdict:
    """The lag alarm was seen in ALARM; the value is seconds from the first fault to it."""
    start = _first_fault(ops)
    samples = observations(ops, REPLICATION)
    fired = [op for op in samples if value_field(op.value, "alarm") == "ALARM"]
    if not fired:
        states = sorted({str(value_field(op.value, "alarm")) for op in samples}) or ["no sample"]
        return Verdict(
            "lag_alarm",
            False,
            f"the replication lag alarm never fired in {len(samples)} samples "
            f"(states seen: {', '.join(states)})",
            None,
            None,
        )
    after = fired[0].mono - start if start is not None else None
    when = f"{after:.1f}s after the first fault" if after is not None else "with no fault"
    lag = _lag(fired[0])
    return Verdict(
        "lag_alarm", True, f"the lag alarm fired {when}, at a lag of {lag:.2f}s", after, None
    )


def check_lag_recovered(ops: Sequence[Op], below_s: float) -> Verdict:
    """After the last heal, the lag fell below ``below_s`` and the last sample is below it."""
    healed = _last_heal(ops)
    if healed is None:
        return Verdict("lag_recovered", False, "no fault was healed", None, below_s)
    samples = [op for op in observations(ops, REPLICATION) if op.mono >= healed]
    if not samples:
        return Verdict(
            "lag_recovered", False, "no replication sample after the heal", None, below_s
        )
    recovered = [op for op in samples if _lag(op) < below_s]
    last = samples[-1]
    valid = bool(recovered) and _lag(last) < below_s
    if valid:
        took = recovered[0].mono - healed
        reason = (
            f"lag fell below {below_s:g}s {took:.1f}s after the heal; last sample {_lag(last):.2f}s"
        )
        return Verdict("lag_recovered", True, reason, round(took, 3), below_s)
    return Verdict(
        "lag_recovered",
        False,
        f"lag still {_lag(last):.2f}s at the last sample, {last.mono - healed:.1f}s after the "
        f"heal; it must fall below {below_s:g}s",
        round(_lag(last), 3),
        below_s,
    )


def last_preflight(ops: Sequence[Op]) -> Op | None:
    found = observations(ops, PREFLIGHT)
    return found[-1] if found else None


def _issues(op: Op) -> list[str]:
    return [str(i) for i in value_field(op.value, "issues") or []]


def check_preflight_refused(ops: Sequence[Op], because: str) -> Verdict:
    """The last pre-flight refused, and one of its reasons names ``because``."""
    op = last_preflight(ops)
    if op is None:
        return Verdict("preflight_refused", False, "no pre-flight was run", None, None)
    issues = _issues(op)
    if value_field(op.value, "ready") is True:
        return Verdict(
            "preflight_refused", False, f"the pre-flight was ready; it must refuse on {because}"
        )
    named = [i for i in issues if because in i]
    shown = "; ".join(issues) or "no reason given"
    reason = f"the pre-flight refused: {shown}"
    if not named:
        reason += f"; none of its reasons is about {because}"
    return Verdict(
        "preflight_refused", bool(named), reason, None, None, "", None, {"issues": issues}
    )


def check_preflight_ready(ops: Sequence[Op]) -> Verdict:
    """The last pre-flight was ready."""
    op = last_preflight(ops)
    if op is None:
        return Verdict("preflight_ready", False, "no pre-flight was run")
    issues = _issues(op)
    ready = value_field(op.value, "ready") is True and not issues
    reason = "the pre-flight was ready" if ready else "the pre-flight refused: " + "; ".join(issues)
    return Verdict("preflight_ready", ready, reason, None, None, "", None, {"issues": issues})


def check_drift_named(ops: Sequence[Op]) -> Verdict:
    """The last pre-flight refused and reported the very count of drifted vectors that the
    drift's read-back measured (missing, or stale)."""
    drift = observations(ops, INDEX_DRIFT)
    op = last_preflight(ops)
    if not drift:
        return Verdict("drift_named", False, "no index drift was observed")
    if op is None:
        return Verdict("drift_named", False, "no pre-flight was run")
    mode = str(value_field(drift[-1].value, "mode"))
    expected = int(value_field(drift[-1].value, "count") or 0)
    counts: dict[str, Any] = value_field(op.value, "counts") or {}
    reported = counts.get(mode)
    ready = value_field(op.value, "ready") is True
    text = " ".join(_issues(op))
    named = f"{mode} {expected}" in text
    valid = not ready and reported == expected and named
    reason = (
        f"the pre-flight {'was ready' if ready else 'refused'}; it reported {reported} {mode} "
        f"vectors against {expected} drifted"
        + ("" if named else f"; its reasons do not name '{mode} {expected}'")
    )
    return Verdict("drift_named", valid, reason, reported, expected, "vectors", None, counts)


def check_blips_ridden_out(ops: Sequence[Op], window_s: float) -> Verdict:
    """Faults shorter than the detection window cost no failover: every blip (a non-disaster
    fault, from its injection to its heal, both as invoked: enforcement lags both ends alike)
    was shorter than `window_s`, the watcher was observed through them, and it never left
    watching for a failover."""
    injected: dict[object, float] = {}
    blips: list[float] = []
    for op in ops:
        if op.kind != "fault" or op.type != "invoke" or value_field(op.value, "disaster"):
            continue
        record, f = value_field(op.value, "record"), value_field(op.value, "f")
        if f == "inject":
            injected[record] = op.mono
        elif f == "heal" and record in injected:
            blips.append(op.mono - injected.pop(record))
    states = [value_field(op.value, "state") for op in observations(ops, WATCHER)]
    failed_over = [s for s in states if s in FAILOVER_STATES]
    longest = max(blips, default=0.0)
    problems = []
    if not blips:
        problems.append("no blip was injected and healed")
    if longest >= window_s:
        problems.append(f"the longest blip ({longest:.2f}s) was not shorter than the window")
    if not states:
        problems.append("the watcher was not observed")
    if failed_over:
        problems.append(f"the watcher failed over ({failed_over[0]})")
    failing = sum(1 for s in states if s == "failing")
    reason = (
        f"{len(blips)} blips, longest {longest:.2f}s against the {window_s:g}s detection "
        f"window; {len(states)} watcher observations, {failing} while failing"
        + ("; " + "; ".join(problems) if problems else "; no failover")
    )
    return Verdict(
        "blips_ridden_out", not problems, reason, round(longest, 3), window_s, "s", None,
        {"blips_s": [round(b, 3) for b in blips], "failed_over": bool(failed_over)},
    )  # fmt: skip


def check_rebuild_needed(ops: Sequence[Op]) -> Verdict:
    """After the heal, the standby cannot resume: its slot's WAL is gone (`lost`, or the slot
    was dropped) and no replication sample after the heal shows it caught up."""
    healed = _last_heal(ops)
    if healed is None:
        return Verdict("rebuild_needed", False, "no fault was healed; nothing to judge")
    slots = [op for op in observations(ops, SLOT) if op.mono >= healed]
    samples = [op for op in observations(ops, REPLICATION) if op.mono >= healed]
    if not slots:
        return Verdict("rebuild_needed", False, "the slot was not read back after the heal")
    status = value_field(slots[-1].value, "wal_status")
    slot = value_field(slots[-1].value, "slot")
    keep = value_field(slots[-1].value, "keep_size_mb")
    drained = [op for op in samples if value_field(op.value, "lag_bytes") == 0 and _lag(op) == 0]
    lost = status in (None, "lost")
    valid = lost and not drained
    if valid:
        reason = (
            f"the standby needs a rebuild: slot {slot} is {status or 'gone'} (the cut outlasted "
            f"max_slot_wal_keep_size {keep} MB) and {len(samples)} samples after the heal never "
            "showed it caught up"
        )
    else:
        reason = (
            f"slot {slot} is {status}, {len(drained)} of {len(samples)} samples after the heal "
            "showed the standby caught up: no rebuild is needed, the cut did not outlast the "
            "slot's WAL retention"
        )
    return Verdict("rebuild_needed", valid, reason, None, None, "", None, {"wal_status": status})


def check_caught_up(ops: Sequence[Op], within_s: float) -> Verdict:
    """The standby replayed everything (no lag in bytes or time) within `within_s` of the
    last heal, or of the last rebuild when one came after it."""
    moments = [m for m in (_last_heal(ops),) if m is not None]
    rebuilds = observations(ops, REBUILD)
    if rebuilds:
        moments.append(rebuilds[-1].mono)
    if not moments:
        return Verdict("caught_up", False, "no heal or rebuild to measure from", None, within_s)
    since = max(moments)
    what = "rebuild" if rebuilds and rebuilds[-1].mono == since else "heal"
    samples = [op for op in observations(ops, REPLICATION) if op.mono >= since]
    drained = [op for op in samples if value_field(op.value, "lag_bytes") == 0 and _lag(op) == 0]
    if not drained:
        last = f"; last lag {_lag(samples[-1]):.2f}s" if samples else ""
        return Verdict(
            "caught_up",
            False,
            f"the standby never caught up in {len(samples)} samples after the {what}{last}",
            None,
            within_s,
        )
    took = drained[0].mono - since
    return Verdict(
        "caught_up",
        took <= within_s,
        f"the standby caught up {took:.2f}s after the {what} (bound {within_s:g}s)",
        round(took, 3),
        within_s,
    )


def check_orphans_exported(ops: Sequence[Op]) -> Verdict:
    """The export taken before the rewind holds every acknowledged write the new primary
    lacked (none of the books and records was thrown away unrecorded)."""
    found = observations(ops, ORPHANS)
    if not found:
        return Verdict("orphans_exported", False, "no export of the old primary's writes was made")
    value = found[-1].value
    missing = list(value_field(value, "acked_lost_not_exported") or [])
    rows, lost = value_field(value, "rows"), value_field(value, "acked_lost")
    reason = (
        f"{rows} rows only the old primary held were exported to {value_field(value, 'path')}; "
        f"{lost} acknowledged writes were missing from the new primary, "
        f"{len(missing)} of them not in the export"
        + (f" ({', '.join(missing[:5])})" if missing else "")
    )
    return Verdict("orphans_exported", not missing, reason, len(missing), 0, "writes")


def check_regions_agree(ops: Sequence[Op]) -> Verdict:
    """The last comparison found every database and index holding the same ids and hashes."""
    found = observations(ops, COMPARISON)
    if not found:
        return Verdict("regions_agree", False, "no comparison of databases and indexes was made")
    pairs: dict[str, dict[str, int]] = value_field(found[-1].value, "pairs") or {}
    if not pairs:
        return Verdict("regions_agree", False, "the comparison had fewer than two stores")
    off = {name: c for name, c in pairs.items() if c["missing"] or c["extra"] or c["stale"]}
    shown = "; ".join(
        f"{name}: missing {c['missing']}, extra {c['extra']}, stale {c['stale']}"
        for name, c in off.items()
    )
    equal = sorted({c["equal"] for c in pairs.values()})
    reason = (
        f"{len(pairs) - len(off)} of {len(pairs)} pairs agree on ids and content hashes "
        f"(equal records: {', '.join(map(str, equal))})" + (f"; {shown}" if off else "")
    )
    differences = sum(c["missing"] + c["extra"] + c["stale"] for c in off.values())
    return Verdict("regions_agree", not off, reason, differences, 0, "records", None, pairs)


def check_delete_replicated(ops: Sequence[Op]) -> Verdict:
    """The standby holds exactly what the primary kept: replication copied the destructive
    change faithfully (which is why a restore, not a failover, undoes it)."""
    delete, seen = observations(ops, BULK_DELETE), observations(ops, DELETE_REPLICATED)
    if not delete or not seen:
        return Verdict("delete_replicated", False, "no bulk delete, or its replication unread")
    rows = int(value_field(seen[-1].value, "rows"))
    expected = int(value_field(seen[-1].value, "expected"))
    deleted = value_field(delete[-1].value, "deleted")
    return Verdict(
        "delete_replicated",
        rows == expected,
        f"{seen[-1].region} holds {rows} documents after the delete of {deleted}; "
        f"{expected} expected",
        rows,
        expected,
        "documents",
    )


def check_restore_matches_snapshot(ops: Sequence[Op]) -> Verdict:
    """The restored cluster holds the snapshot taken before the change: every id, with its
    content hash, nothing more; the value is the deleted documents it recovered."""
    found = observations(ops, RESTORE)
    if not found:
        return Verdict("restore", False, "no restore was made")
    r = found[-1].value
    off = {k: value_field(r, k) for k in ("missing", "extra", "stale")}
    valid = not any(off.values()) and value_field(r, "deleted_recovered") == value_field(
        r, "deleted"
    )
    return Verdict(
        "restore",
        valid,
        f"restored in {value_field(r, 'duration_s'):.2f}s: {value_field(r, 'rows')} documents, "
        f"{value_field(r, 'deleted_recovered')} of {value_field(r, 'deleted')} deleted ones "
        f"recovered; against the snapshot missing {off['missing']}, extra {off['extra']}, "
        f"stale {off['stale']}",
        value_field(r, "deleted_recovered"),
        value_field(r, "deleted"),
        "documents",
        None,
        dict(r),
    )


def check_test_query(ops: Sequence[Op], region: str) -> Verdict:
    """The last test query through the public name was answered by `region`."""
    found = observations(ops, TEST_QUERY)
    if not found:
        return Verdict("test_query", False, "no test query was sent")
    answered = value_field(found[-1].value, "answered_by")
    ms = value_field(found[-1].value, "latency_ms")
    return Verdict(
        "test_query",
        answered == region,
        f"the test query was answered by {answered} in {ms} ms with "
        f"{value_field(found[-1].value, 'results')} results; {region} must answer it",
        ms,
        None,
        "ms",
    )


def check_latency_within(ops: Sequence[Op], factor: float) -> Verdict:
    """Query latency after the failover (p95) within `factor` times the baseline's p95."""
    base, after = observations(ops, BASELINE), observations(ops, LATENCY)
    if not base or not after:
        return Verdict("latency", False, "no baseline or no latency measured after the failover")
    b95 = float(value_field(base[-1].value, "p95_ms"))
    a95 = float(value_field(after[-1].value, "p95_ms"))
    a50, b50 = value_field(after[-1].value, "p50_ms"), value_field(base[-1].value, "p50_ms")
    bound = b95 * factor
    return Verdict(
        "latency",
        a95 <= bound,
        f"query p95 {a95:.1f} ms (p50 {a50} ms) after the failover against the baseline p95 "
        f"{b95:.1f} ms (p50 {b50} ms) x {factor:g} = {bound:.1f} ms",
        a95,
        round(bound, 2),
        "ms",
    )


def check_report_states(ops: Sequence[Op], verdicts: Sequence[Verdict]) -> Verdict:
    """The compliance report states, as measured, the RTO and RPO the drill measured."""
    found = observations(ops, REPORT)
    if not found:
        return Verdict("report", False, "no compliance report was written")
    report = found[-1].value
    measured = {v.checker: v for v in verdicts if v.checker in ("rto", "rpo")}
    problems = []
    for name in ("rto", "rpo"):
        verdict = measured.get(name)
        stated = value_field(report, f"{name}_minutes")
        basis = value_field(report, f"{name}_basis")
        if verdict is None or verdict.value is None:
            problems.append(f"no {name.upper()} was measured")
        elif (
            basis != "measured" or stated is None or abs(stated * 60 - float(verdict.value)) > 0.01
        ):
            problems.append(
                f"it states the {name.upper()} as {stated} min ({basis}), the drill measured "
                f"{float(verdict.value) / 60:.4f} min"
            )
    reason = f"the {value_field(report, 'quarter')} report ({value_field(report, 'status')}) "
    reason += "; ".join(problems) if problems else "states the measured RTO and RPO"
    return Verdict(
        "report", not problems, reason, None, None, "", None, {"path": value_field(report, "path")}
    )
