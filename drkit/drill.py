"""One drill scenario's engine side: its history, ledger, workload, and verdicts.

Steps stay thin: they parse the Gherkin text and call a `Drill`. The plugin maps what happens
here to drill outcomes: a Given step that fails makes the drill `inconclusive`, a fault that
does not take makes it `not_exercised`, a breached objective `fail`, missing data `unknown`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from drkit.clients.resolver import DnsLookupFailed
from drkit.config import LAB_PROFILE, RPO_OBJECTIVE_SECONDS, RTO_OBJECTIVE_SECONDS, TimingProfile
from drkit.errors import ConfigError
from drkit.failover.monitor import ReplicationMonitor
from drkit.failover.orchestrator import FailoverOrchestrator
from drkit.failover.result import FailoverResult
from drkit.failover.verifier import DRVerifier, finite_or_none
from drkit.faults.base import Fault
from drkit.faults.journal import FaultRecord
from drkit.faults.ledger import Ledger
from drkit.lab.control_plane import LabControlPlane
from drkit.lab.lab import Lab
from drkit.measure import dns, fencing
from drkit.measure import observations as observed
from drkit.measure.availability import check_error_tail
from drkit.measure.budget import Budget, check_budget
from drkit.measure.clients import Probe, Writer, content_hash
from drkit.measure.history import History, Op
from drkit.measure.ops import find_disaster, value_field
from drkit.measure.outcome import Outcome, failure_message
from drkit.measure.reads import check_read_your_writes, check_stale_reads
from drkit.measure.rpo import check_rpo, measure_rpo
from drkit.measure.rto import check_rto
from drkit.measure.transport import HttpTransport
from drkit.measure.verdict import UNKNOWN, Verdict
from drkit.targets.aws import AwsQuarantine, AwsTarget
from drkit.targets.lab import LabTarget

if TYPE_CHECKING:
    from drkit.aws.environment import AwsEnvironment

FENCE_KINDS = ("lab.fence", "aws.quarantine")
WATCHER_PHASES = {
    "pre-flight": "decision",
    "fencing": "fencing",
    "promotion": "promotion",
    "dns switch": "dns_switch",
}


class DrillOutcomeError(AssertionError):
    """A drill that did not pass; the message starts with the outcome's name."""

    def __init__(self, outcome: Outcome, reason: str) -> None:
        self.outcome = outcome
        super().__init__(failure_message(outcome, reason))


@dataclass
class Objectives:
    rto_s: float = RTO_OBJECTIVE_SECONDS
    rpo_s: float = RPO_OBJECTIVE_SECONDS
    budget_slack_s: float = 2.0


