"""Recorded drills for the Then steps' self-tests: one violating and one passing history each."""

from __future__ import annotations

from dataclasses import replace

from drkit.drill import RecordedDrill
from drkit.measure.builder import HistoryBuilder, payload_hash

EAST, WEST = "us-east-1", "us-west-2"
PERIOD = 0.05


def failover(
    recover_at: float, *, lose_from: float | None = None, cut_at: float | None = None
) -> RecordedDrill:
    """Writes on us-east-1, the disaster at 100 s, writes on us-west-2 from `recover_at` on;
    the surviving database lacks every east write acknowledged after `lose_from`."""
    b = HistoryBuilder()
    east = [f"e{n}" for n in range(0, 2000, 10)]  # one write every 0.5 s for 100 s
    for n, doc in enumerate(east):
        b.write(doc, n * 0.5, region=EAST)
    if cut_at is not None:
        b.fault("replication link cut", cut_at)
    b.fault("us-east-1 cut off", 100.0, disaster=True)
    west = [f"w{n}" for n in range(40)]
    b.writes(west, 100.0 + recover_at, PERIOD, region=WEST)
    kept = [d for n, d in enumerate(east) if lose_from is None or n * 0.5 < lose_from]
    final = {doc: payload_hash(doc) for doc in [*kept, *west]}
    return RecordedDrill(b.ops(), finals={WEST: final})


LAG_ISSUE = "replication lag is 8.6s, over the failover threshold of 2s"
DRIFT_ISSUE = "data consistency is 95.00% (missing {n}, extra 0, stale 0), under the 99% threshold"


def lag_drill(
    peak: float, *, alarm: str = "ALARM", after_heal: float = 0.0, ready_at_end: bool = True
) -> RecordedDrill:
    """Toxics at 0 s; samples every second rising to `peak`; the pre-flight refuses on lag;
    heal at 10 s; samples at `after_heal`; a last pre-flight ready or not."""
    b = HistoryBuilder()
    b.fault("latency on the replication link", 0.0)
    for n in range(1, 9):
        lag = peak * n / 8
        b.observe("replication", float(n), lag_s=lag, alarm=alarm if n == 8 else "OK")
    b.observe("preflight", 9.0, ready=False, issues=[LAG_ISSUE], counts={})
    b.fault("latency on the replication link", 10.0, f="heal")
    for n in range(11, 14):
        b.observe("replication", float(n), lag_s=after_heal, alarm="OK")
    issues = [] if ready_at_end else [LAG_ISSUE]
    b.observe("preflight", 14.0, ready=ready_at_end, issues=issues, counts={})
    return RecordedDrill(b.ops())


def drift_drill(drifted: int, reported: int, *, ready: bool = False) -> RecordedDrill:
    """`drifted` vectors read back as missing; the pre-flight reports `reported` of them."""
    b = HistoryBuilder()
    b.fault("5% of us-west-2's index vectors missing", 0.0)
    b.observe("index drift", 0.5, region=WEST, mode="missing", count=drifted)
    issues = [] if ready else [DRIFT_ISSUE.format(n=reported)]
    counts = {"missing": reported, "extra": 0, "stale": 0}
    b.observe("preflight", 1.0, ready=ready, issues=issues, counts=counts)
    return RecordedDrill(b.ops())


def after_failover(*, direct: str, leaked: int = 0) -> RecordedDrill:
    """A failover at 100 s, the heal at 110 s, then 40 writes straight to us-east-1 with
    outcome `direct`; `leaked` of them are found only in us-east-1's database."""
    drill = failover(recover_at=2.0)
    b = HistoryBuilder()
    sent = [f"d{n}" for n in range(40)]
    b.writes(sent, 110.0, PERIOD, region=EAST, result=direct, process="direct:us-east-1-0")
    west = dict(drill.finals[WEST])
    east = {doc: h for doc, h in west.items() if doc.startswith("e")}
    east.update({doc: payload_hash(doc) for doc in sent[:leaked]})
    merged = sorted((*drill.recorded, *b.ops()), key=lambda op: op.mono)
    ops = tuple(replace(op, index=i) for i, op in enumerate(merged))  # one history, one index
    return RecordedDrill(ops, finals={WEST: west, EAST: east})


def blip_drill(lengths: list[float], *, fails_over_at: float | None = None) -> RecordedDrill:
    """Blips of `lengths` seconds, 2 s apart; the watcher observed every 0.1 s, watching (or
    failing during a blip) until `fails_over_at`, if given."""
    b = HistoryBuilder()
    at = 0.0
    for record, length in enumerate(lengths, start=1):
        b.fault("us-east-1 cut off", at, record=record)
        b.fault("us-east-1 cut off", at + length, f="heal", record=record)
        at += length + 2.0
    for n in range(int(at * 10)):
        t = n / 10
        state = "failed_over" if fails_over_at is not None and t >= fails_over_at else "watching"
        b.observe("watcher", t, state=state)
    return RecordedDrill(b.ops())


def link_cut(*, slot: str, drained_at: float | None) -> RecordedDrill:
    """Link cut at 0 s, healed at 10 s; samples every second to 40 s, drained from
    `drained_at` on (never when None); the slot read back as `slot` after the heal."""
    b = HistoryBuilder()
    b.fault("replication link cut", 0.0, record=1)
    b.fault("replication link cut", 10.0, f="heal", record=1)
    for n in range(11, 41):
        done = drained_at is not None and n >= drained_at
        lag = 0.0 if done else 12.0 + n
        b.observe("replication", float(n), lag_s=lag, lag_bytes=0 if done else 4096)
        b.observe("replication slot", n + 0.5, slot="standby_us_west_2", wal_status=slot)
    return RecordedDrill(b.ops())


def dns_switch(stale_until: float, *, straggler_at: float | None = None) -> RecordedDrill:
    """TTL 5 s; 3 clients read every 0.1 s from 0 to 20 s; the DNS switch at 10 s; us-east-1
    answers until `stale_until`, us-west-2 after; one us-east-1 answer at `straggler_at`."""
    b = HistoryBuilder()
    b.observe("dns ttl", 0.0, ttl_s=5)
    b.phase("dns_switch", 10.0)
    for n in range(200):
        at = n / 10
        for client in range(3):
            late = straggler_at is not None and abs(at - straggler_at) < 0.05 and client == 0
            region = EAST if at < stale_until or late else WEST
            b.read(at + client * 0.01, region=region, process=f"client{client}-0")
    return RecordedDrill(b.ops())


def failback_evidence(*, not_exported: int, drift: int) -> RecordedDrill:
    """An export of 40 rows covering all but `not_exported` of 30 lost acknowledged writes,
    then a comparison of both regions with `drift` records missing from us-east-1's index."""
    b = HistoryBuilder()
    left_out = [f"e{n}" for n in range(not_exported)]
    b.observe(
        "orphaned writes", 1.0, region=EAST, path="evidence/orphaned-writes-us-east-1.json",
        rows=40, acked_lost=30, acked_lost_not_exported=left_out,
    )  # fmt: skip
    clean = {"equal": 700, "missing": 0, "extra": 0, "stale": 0}
    pairs = {
        "us-east-1 database vs us-east-1 index": {**clean, "equal": 700 - drift, "missing": drift},
        "us-east-1 database vs us-west-2 database": clean,
    }
    b.observe("comparison", 2.0, regions=[EAST, WEST], pairs=pairs)
    return RecordedDrill(b.ops())


def restore_drill(*, standby_rows: int, recovered: int) -> RecordedDrill:
    """500 documents, 50 deleted; the standby read back with `standby_rows`; a restore that
    recovered `recovered` of the 50."""
    b = HistoryBuilder()
    b.observe("bulk delete", 1.0, region=EAST, snapshot_rows=500, deleted=50, target_time="t")
    b.observe("delete replicated", 2.0, region=WEST, rows=standby_rows, expected=450)
    b.observe(
        "restore", 5.0, region=EAST, duration_s=3.2, rows=450 + recovered, equal=450 + recovered,
        missing=50 - recovered, extra=0, stale=0, deleted_recovered=recovered, deleted=50,
    )  # fmt: skip
    return RecordedDrill(b.ops())


def quarterly(*, answered_by: str, p95_after: float, stated_rto_min: float) -> RecordedDrill:
    """A quarterly test's DR verification and report on top of a healthy failover: a test
    query, latency before (p95 40 ms) and after, and a report stating `stated_rto_min`."""
    drill = failover(recover_at=2.0)
    b = HistoryBuilder()
    b.observe("baseline", 1.0, p50_ms=20.0, p95_ms=40.0, documents=500)
    b.observe(
        "test query", 110.0, region=answered_by, answered_by=answered_by, latency_ms=30.0, results=5
    )
    b.observe("latency", 111.0, p50_ms=p95_after / 2, p95_ms=p95_after)
    b.observe(
        "compliance report", 120.0, path="evidence/compliance-2026-Q4.md", quarter="2026-Q4",
        status="TEST PASSED", rto_minutes=stated_rto_min, rpo_minutes=0.0,
        rto_basis="measured", rpo_basis="measured",
    )  # fmt: skip
    merged = sorted((*drill.recorded, *b.ops()), key=lambda op: op.mono)
    ops = tuple(replace(op, index=i) for i, op in enumerate(merged))
    recorded = RecordedDrill(ops, finals=drill.finals)
    recorded.check_rto()
    recorded.check_rpo(WEST)
    return recorded