class DrillChecks(ABC):
    """The verdicts a drill records; subclasses say where the history and final read come
    from (the live lab, or a recorded history in the Then steps' self-tests)."""

    objectives: Objectives
    verdicts: list[Verdict]

    @abstractmethod
    def ops(self) -> tuple[Op, ...]:
        """Provided by each kind of drill."""

    @abstractmethod
    def profile(self) -> TimingProfile:
        """Provided by each kind of drill."""

    @abstractmethod
    def final_read(self, region: str) -> dict[str, str]:
        """Provided by each kind of drill."""

    def check_rpo_exercised(self) -> None:
        """On the aws target, a disaster managed replication does not feel proves no RPO."""
        return None

    def stop_workload(self) -> None:
        """Stop the writer and probe before a final read; nothing to stop by default."""
        return None  # a recorded drill has no workload running

    def record(self, verdict: Verdict) -> Verdict:
        """Keep the verdict; a verdict that is not a pass ends the drill with its outcome."""
        self.verdicts.append(verdict)
        if verdict.valid is False:
            raise DrillOutcomeError(Outcome.FAIL, verdict.summary())
        if verdict.valid != True:  # noqa: E712 - "unknown" is truthy
            raise DrillOutcomeError(Outcome.UNKNOWN, verdict.summary())
        return verdict

    def check_rto(self) -> Verdict:
        return self.record(check_rto(self.ops(), objective=self.objectives.rto_s))

    def budget(self) -> Budget:
        p = self.profile()
        return Budget(
            p.health_interval_s,
            p.failure_threshold,
            p.promotion_budget_s,
            p.dns_ttl_s,
            self.objectives.budget_slack_s,
        )

    def check_budget(self) -> Verdict:
        return self.record(check_budget(self.ops(), self.budget()))

    def check_rpo(self, surviving_region: str) -> Verdict:
        self.check_rpo_exercised()
        final = self.final_read(surviving_region)
        return self.record(check_rpo(self.ops(), final, objective=self.objectives.rpo_s))

    # -- observed verdicts: replication, alarms, pre-flights, drift ------------------------
    def check_lag_rose(self) -> Verdict:
        """Above the timing profile's lag-alarm threshold."""
        return self.record(
            observed.check_lag_rose(self.ops(), self.profile().lag_alarm_threshold_s)
        )

    def check_alarm_fired(self) -> Verdict:
        return self.record(observed.check_alarm_fired(self.ops()))

    def check_lag_recovered(self, below_s: float) -> Verdict:
        return self.record(observed.check_lag_recovered(self.ops(), below_s))

    def check_preflight_refused(self, because: str) -> Verdict:
        return self.record(observed.check_preflight_refused(self.ops(), because))

    def check_preflight_ready(self) -> Verdict:
        return self.record(observed.check_preflight_ready(self.ops()))

    def check_drift_named(self) -> Verdict:
        return self.record(observed.check_drift_named(self.ops()))

    # -- split brain ---------------------------------------------------------------------
    def check_direct_writes_refused(self, region: str) -> Verdict:
        return self.record(fencing.check_direct_writes_refused(self.ops(), region))

    def check_no_writes_outside(self, primary: str) -> Verdict:
        from drkit.lab.topology import REGIONS

        finals = {region: self.final_read(region) for region in REGIONS}
        return self.record(fencing.check_no_writes_outside(self.ops(), finals, primary))

    def check_blips_ridden_out(self) -> Verdict:
        p = self.profile()
        window = p.health_interval_s * p.failure_threshold
        return self.record(observed.check_blips_ridden_out(self.ops(), window))

    def check_no_lost_writes(self, surviving_region: str) -> Verdict:
        """Zero acknowledged writes missing from the surviving database (a planned move)."""
        m = measure_rpo(self.ops(), self.final_read(surviving_region))
        shown = ", ".join(m.lost_ids[:10]) + (" ..." if len(m.lost) > 10 else "")
        return self.record(
            Verdict(
                "lost_writes",
                not m.lost and m.acknowledged > 0,
                f"{len(m.lost)} of {m.acknowledged} acknowledged writes are missing from "
                f"{surviving_region}" + (f": {shown}" if m.lost else ""),
                len(m.lost),
                0,
                "writes",
                None,
                {"lost_ids": list(m.lost_ids)},
            )
        )

    def check_stale_reads_bounded(self, old: str, slack_s: float) -> Verdict:
        return self.record(dns.check_stale_reads_bounded(self.ops(), old, slack_s))

    def check_converged(self, new: str, slack_s: float) -> Verdict:
        return self.record(dns.check_converged(self.ops(), new, slack_s))

    def check_orphans_exported(self) -> Verdict:
        return self.record(observed.check_orphans_exported(self.ops()))

    def check_regions_agree(self) -> Verdict:
        return self.record(observed.check_regions_agree(self.ops()))

    def check_delete_replicated(self) -> Verdict:
        return self.record(observed.check_delete_replicated(self.ops()))

    def check_restore_matches_snapshot(self) -> Verdict:
        return self.record(observed.check_restore_matches_snapshot(self.ops()))

    def check_test_query(self, region: str) -> Verdict:
        return self.record(observed.check_test_query(self.ops(), region))

    def check_latency_within(self, factor: float) -> Verdict:
        return self.record(observed.check_latency_within(self.ops(), factor))

    def check_report_states_measurements(self) -> Verdict:
        """The compliance report states the RTO and RPO this drill measured, as measured."""
        return self.record(observed.check_report_states(self.ops(), self.verdicts))

    def check_read_your_writes(self) -> Verdict:
        return self.record(check_read_your_writes(self.ops()))

    def check_stale_reads(self) -> Verdict:
        return self.record(check_stale_reads(self.ops()))

    def check_error_tail(self, bound_s: float) -> Verdict:
        return self.record(check_error_tail(self.ops(), bound_s=bound_s))

    def check_rebuild_needed(self) -> Verdict:
        return self.record(observed.check_rebuild_needed(self.ops()))

    def check_caught_up(self, within_s: float) -> Verdict:
        return self.record(observed.check_caught_up(self.ops(), within_s))

    def cut_length(self) -> float | None:
        """Seconds from the first fault injected before the disaster (a link cut) to the
        disaster, both read from the history; None when either is missing."""
        ops = self.ops()
        disaster = find_disaster(ops)
        if disaster is None:
            return None
        earlier = [
            op.mono
            for op in ops
            if op.kind == "fault"
            and op.is_invoke
            and value_field(op.value, "f") == "inject"
            and op.mono < disaster.mono
            and value_field(op.value, "disaster") is not True
        ]
        return disaster.mono - min(earlier) if earlier else None

    def check_rpo_breach(self, surviving_region: str, slack_s: float) -> Verdict:
        """A negative control: the RPO verdict must be a breach of about the cut's length, with
        the lost writes listed; anything else means the measurement missed the loss."""
        expected = self.cut_length()
        final = self.final_read(surviving_region)
        rpo = check_rpo(self.ops(), final, objective=self.objectives.rpo_s)
        lost = int(rpo.details.get("lost_count", 0) or 0)
        value = float(rpo.value) if isinstance(rpo.value, int | float) else None
        close = value is not None and expected is not None and abs(value - expected) <= slack_s
        valid = rpo.valid is False and lost > 0 and close
        shown = "not measured" if value is None else f"{value:.3f}s"
        cut = "unknown (no fault before the disaster)" if expected is None else f"{expected:.3f}s"
        reason = (
            f"RPO {shown} with {lost} lost acknowledged writes; the cut lasted {cut} "
            f"(+-{slack_s:g}s) against the {self.objectives.rpo_s:g}s objective"
        )
        return self.record(
            Verdict(
                "rpo_breach_detected",
                valid,
                reason,
                value,
                expected,
                "s",
                rpo.error_bar,
                {"rpo": rpo.to_json()},
            )
        )


@dataclass
class RecordedDrill(DrillChecks):
    """A drill whose history was recorded (or hand-built): Then steps judged without a lab."""

    recorded: tuple[Op, ...]
    finals: dict[str, dict[str, str]] = field(default_factory=dict)
    timing: TimingProfile = LAB_PROFILE
    objectives: Objectives = field(default_factory=Objectives)
    verdicts: list[Verdict] = field(default_factory=list)

    def ops(self) -> tuple[Op, ...]:
        return self.recorded

    def profile(self) -> TimingProfile:
        return self.timing

    def __repr__(self) -> str:  # short: Allure prints step arguments
        return f"RecordedDrill({len(self.recorded)} ops)"

    def final_read(self, region: str) -> dict[str, str]:
        return self.finals[region]