def reads_after_promotion(
    *, forgets: bool = False, demoted_answers: bool = False, errors_until: float = 0.0
) -> RecordedDrill:
    """Promotion at 100 s; west writes from 101 s every 0.5 s; reads every 0.5 s from
    101.25 s expect the latest write; `forgets` drops it from one read, `demoted_answers`
    lets us-east-1 answer one, and writes fail from the first answer until `errors_until`."""
    b = HistoryBuilder()
    b.write("e0", 10.0, region=EAST)
    b.fault("us-east-1 cut off", 99.0, disaster=True)
    b.phase("promotion", 100.0)
    for n in range(20):
        at = 101.0 + n * 0.5
        failing = at < errors_until
        b.write(f"w{n}", at, region=WEST, result="fail" if failing else "ok")
        read_at = at + 0.25
        expect = [] if failing else [f"w{n}"]
        ids = [] if (forgets and n == 10) else expect
        region = EAST if (demoted_answers and n == 12) else WEST
        b.read(read_at, region=region, ids=ids, expect=expect)
    return RecordedDrill(b.ops())


CASES = {
    "reads hold after the promotion": lambda: reads_after_promotion(),
    "reads go wrong after the promotion": lambda: reads_after_promotion(
        forgets=True, demoted_answers=True, errors_until=106.0
    ),
    "quarterly test in order": lambda: quarterly(
        answered_by=WEST, p95_after=120.0, stated_rto_min=2.01 / 60
    ),
    "quarterly test gone wrong": lambda: quarterly(
        answered_by=EAST, p95_after=2000.0, stated_rto_min=0.5
    ),
    "delete replicated, restore whole": lambda: restore_drill(standby_rows=450, recovered=50),
    "delete not replicated, restore short": lambda: restore_drill(standby_rows=500, recovered=40),
    "export complete, regions agree": lambda: failback_evidence(not_exported=0, drift=0),
    "export incomplete, index drifted": lambda: failback_evidence(not_exported=3, drift=12),
    "clients converge within the TTL": lambda: dns_switch(14.5),
    "old answers outlive the TTL": lambda: dns_switch(18.0),
    "a straggler after the TTL": lambda: dns_switch(14.5, straggler_at=17.0),
    "slot kept, standby caught up": lambda: link_cut(slot="reserved", drained_at=12.0),
    "slot lost, standby stuck": lambda: link_cut(slot="lost", drained_at=None),
    "standby slow to catch up": lambda: link_cut(slot="reserved", drained_at=25.0),
    "short blips": lambda: blip_drill([0.4, 0.45, 0.4]),
    "a blip past the window": lambda: blip_drill([0.4, 2.0], fails_over_at=3.5),
    "old region acknowledges direct writes": lambda: after_failover(direct="ok", leaked=40),
    "fenced old region": lambda: after_failover(direct="fail"),
    "lag peaks at 3 s": lambda: lag_drill(3.0),
    "alarm stays OK": lambda: lag_drill(8.0, alarm="OK"),
    "lag stays after the heal": lambda: lag_drill(8.0, after_heal=4.0, ready_at_end=False),
    "lag rises and drains": lambda: lag_drill(8.0),
    "pre-flight ready during the lag": lambda: lag_drill(8.0, ready_at_end=True),
    "drift miscounted": lambda: drift_drill(25, 20),
    "drift not refused": lambda: drift_drill(25, 0, ready=True),
    "drift named": lambda: drift_drill(25, 25),
    "slow recovery": lambda: failover(recover_at=120.0),
    "recovery over budget": lambda: failover(recover_at=10.0),
    "writes lost for 90 s": lambda: failover(recover_at=2.0, lose_from=10.0),
    "healthy failover": lambda: failover(recover_at=2.0),
    "link cut 40 s, writes since lost": lambda: failover(2.0, lose_from=60.0, cut_at=60.0),
    "link cut 40 s, nothing lost": lambda: failover(2.0, cut_at=60.0),
}