@dataclass
class Drill(DrillChecks):
    """A scenario against the lab: open with `with`, then drive it from the steps."""

    name: str
    run_dir: Path
    env: Lab | AwsEnvironment  # the lab, or on the aws target without one, the config's
    objectives: Objectives = field(default_factory=Objectives)
    verdicts: list[Verdict] = field(default_factory=list)
    lag_threshold_s: float | None = None  # the planned pre-flight's; None: the verifier's
    aws: Any = None  # an AwsRuntime with --dr-target aws (faults through the AWS APIs)

    def __post_init__(self) -> None:
        slug = re.sub(r"[^A-Za-z0-9]+", "-", self.name).strip("-").lower()[:72].strip("-")
        slug += "-" + hashlib.sha256(self.name.encode()).hexdigest()[:8]  # examples differ
        scope = f"{self.run_dir.name}/{slug}"
        self.target: Any = (
            LabTarget(self.env, metric_scope=scope)
            if isinstance(self.env, Lab)
            else self.env.target(metric_scope=scope)
        )
        self.history_path = self.run_dir / "histories" / f"{slug}.jsonl"
        self.history = History(self.history_path, name=self.name)
        self.ledger = Ledger(self.run_dir, state_dir=self.env.state, history=self.history)
        self._clients: list[Writer | Probe] = []
        self.writer: Writer | None = None
        self.disaster: FaultRecord | None = None
        self._verifier: DRVerifier | None = None
        self.failover_phases: dict[str, float] = {}  # the failover's own timing, by phase
        self.failover_result: FailoverResult | None = None
        self.replication_sample: Any = None  # the last ReplicationStatus before the failure
        self.quarter: str | None = None  # --dr-quarter, for the compliance report
        self._pitr: Any = None  # a point-in-time restore in progress (removed on exit)
        self._target_time: str | None = None
        self._snapshot: dict[str, str] = {}
        self._deleted: list[str] = []

    # -- life cycle ----------------------------------------------------------------------
    def __enter__(self) -> Drill:
        from drkit.aws.interlocks import KillSwitch, interrupt_main

        self.started = time.time()
        self.ledger.__enter__()

        # `drkit abort` (a STOP file in the state folder): SIGINT to this thread, so the abort
        # takes Ctrl-C's path and the ledger heals every open fault on the way out
        def abort(reason: str) -> None:
            interrupt_main(reason)

        self.killswitch = KillSwitch(self.env.state, abort, 0.5)
        self.killswitch.start()
        return self

    @property
    def lab(self) -> Lab:
        """The lab, for the steps that act on its data plane (toxics on its paths, its
        clusters, its restore); on the aws target without a lab, a clear refusal."""
        if not isinstance(self.env, Lab):
            raise ConfigError(
                f"this step acts on the lab's data plane, and the aws target of "
                f'{self.env.config.path} has none (data_plane = "aws"): run this drill on the '
                "lab, on the hybrid set-up (`drkit lab aws-config`), or map its fault to an AWS "
                "FIS template in [fis_templates]"
            )
        return self.env

    def attach_aws(self, runtime: Any) -> None:
        """The aws target: faults through the AWS APIs (the runtime), the workload through the
        config's public name, resolvers and service URL. On the hybrid set-up
        (`data_plane = "lab"`) the lab stays its data plane."""
        from drkit.targets.aws import HybridAwsTarget

        self.aws = runtime
        if isinstance(self.env, Lab):
            self.target = HybridAwsTarget(
                self.env, runtime.config, metric_scope=self.target.metric_scope
            )

    def watch_stop_conditions(self) -> None:
        """With the aws target: its config's stop conditions, watched until the drill ends;
        one that trips aborts the drill the way `drkit abort` does."""
        from drkit.aws.interlocks import interrupt_main

        def abort(reason: str) -> None:
            interrupt_main(reason)

        self.stopwatch = self.aws.stop_watch(abort) if self.aws is not None else None
        if self.stopwatch is not None:
            self.stopwatch.start()

    def _tripped(self) -> str | None:
        stopwatch = getattr(self, "stopwatch", None)
        return self.killswitch.tripped or (stopwatch.tripped if stopwatch else None)

    def __exit__(self, *exc: Any) -> None:
        self.finished = time.time()
        # a SIGINT a watcher sent just before it stopped may surface here: we are leaving
        with contextlib.suppress(KeyboardInterrupt):
            self.killswitch.stop()
            if (stopwatch := getattr(self, "stopwatch", None)) is not None:
                stopwatch.stop()
        try:
            self.stop_workload()
        finally:
            try:
                self.ledger.__exit__(*exc)
            finally:
                self._mark_interruption(exc[1])
                self.history.close()
                if self._pitr is not None:
                    self._pitr.remove()  # the scratch cluster never outlives its drill

    def _mark_interruption(self, exc: BaseException | None) -> None:
        """An interrupted drill's partial history says so, after its heals, as its last op;
        an abort (`drkit abort`) is told from a Ctrl-C by the kill switch that tripped."""
        if (reason := self._tripped()) is not None:
            self.history.observe("aborted", None, reason=reason, faults_healed=True)
            self.result = {"status": "aborted", "message": f"aborted: {reason}"}
            return
        by = getattr(self.ledger, "interrupted_by", None)
        if by is None and isinstance(exc, KeyboardInterrupt):
            by = type(exc).__name__
        if by is not None:
            self.history.observe("interrupted", None, by=by, faults_healed=True)

    # -- workload ------------------------------------------------------------------------
    def _transport(self, **kw: Any) -> HttpTransport:
        """The service over HTTP at the target's scheme and port (the lab's API port, or the
        aws target's service URL)."""
        scheme, port = self.target.service_endpoint()
        return HttpTransport(port=port, scheme=scheme, **kw)

    def start_workload(self) -> None:
        """A writer (20 acknowledged writes/s) and a probe, through the public name."""
        name = self.target.public_name
        self.writer = Writer(
            self._transport(timeout=0.5),
            self.target.client_resolver(),
            name,
            self.history,
            period=0.05,
        )
        probe = Probe(
            self._transport(timeout=0.5, by_id=True),
            self.target.client_resolver(),
            name,
            self.history,
            period=0.05,
            expect=self.writer.recent_acked,
        )
        for client in (self.writer, probe):
            client.start()
            self._clients.append(client)

    def write_bulk(self, kb: int, doc_kb: int = 8) -> int:
        """`kb` kilobytes of acknowledged `doc_kb` KB documents through the public name, as
        fast as the service takes them (20 a second); returns how many were acknowledged."""
        bulk = Writer(
            self._transport(timeout=2.0),
            self.target.client_resolver(),
            self.target.public_name,
            self.history,
            period=0.05,
            process="bulk",
            payload_bytes=doc_kb * 1024,
        )
        wanted = -(-kb // doc_kb)
        with bulk:
            self.wait_for(
                lambda: bulk.acked_count >= wanted,
                max(10.0, wanted * 0.5),
                f"{wanted} acknowledged {doc_kb} KB documents",
            )
        return bulk.acked_count

    def write_directly(self, region: str, seconds: float) -> int:
        """Writes sent straight to `region`'s service (its public address, no DNS) for
        `seconds`, recorded under the process `direct:<region>`; returns the attempts."""
        from drkit.lab.topology import PUBLIC, ingress_address
        from drkit.measure.transport import StaticResolver

        name = self.target.public_name
        direct = Writer(
            self._transport(timeout=0.5),
            StaticResolver({name: ingress_address(region, PUBLIC)}),
            name,
            self.history,
            period=0.05,
            process=fencing.direct_process(region),
        )
        with direct:
            self.run_for(seconds)
        return sum(1 for op in self.history.ops if op.process.startswith(direct.process))

    def set_public_ttl(self, ttl: int) -> None:
        """The public record's TTL (its address unchanged), read back and kept (the lab's
        record: on an account the TTL is the record's owner's to change)."""
        control = LabControlPlane.of(self.lab)
        control.set_public_record(control.public_record().address, ttl)
        if control.public_record().ttl != ttl:
            raise ConfigError(f"the public record's TTL did not change to {ttl}s")
        self.history.observe(dns.TTL, None, ttl_s=ttl)

    def start_clients(self, count: int) -> None:
        """`count` reading clients, each with its own TTL-honouring DNS cache, their starts
        spread over one TTL so their cached answers expire at different moments; each reads one
        known document by id (the database alone), so many clients do not load the index."""
        control = LabControlPlane.of(self.lab)
        spread = control.public_record().ttl / count
        known = self.lab.database.east.query(
            "SELECT id FROM documents ORDER BY seq LIMIT 1", dbname=self.lab.settings.database
        )[0][0]
        for n in range(count):
            client = Probe(
                self._transport(timeout=0.5, point_read=known),
                self.target.client_resolver(),
                self.target.public_name,
                self.history,
                period=0.05,
                process=f"client{n}",
            )
            client.start()
            self._clients.append(client)
            time.sleep(spread)

    def quiesce_writes(self) -> int:
        """Stop the writer (the probe goes on) and wait for its writes in flight; returns how
        many it had acknowledged."""
        if self.writer is None:
            raise ConfigError("there is no writer to quiesce; start the workload first")
        self.writer.stop()
        self._clients.remove(self.writer)
        return self.writer.acked_count

    def resume_writes(self) -> None:
        """A new writer (new ids) through the public name, as clients reconnect."""
        self.writer = Writer(
            self._transport(timeout=0.5),
            self.target.client_resolver(),
            self.target.public_name,
            self.history,
            period=0.05,
        )
        self.writer.start()
        self._clients.append(self.writer)

    def blips(self, fault: Callable[[], Fault], seconds: float, times: int, gap_s: float) -> None:
        """`times` short faults of `seconds` each, `gap_s` apart, the watcher's state sampled
        every 0.1 s throughout (kept in the history for the Then steps)."""
        for _ in range(times):
            record = self.ledger.inject(fault())
            self._sample_watcher_for(seconds)
            self.ledger.heal(record)
            self._sample_watcher_for(gap_s)

    def _sample_watcher_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while True:
            state = self.watcher_state()
            self.history.observe(
                observed.WATCHER,
                None,
                state=state.get("state"),
                consecutive_failures=state.get("consecutive_failures"),
            )
            if time.monotonic() >= end:
                return
            time.sleep(min(0.1, max(0.0, end - time.monotonic())))

    def stop_workload(self) -> None:
        while self._clients:
            self._clients.pop().stop()

    # -- faults --------------------------------------------------------------------------
    def inject(self, fault: Fault, *, disaster: bool = False) -> FaultRecord:
        record = self.ledger.inject(fault, disaster=disaster)
        if disaster:
            self.disaster = record
        return record

    def heal_all(self) -> None:
        self.ledger.heal_all()

    # -- waiting -------------------------------------------------------------------------
    def wait_for(
        self, predicate: Callable[[], bool], budget_s: float, what: str, interval_s: float = 0.05
    ) -> float:
        """Wait for an event (never a fixed sleep), printing progress against the budget."""
        start = last_print = time.monotonic()
        while True:
            if predicate():
                return time.monotonic() - start
            elapsed = time.monotonic() - start
            if elapsed > budget_s:
                raise TimeoutError(f"waited {elapsed:.1f}s (budget {budget_s:g}s) for {what}")
            if time.monotonic() - last_print >= 2.0:
                print(f"  waiting for {what}: {elapsed:.0f}s of {budget_s:g}s", file=sys.stderr)
                last_print = time.monotonic()
            time.sleep(interval_s)

    def run_for(self, seconds: float) -> None:
        """Let the workload run; the measured window is part of the drill's history."""
        time.sleep(seconds)

    def watcher_state(self) -> dict[str, Any]:
        return self.env.watcher.watch_state()

    def await_watcher_failover(self, budget_s: float) -> dict[str, Any]:
        self.wait_for(
            lambda: self.watcher_state().get("state") in ("failed_over", "failover_failed"),
            budget_s,
            "the watcher's failover",
        )
        state = self.watcher_state()
        self._mark_watcher_phases(state)
        if "success" in state.get("failover", {}):
            self.failover_result = FailoverResult.from_dict(state["failover"])
        self.failover_phases = {
            p["name"]: float(p["duration_s"]) for p in state.get("failover", {}).get("phases", [])
        }
        return state

    def observe_external_automation(self) -> None:
        """The organisation's failover automation (Route 53 failover routing, a Lambda, ARC) is
        under test: drkit's watcher stays off so drkit takes no recovery action; the drill
        only observes. Read back: no drkit watcher process."""
        self.env.watcher.stop()  # returns once its process is gone (or raises, naming it)
        self.history.observe(
            "automation",
            None,
            automation="external",
            note="the organisation's failover automation is observed, not driven",
        )

    def await_external_failover(self, budget_s: float, interval_s: float = 0.2) -> None:
        """Wait for the organisation's automation to bring the DR region into service: its
        database a primary, the public name answering with the DR service's address (asked
        afresh through the config's resolvers, so a record UPSERT and failover routing both
        show), and a write through the public name acknowledged by it. The promotion and the
        name's switch are marked when first seen (polled every `interval_s`, so each mark is
        late by at most that plus one read); the decision and fencing are not observable from
        outside and are not marked."""
        if self.aws is None:
            raise ConfigError("external automation is observed on the aws target only")
        control, dr = self.aws.control, self.aws.config.dr_region
        dr_host = urlparse(self.aws.config.region(dr).service_url).hostname or ""
        since = time.monotonic()
        seen: dict[str, float] = {}

        def answers_dr() -> bool:
            resolver = self.target.client_resolver()  # fresh: no cached answer
            try:
                wanted = {dr_host} if _is_address(dr_host) else {resolver.resolve(dr_host)}
                return resolver.resolve(self.target.public_name) in wanted
            except DnsLookupFailed:  # "not yet": the budget bounds the wait
                return False

        def in_service() -> bool:
            if "promotion" not in seen and control.database_role(dr) == "primary":
                seen["promotion"] = time.time()
            if "dns_switch" not in seen and answers_dr():
                seen["dns_switch"] = time.time()
            return len(seen) == 2 and any(
                op.type == "ok" and op.kind == "write" and op.region == dr and op.mono > since
                for op in self.history.ops[-400:]
            )

        try:
            self.wait_for(
                in_service,
                budget_s,
                f"the external automation to bring {dr} into service",
                interval_s,
            )
        finally:
            for phase, wall in sorted(seen.items(), key=lambda item: item[1]):
                self._mark(phase, wall, f"observed (polled every {interval_s:g}s)")

    def _mark_watcher_phases(self, state: dict[str, Any]) -> None:
        """Copy the watcher's timed phases into this history as recovery marks."""
        if state.get("failover_started_at"):
            self._mark("detection", float(state["failover_started_at"]), "watcher status")
        for phase in state.get("failover", {}).get("phases", []):
            if phase["name"] in WATCHER_PHASES:
                ended = _epoch(phase["started_at"]) + float(phase["duration_s"])
                self._mark(WATCHER_PHASES[phase["name"]], ended, "watcher status")

    def _mark(self, phase: str, wall: float, source: str) -> None:
        """A recovery mark at wall time `wall` (mapped onto this history's monotonic clock)."""
        wall0, mono0 = time.time(), time.monotonic()
        self.history.append(
            Op(
                index=0,
                process="recovery",
                type="ok",
                kind="recovery",
                value={"phase": phase, "source": source},
                wall=wall,
                mono=mono0 - (wall0 - wall),
                region=None,
                error=None,
            )
        )

    def ops(self) -> tuple[Op, ...]:
        return self.history.ops

    def profile(self) -> TimingProfile:
        profile: TimingProfile = self.target.profile
        return profile

    def __repr__(self) -> str:  # short: Allure prints step arguments into the report
        return f"Drill({self.name!r})"

    def check_rpo_exercised(self) -> None:
        from drkit.aws.runtime import rpo_not_exercised

        disaster = getattr(self, "disaster", None)
        if self.aws is None or disaster is None:
            return
        if (why := rpo_not_exercised(self.aws.config.promotion, disaster.kind)) is not None:
            self.verdicts.append(Verdict("rpo", UNKNOWN, f"not exercised: {why}"))
            raise DrillOutcomeError(Outcome.NOT_EXERCISED, why)

    def final_read(self, region: str) -> dict[str, str]:
        """id -> content hash (the writer's way) of every document in `region`'s database,
        over the target's connection (on the aws target: the config's)."""
        return self.target.final_read(region)

    def verifier(self) -> DRVerifier:
        if self._verifier is None:
            primary, dr = self.target.regions()[:2]
            monitor = ReplicationMonitor(
                self.target.db_config(primary),
                self.target.db_config(dr),
                profile=self.profile(),
                target=self.target,
            )
            threshold = {"lag_threshold_s": self.lag_threshold_s} if self.lag_threshold_s else {}
            self._verifier = DRVerifier(monitor, target=self.target, **threshold)
        return self._verifier

    def sample_lag(self) -> dict[str, Any]:
        """One replication sample (published to CloudWatch) and the lag alarm's state, kept."""
        status = self.verifier().monitor.check_replication_lag()
        sample = {
            "lag_s": round(status.lag_seconds, 3),
            "lag_upper_s": finite_or_none(status.lag_upper_bound_seconds or math.inf),
            "lag_bytes": status.lag_bytes,
            "state": status.state,
            "alarm": self.target.lag_alarm_state("us-west-2"),
        }
        self.history.observe(observed.REPLICATION, "us-west-2", **sample)
        return sample

    def watch_replication(
        self, until: Callable[[dict[str, Any]], bool], budget_s: float, what: str
    ) -> dict[str, Any]:
        """Sample replication every health interval until `until(sample)` holds."""
        latest: dict[str, Any] = {}

        def sampled() -> bool:
            nonlocal latest
            latest = self.sample_lag()
            return until(latest)

        self.wait_for(sampled, budget_s, what, interval_s=self.profile().health_interval_s)
        return latest

    def preflight(self, mode: str = "planned") -> dict[str, Any]:
        """Run the failover pre-flight now and keep its answer in the history."""
        health = self.verifier().run_health_checks(mode=mode)
        status = health["status"]
        self.history.observe(
            observed.PREFLIGHT,
            "us-west-2",
            mode=health["mode"],
            ready=health["ready"],
            issues=health["issues"],
            checks=health["checks"],
            counts={k: status.get(f"{k}_count") for k in ("missing", "extra", "stale")},
        )
        return health

    def observe_index_drift(self, region: str, mode: str) -> int:
        """Read back how many of `region`'s vectors differ from its database, and keep it."""
        from drkit.lab.sut import database_hashes, index_hashes

        rows, vectors = database_hashes(self.lab, region), index_hashes(self.lab, region)
        if mode == "missing":
            count = sum(1 for i in rows if i not in vectors)
        else:
            count = sum(1 for i, h in rows.items() if i in vectors and vectors[i] != h)
        self.history.observe(observed.INDEX_DRIFT, region, mode=mode, count=count)
        return count

    def generate_wal(self, region: str, mb: int) -> int:
        """At least `mb` MB of WAL on `region`'s primary, fast: a one-row write and a segment
        switch per megabyte (the lab's segments are 1 MB), then a checkpoint, which is when
        PostgreSQL retires WAL and invalidates a slot that would hold more than its limit."""
        cluster = self.lab.database.clusters[region]
        before = cluster.query("SELECT pg_current_wal_lsn()")[0][0]
        with cluster.connect() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS drkit_wal_filler (n int)")
            for n in range(mb):
                conn.execute("INSERT INTO drkit_wal_filler VALUES (%s)", (n,))
                conn.execute("SELECT pg_switch_wal()")
            conn.execute("TRUNCATE drkit_wal_filler")
            conn.execute("CHECKPOINT")
            row = conn.execute(
                "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)::bigint", (before,)
            ).fetchone()
        written = int(row[0]) if row else 0
        self.history.observe("wal written", region, bytes=written)
        return written

    def observe_slot(self) -> str | None:
        """The standby's replication slot on the primary, read back and kept."""
        tier = self.lab.database
        state = tier.slot_state(tier.east, tier.west.node.slot_name)
        self.history.observe(
            observed.SLOT,
            "us-east-1",
            slot=tier.west.node.slot_name,
            wal_status=state,
            keep_size_mb=self.lab.settings.slot_wal_keep_size_mb,
        )
        return state

    def watch_replication_for(self, seconds: float) -> None:
        """Replication samples and the slot's state every health interval for `seconds`."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.sample_lag()
            self.observe_slot()
            time.sleep(self.profile().health_interval_s)

    def rebuild_standby(self) -> float:
        """Rebuild us-west-2 from us-east-1 with a fresh base backup and slot; timed, kept."""
        tier = self.lab.database
        start = time.monotonic()
        tier.rebuild_standby(tier.east, tier.west)
        tier.west.start()
        tier.wait_streaming(tier.west, budget_s=30)
        took = time.monotonic() - start
        self.history.observe(observed.REBUILD, "us-west-2", duration_s=round(took, 3))
        return took

    def export_orphans(self, old: str, new: str) -> Path:
        """Before `old` is rewound: every row it holds that `new` lacks (or holds with another
        content) is exported into the evidence (books and records), with which of them the
        writer saw acknowledged; what the export holds is kept in the history."""
        database = self.lab.settings.database
        rows = self.lab.database.clusters[old].query(
            "SELECT id, content_hash, created_at::text, written_in, body FROM documents",
            dbname=database,
        )
        survivors = self.final_read(new)
        orphans = [
            {"id": str(i), "content_hash": h, "created_at": c, "written_in": w}
            for i, h, c, w, body in rows
            if survivors.get(str(i)) != content_hash(str(body))
        ]
        m = measure_rpo(self.ops(), survivors)
        path = self.run_dir / "evidence" / f"orphaned-writes-{old}-{self.history_path.stem}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        exported = {o["id"] for o in orphans}
        acked_lost = list(m.lost_ids)
        path.write_text(
            json.dumps(
                {
                    "region": old,
                    "compared_with": new,
                    "rows": orphans,
                    "acknowledged_and_lost": acked_lost,
                },
                indent=2,
            )
        )
        self.history.observe(
            observed.ORPHANS,
            old,
            path=str(path),
            rows=len(orphans),
            acked_lost=len(acked_lost),
            acked_lost_not_exported=sorted(set(acked_lost) - exported)[:50],
        )
        return path

    def rewind(self, old: str, new: str) -> float:
        """`old` (a former primary) rewound with pg_rewind to follow `new`; timed, kept."""
        tier = self.lab.database
        start = time.monotonic()
        said = tier.follow(tier.clusters[new], tier.clusters[old])
        from drkit.lab.sut import wait_replayed

        wait_replayed(tier.clusters[new], tier.clusters[old], budget_s=30)
        took = time.monotonic() - start
        self.history.observe(
            observed.REWIND, old, follows=new, duration_s=round(took, 3), pg_rewind=said[-500:]
        )
        return took

    def lift_fence(self, region: str) -> None:
        """Undo the fence a failover put on `region` (failback only), read back."""
        fences = [
            r
            for r in self.ledger.records
            if r.category == "recovery"
            and r.kind in FENCE_KINDS
            and r.params.get("region") == region
        ]
        if fences:
            self.ledger.undo(fences[-1])
            return
        # fenced by the watcher's own failover (its ledger is its own): undo it here, read back
        fence = self._watchers_fence(region)
        if fence is None or fence.verify_undone():
            raise ConfigError(f"{region} is not fenced; there is no fence to lift")
        fence.undo()
        if not fence.verify_undone():
            raise ConfigError(f"the fence on {region} is still in place after lifting it")
        self.history.observe("fence lifted", region, fenced_by="the watcher's failover")

    def _watchers_fence(self, region: str) -> Any:
        """The fence the watcher's last failover recorded on `region`, rebuilt from its ledger
        record (an aws quarantine needs the groups it took the database out of); the lab's
        lease is the same whoever set it. None: that failover did not fence it."""
        from drkit.measure.chain import read_chain

        if isinstance(self.env, Lab) and not isinstance(self.target, AwsTarget):
            return self.target.fence(region)
        for path in sorted((self.env.state / "watcher").glob("watcher-*/ledger.jsonl"))[::-1]:
            for entry in reversed(read_chain(path).records):
                record = entry.get("record") or {}
                params = record.get("params", {})
                if entry.get("event") != "intent" or params.get("region") != region:
                    continue
                if record.get("kind") == "aws.quarantine":
                    previous = tuple(params["previous_groups"])
                    return AwsQuarantine(self.target.aws, region, previous=previous)
                if record.get("kind") == "aws.not_fenced":
                    return None
        return None

    def failback(self, to: str, frm: str) -> FailoverResult:
        """A planned switchover from `frm` back to `to`, through the same orchestrator."""
        monitor = ReplicationMonitor(
            self.lab.db_config(frm),
            self.lab.db_config(to),
            profile=self.lab.settings.profile,
            target=self.target,
        )
        # the runbook waits for the rewound side's service to reconnect before its pre-flight
        self.wait_for(
            lambda: self.target.service_health(to).ok, 30, f"{to}'s service to report healthy"
        )
        self.history.recovery("detection", source="operator")
        orchestrator = FailoverOrchestrator(
            DRVerifier(monitor, target=self.target), ledger=self.ledger
        )
        result = orchestrator.execute_failover(
            f"runbook: failback from {frm} to {to}", mode="planned"
        )
        self.failover_phases = {p.name: p.duration_s for p in result.phases}
        if not result.success:
            raise TimeoutError(f"the failback did not complete: {'; '.join(result.errors)}")
        return result

    def compare_regions(self, regions: Sequence[str]) -> dict[str, Any]:
        """Ids and content hashes of the regions' databases and indexes, compared pairwise
        (each region's index against its database, and the regions against each other)."""
        from drkit.lab.sut import database_hashes, index_hashes
        from drkit.targets.lab import compare

        stores = {}
        for region in regions:
            stores[f"{region} database"] = database_hashes(self.lab, region)
            stores[f"{region} index"] = index_hashes(self.lab, region)
        names = list(stores)
        pairs = {}
        for n, left in enumerate(names):
            for right in names[n + 1 :]:
                equal, missing, extra, stale = compare(stores[left], stores[right])
                pairs[f"{left} vs {right}"] = {
                    "equal": equal,
                    "missing": missing,
                    "extra": extra,
                    "stale": stale,
                }
        self.history.observe(observed.COMPARISON, None, regions=list(regions), pairs=pairs)
        return pairs

    # -- point-in-time restore --------------------------------------------------------------
    def _documents(self, cluster: Any) -> dict[str, str]:
        rows = cluster.query(
            "SELECT id, content_hash FROM documents", dbname=self.lab.settings.database
        )
        return {str(i): str(h) for i, h in rows}

    def take_base_backup(self, region: str) -> float:
        from drkit.lab.restore import PointInTimeRestore

        self._pitr = PointInTimeRestore(self.lab, region, self.history_path.stem[-8:])
        took = self._pitr.base_backup()
        self.history.observe(observed.BASE_BACKUP, region, duration_s=round(took, 3))
        return took

    def bulk_delete(self, region: str, percent: int) -> int:
        """The destructive change: a snapshot (ids and content hashes, to the evidence), the
        primary's clock read as the restore target, then a bulk delete of `percent` % of the
        documents, and the WAL through it archived."""
        if self._pitr is None:
            raise ConfigError("take a base backup before the destructive change")
        cluster = self.lab.database.clusters[region]
        snapshot = self._documents(cluster)
        path = self.run_dir / "evidence" / f"snapshot-{region}-{self.history_path.stem}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(snapshot, indent=0, sort_keys=True))
        victims = sorted(snapshot)[:: max(1, round(100 / percent))]
        self._target_time = str(cluster.query("SELECT clock_timestamp()::text")[0][0])
        with cluster.connect(self.lab.settings.database) as conn:
            for start in range(0, len(victims), 1000):
                conn.execute(
                    "DELETE FROM documents WHERE id = ANY(%s)", (victims[start : start + 1000],)
                )
        self._pitr.archive_through_now()
        self._snapshot, self._deleted = snapshot, victims
        self.history.observe(
            observed.BULK_DELETE,
            region,
            snapshot_rows=len(snapshot),
            deleted=len(victims),
            target_time=self._target_time,
            snapshot=str(path),
        )
        return len(victims)

    def observe_replicated_delete(self, primary: str, standby: str) -> int:
        """Wait for the standby to replay everything, then count what it holds."""
        from drkit.lab.sut import wait_replayed

        tier = self.lab.database
        wait_replayed(tier.clusters[primary], tier.clusters[standby], budget_s=30)
        rows = len(self._documents(tier.clusters[standby]))
        self.history.observe(
            observed.DELETE_REPLICATED,
            standby,
            rows=rows,
            expected=len(self._snapshot) - len(self._deleted),
        )
        return rows

    def restore_before_delete(self) -> dict[str, Any]:
        """A scratch cluster from the base backup and the archive, to just before the delete;
        timed, its documents compared with the snapshot."""
        from drkit.targets.lab import compare

        if self._pitr is None or self._target_time is None:
            raise ConfigError("there is no base backup and destructive change to restore from")
        took = self._pitr.restore(self._target_time)
        restored = self._documents(self._pitr.cluster)
        equal, missing, extra, stale = compare(self._snapshot, restored)
        result = {
            "duration_s": round(took, 3),
            "rows": len(restored),
            "equal": equal,
            "missing": missing,
            "extra": extra,
            "stale": stale,
            "deleted_recovered": sum(1 for i in self._deleted if i in restored),
            "deleted": len(self._deleted),
        }
        self.history.observe(observed.RESTORE, self._pitr.source.node.region, **result)
        return result

    def copy_back(self, region: str) -> int:
        """The deleted documents copied from the restored cluster back into `region`'s
        primary; then the primary is compared with the snapshot."""
        from drkit.lab.sut import CONTENT_COLUMNS
        from drkit.targets.lab import compare

        if self._pitr is None:
            raise ConfigError("there is no restored cluster to copy from")
        columns = ", ".join((*CONTENT_COLUMNS, "content_hash", "seq", "created_at", "written_in"))
        db = self.lab.settings.database
        with self._pitr.cluster.connect(db) as source:
            rows = source.execute(
                f"SELECT {columns} FROM documents WHERE id = ANY(%s)", (self._deleted,)
            ).fetchall()
        primary = self.lab.database.clusters[region]
        with (
            primary.connect(db) as conn,
            conn.transaction(),
            conn.cursor().copy(f"COPY documents ({columns}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        equal, missing, extra, stale = compare(self._snapshot, self._documents(primary))
        self.history.observe(
            observed.COMPARISON,
            region,
            regions=[region],
            pairs={
                f"snapshot vs {region} database": {
                    "equal": equal,
                    "missing": missing,
                    "extra": extra,
                    "stale": stale,
                }
            },
            copied_back=len(rows),
        )
        return len(rows)

    # -- the quarterly test: pre-test verification, baselines, DR verification, report ----
    def pretest(self, region: str, max_lag_s: float) -> None:
        """The primary answers and its service is healthy, and the replication lag is under
        `max_lag_s`; what was seen is kept, and a failed condition stops the test."""
        status = self.verifier().monitor.check_replication_lag()
        self.replication_sample = status
        health = self.target.service_health(region)
        self.history.observe(
            observed.PRETEST,
            region,
            primary_reachable=status.primary_reachable,
            lag_s=round(status.lag_seconds, 3),
            service=health.detail,
            service_ok=health.ok,
        )
        if not status.primary_reachable or not health.ok or status.lag_seconds >= max_lag_s:
            raise ConfigError(
                f"pre-test verification failed: primary reachable {status.primary_reachable}, "
                f"service {health.detail}, replication lag {status.lag_seconds:.2f}s "
                f"(limit {max_lag_s:g}s); the test cannot start"
            )

    def _query_once(self, transport: HttpTransport) -> tuple[str, float, int]:
        address = self.target.client_resolver().resolve(self.target.public_name)
        start = time.monotonic()
        result = transport.read(address, "quarterly settlement filing")
        return result.region, (time.monotonic() - start) * 1000, len(result.ids)

    def measure_latency(self, check: str, queries: int = 40) -> dict[str, Any]:
        """`queries` searches through the public name, one after another: p50 and p95 (ms)."""
        transport = self._transport(timeout=2.0)
        try:
            samples = [self._query_once(transport) for _ in range(queries)]
        finally:
            transport.close()
        latencies = sorted(ms for _, ms, _ in samples)
        figures = {
            "queries": queries,
            "p50_ms": round(latencies[len(latencies) // 2], 2),
            "p95_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))], 2),
            "regions": sorted({region for region, _, _ in samples}),
        }
        if check == observed.BASELINE:
            figures["documents"] = len(self._documents(self.lab.database.east))
        self.history.observe(check, None, **figures)
        return figures

    def test_query(self) -> str:
        """One test query through the public name; which region answered, how fast."""
        transport = self._transport(timeout=2.0)
        try:
            region, ms, found = self._query_once(transport)
        finally:
            transport.close()
        self.history.observe(
            observed.TEST_QUERY, region, answered_by=region, latency_ms=round(ms, 2), results=found
        )
        return region

    def write_compliance_report(self) -> Path:
        """The quarterly compliance report from this run's failover, its last replication
        sample before the failure and every verdict so far, as Markdown and JSON."""
        from datetime import datetime

        from drkit.evidence.compliance import ComplianceReporter, to_json, to_markdown

        if self.failover_result is None or self.replication_sample is None:
            raise ConfigError("the report needs a failover and a replication sample before it")
        reporter = ComplianceReporter(self.objectives.rto_s, self.objectives.rpo_s)
        report = reporter.generate_quarterly_report(
            datetime.now().astimezone(),
            self.failover_result,
            self.replication_sample,
            measurements=self.verdicts,
        )
        if self.quarter:
            report["quarter"] = self.quarter
        folder = self.run_dir / "evidence"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"compliance-{report['quarter']}-{self.history_path.stem}.md"
        path.write_text(to_markdown(report))
        path.with_suffix(".json").write_text(to_json(report))

        def minutes(key: str) -> float | None:
            return report[key]["measured_minutes"]

        self.history.observe(
            observed.REPORT,
            None,
            path=str(path),
            quarter=report["quarter"],
            status=report["overall_result"]["status"],
            rto_minutes=minutes("rto_analysis"),
            rpo_minutes=minutes("rpo_analysis"),
            rto_basis=report["rto_analysis"]["basis"],
            rpo_basis=report["rpo_analysis"]["basis"],
        )
        return path

    def reconcile_index(self, region: str) -> dict[str, Any]:
        """Bring `region`'s index back in line with its own database; keep what it changed."""
        from drkit.lab.sut import reconcile_index

        report = reconcile_index(self.lab, region).to_json()
        self.history.observe(observed.RECONCILIATION, report.pop("region"), **report)
        return report

    def sample_replication(self) -> None:
        """A replication sample now: the last one before a failure, for the pre-flight."""
        self.verifier().run_health_checks()
        self.replication_sample = self.verifier().monitor.last_status

    def operator_failover(
        self, reason: str, *, force: bool, fence: bool = True, mode: str = "unplanned"
    ) -> FailoverResult:
        """A failover run by hand as a runbook step; its recovery actions go to this ledger."""
        self.history.recovery("detection", source="operator")  # the operator has decided
        orchestrator = FailoverOrchestrator(self.verifier(), ledger=self.ledger)
        result = orchestrator.execute_failover(reason, force=force, mode=mode, fence=fence)
        self.failover_result = result
        self.failover_phases = {p.name: p.duration_s for p in result.phases}
        for phase in result.phases:
            if phase.name in WATCHER_PHASES and phase.ok:
                ended = phase.started_at.timestamp() + phase.duration_s
                self._mark(WATCHER_PHASES[phase.name], ended, "failover result")
        if not result.success:
            raise TimeoutError(f"the failover did not complete: {'; '.join(result.errors)}")
        return result

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "history": str(self.history_path),
            "verdicts": [v.to_json() for v in self.verdicts],
            "failover_phases": self.failover_phases,
            "profile": asdict(self.profile()),
            "objectives": asdict(self.objectives),
            "started": getattr(self, "started", None),
            "finished": getattr(self, "finished", None),
            "result": getattr(self, "result", None),
        }

    def write_summary(self) -> Path:
        """The verdicts beside the history (`verdicts/<slug>.json`), for scripts and benches."""
        path = self.run_dir / "verdicts" / self.history_path.name.replace(".jsonl", ".json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.summary_json())
        return path

    def summary_json(self) -> str:
        return json.dumps(self.summary(), indent=2, default=str)


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


def _is_address(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
