"""What moto stores but never evaluates: CloudWatch alarms and Route 53 health checks.

One lab process (`python -m drkit.lab.evaluators --state DIR --port-base N`) does both:

* **alarms**: every second, each metric alarm in each lab region is evaluated over its last
  `EvaluationPeriods` complete periods (aligned to the period, as CloudWatch does) from the
  metric data put into moto, with its statistic, threshold, comparison operator,
  `DatapointsToAlarm` and `TreatMissingData`; a new state is written back with
  `set_alarm_state`, so `describe_alarms` shows it. Any period is accepted (the API allows
  10, 30 or a multiple of 60 s).
* **health checks**: each Route 53 health check is probed at its own `RequestInterval` with
  Route 53's timeouts (TCP: connect within 10 s; HTTP/HTTPS: connect within 4 s, a 2xx/3xx
  within 2 s more) and flips after `FailureThreshold` consecutive failures or successes. moto
  has no health-check status API, so the status lives in the evaluator's status file;
  `health_check_status(path, id)` reads it.
"""

from __future__ import annotations

import argparse
import json
import operator
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from drkit.clients.aws import AwsClients, AwsEndpoint, aws_errors
from drkit.clients.resolver import DnsResolver
from drkit.errors import DrillError, LabError
from drkit.lab.sg_reconciler import log, read_status, write_status

STATUS_FILE = "evaluator.json"
OK, ALARM, INSUFFICIENT_DATA = "OK", "ALARM", "INSUFFICIENT_DATA"
MOTO_UNCHECKED = "Unchecked: Initial alarm creation"  # moto's state before any evaluation
COMPARISONS: Mapping[str, Callable[[float, float], bool]] = {
    "GreaterThanOrEqualToThreshold": operator.ge,
    "GreaterThanThreshold": operator.gt,
    "LessThanThreshold": operator.lt,
    "LessThanOrEqualToThreshold": operator.le,
}
COMPARISON_WORDS = {
    "GreaterThanOrEqualToThreshold": "greater than or equal to",
    "GreaterThanThreshold": "greater than",
    "LessThanThreshold": "less than",
    "LessThanOrEqualToThreshold": "less than or equal to",
}


# -- alarms: the pure part ------------------------------------------------------------------
@dataclass(frozen=True)
class AlarmSpec:
    """A metric alarm as `describe_alarms` returns it, reduced to what evaluation needs."""

    region: str
    name: str
    namespace: str
    metric: str
    dimensions: tuple[tuple[str, str], ...]
    statistic: str
    unit: str | None
    period: int
    evaluation_periods: int
    datapoints_to_alarm: int
    threshold: float
    comparison: str
    treat_missing: str
    state: str | None  # None: never evaluated yet
    unsupported: str | None = None

    @classmethod
    def from_api(cls, region: str, data: Mapping[str, Any]) -> AlarmSpec:
        periods = int(data.get("EvaluationPeriods") or 1)
        state = data.get("StateValue")
        return cls(
            region=region,
            name=str(data["AlarmName"]),
            namespace=str(data.get("Namespace") or ""),
            metric=str(data.get("MetricName") or ""),
            dimensions=tuple((d["Name"], d["Value"]) for d in data.get("Dimensions") or ()),
            statistic=str(data.get("Statistic") or ""),
            unit=data.get("Unit"),
            period=int(data.get("Period") or 60),
            evaluation_periods=periods,
            datapoints_to_alarm=int(data.get("DatapointsToAlarm") or periods),
            threshold=float(data.get("Threshold") or 0.0),
            comparison=str(data.get("ComparisonOperator") or ""),
            treat_missing=str(data.get("TreatMissingData") or "missing"),
            state=None if data.get("StateReason") == MOTO_UNCHECKED else state,
            unsupported=_unsupported(data),
        )


def _unsupported(data: Mapping[str, Any]) -> str | None:
    if data.get("Metrics"):
        return "metric math alarms are not evaluated by the lab"
    if data.get("ExtendedStatistic"):
        return f"extended statistic {data['ExtendedStatistic']} is not evaluated by the lab"
    if data.get("ComparisonOperator") not in COMPARISONS:
        return f"comparison {data.get('ComparisonOperator')} is not evaluated by the lab"
    if not data.get("Statistic"):
        return "the alarm has no statistic"
    return None


@dataclass(frozen=True)
class AlarmDecision:
    state: str
    reason: str
    values: tuple[float | None, ...]  # oldest first, one per evaluated period


def period_windows(now: float, period: int, count: int) -> list[tuple[float, float]]:
    """The last `count` complete periods before `now`, aligned to multiples of `period`
    since the epoch (as CloudWatch aligns them), oldest first."""
    end = (int(now) // period) * period
    return [(end - (count - i) * period, end - (count - i - 1) * period) for i in range(count)]


def decide(spec: AlarmSpec, values: Sequence[float | None]) -> AlarmDecision:
    """The alarm's state given one value per evaluated period (None: no data in it)."""
    breaches = COMPARISONS[spec.comparison]
    marks = [_mark(v, spec.threshold, breaches, spec.treat_missing) for v in values]
    bad, missing = marks.count("bad"), marks.count("missing")
    needed = spec.datapoints_to_alarm
    if bad >= needed:
        return AlarmDecision(ALARM, _reason(spec, values, bad, "ALARM"), tuple(values))
    if missing == len(marks):
        keep = spec.state if spec.treat_missing == "ignore" and spec.state else INSUFFICIENT_DATA
        return AlarmDecision(keep, f"no datapoints in the last {len(marks)} periods", tuple(values))
    if bad + missing < needed:
        return AlarmDecision(OK, _reason(spec, values, bad, "OK"), tuple(values))
    keep = spec.state or INSUFFICIENT_DATA  # missing data could still go either way
    return AlarmDecision(keep, "missing datapoints leave the outcome open", tuple(values))


def _mark(
    value: float | None, threshold: float, breaches: Callable[[float, float], bool], treat: str
) -> str:
    if value is None:
        return {"breaching": "bad", "notBreaching": "good"}.get(treat, "missing")
    return "bad" if breaches(value, threshold) else "good"


def _reason(spec: AlarmSpec, values: Sequence[float | None], bad: int, state: str) -> str:
    shown = ", ".join("missing" if v is None else f"{v:g}" for v in values)
    return (
        f"Threshold Crossed: {bad} out of the last {len(values)} datapoints [{shown}] were "
        f"{COMPARISON_WORDS[spec.comparison]} the threshold ({spec.threshold:g}) "
        f"(minimum {spec.datapoints_to_alarm} datapoints for ALARM); evaluated by the drkit "
        f"lab -> {state}"
    )


# -- alarms: against moto --------------------------------------------------------------------
def describe_alarms(clients: AwsClients, region: str) -> list[AlarmSpec]:
    with aws_errors(f"describe alarms in {region}", "moto"):
        pages = clients.cloudwatch(region).get_paginator("describe_alarms").paginate()
        return [AlarmSpec.from_api(region, a) for page in pages for a in page["MetricAlarms"]]


def period_value(clients: AwsClients, spec: AlarmSpec, start: float, end: float) -> float | None:
    """The alarm's statistic over [start, end), or None when no datum falls in it."""
    kwargs: dict[str, Any] = {
        "Namespace": spec.namespace,
        "MetricName": spec.metric,
        "Dimensions": [{"Name": n, "Value": v} for n, v in spec.dimensions],
        "StartTime": datetime.fromtimestamp(start, UTC),
        "EndTime": datetime.fromtimestamp(end, UTC),
        "Period": spec.period,
        "Statistics": [spec.statistic],
    }
    if spec.unit:
        kwargs["Unit"] = spec.unit
    with aws_errors(f"get statistics of {spec.namespace}/{spec.metric}", "moto"):
        points = clients.cloudwatch(spec.region).get_metric_statistics(**kwargs)["Datapoints"]
    return float(points[0][spec.statistic]) if points else None  # type: ignore[literal-required]


def evaluate_alarm(clients: AwsClients, spec: AlarmSpec, now: float) -> AlarmDecision:
    windows = period_windows(now, spec.period, spec.evaluation_periods)
    values = [period_value(clients, spec, start, end) for start, end in windows]
    decision = decide(spec, values)
    if decision.state != spec.state:
        data = {"version": "1.0", "evaluatedDatapoints": list(values), "by": "drkit lab"}
        with aws_errors(f"set state of alarm {spec.name} in {spec.region}", "moto"):
            clients.cloudwatch(spec.region).set_alarm_state(
                AlarmName=spec.name,
                StateValue=decision.state,  # type: ignore[arg-type]
                StateReason=decision.reason[:1023],
                StateReasonData=json.dumps(data),
            )
    return decision


def alarm_state(clients: AwsClients, name: str, region: str) -> str:
    """The alarm's state as `describe_alarms` shows it (INSUFFICIENT_DATA before the lab has
    evaluated it once: moto starts alarms as an unchecked OK)."""
    with aws_errors(f"describe alarm {name} in {region}", "moto"):
        alarms = clients.cloudwatch(region).describe_alarms(AlarmNames=[name])["MetricAlarms"]
    if not alarms:
        raise LabError(f"no alarm named {name!r} in {region}; list them with describe_alarms")
    spec = AlarmSpec.from_api(region, alarms[0])
    return spec.state or INSUFFICIENT_DATA


# -- health checks: the pure part ------------------------------------------------------------
PROBED_TYPES = ("HTTP", "HTTPS", "HTTP_STR_MATCH", "HTTPS_STR_MATCH", "TCP")
SEARCH_BYTES = 5120  # Route 53 searches the first 5,120 bytes of the body


@dataclass(frozen=True)
class HealthCheckSpec:
    id: str
    type: str
    ip: str | None
    port: int
    path: str
    fqdn: str | None
    search_string: str | None
    interval: int
    failure_threshold: int
    inverted: bool
    disabled: bool
    children: tuple[str, ...] = ()
    health_threshold: int = 0

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> HealthCheckSpec:
        config = data["HealthCheckConfig"]
        kind = str(config["Type"])
        return cls(
            id=str(data["Id"]),
            type=kind,
            ip=config.get("IPAddress"),
            port=int(config.get("Port") or (443 if kind.startswith("HTTPS") else 80)),
            path=str(config.get("ResourcePath") or "/"),
            fqdn=config.get("FullyQualifiedDomainName"),
            search_string=config.get("SearchString"),
            interval=int(config.get("RequestInterval") or 30),
            failure_threshold=int(config.get("FailureThreshold") or 3),
            inverted=bool(config.get("Inverted")),
            disabled=bool(config.get("Disabled")),
            children=tuple(config.get("ChildHealthChecks") or ()),
            health_threshold=int(config.get("HealthThreshold") or 0),
        )

    def target(self) -> str:
        if self.type == "CALCULATED":
            return f"calculated: >= {self.health_threshold} of {list(self.children)} healthy"
        host = self.ip or self.fqdn or "?"
        if self.type == "TCP":
            return f"tcp://{host}:{self.port}"
        scheme = "https" if self.type.startswith("HTTPS") else "http"
        return f"{scheme}://{host}:{self.port}{self.path}"


@dataclass(frozen=True)
class HealthCheckStatus:
    """The lab's view of one health check, as Route 53's checkers would report it."""

    id: str
    healthy: bool
    target: str
    interval: int
    failure_threshold: int
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    probes: int = 0
    last_observation: str | None = None
    last_probe_at: float | None = None  # wall clock
    changed_at: float | None = None
    inverted: bool = False
    raw_healthy: bool = True  # before inversion
    note: str | None = None

    @property
    def status(self) -> str:
        return "healthy" if self.healthy else "unhealthy"


def initial_status(spec: HealthCheckSpec) -> HealthCheckStatus:
    """Route 53 considers a new health check healthy (unhealthy if inverted) until it has
    enough data; a disabled one is always healthy."""
    note = None
    if spec.disabled:
        note = "disabled: always healthy"
    elif spec.type not in (*PROBED_TYPES, "CALCULATED"):
        note = f"type {spec.type} is not evaluated by the lab"
    return HealthCheckStatus(
        id=spec.id,
        healthy=spec.disabled or not spec.inverted,
        target=spec.target(),
        interval=spec.interval,
        failure_threshold=spec.failure_threshold,
        inverted=spec.inverted,
        note=note,
    )


def observe(status: HealthCheckStatus, ok: bool, observation: str, at: float) -> HealthCheckStatus:
    """The status after one probe: it flips after `failure_threshold` consecutive results
    that disagree with it (Route 53 uses the one threshold both ways)."""
    failures = 0 if ok else status.consecutive_failures + 1
    successes = status.consecutive_successes + 1 if ok else 0
    raw = status.raw_healthy
    if raw and failures >= status.failure_threshold:
        raw = False
    elif not raw and successes >= status.failure_threshold:
        raw = True
    healthy = raw != status.inverted
    return replace(
        status,
        healthy=healthy,
        raw_healthy=raw,
        consecutive_failures=failures,
        consecutive_successes=successes,
        probes=status.probes + 1,
        last_observation=observation,
        last_probe_at=at,
        changed_at=at if healthy != status.healthy else status.changed_at,
    )


def calculated(
    spec: HealthCheckSpec,
    status: HealthCheckStatus,
    children: Mapping[str, HealthCheckStatus],
    at: float,
) -> HealthCheckStatus:
    """A CALCULATED check: healthy when at least `HealthThreshold` children are healthy."""
    healthy_children = sum(1 for c in spec.children if c in children and children[c].healthy)
    raw = healthy_children >= spec.health_threshold
    healthy = raw != spec.inverted
    observation = f"{healthy_children} of {len(spec.children)} child health checks healthy"
    return replace(
        status,
        healthy=healthy,
        raw_healthy=raw,
        last_observation=observation,
        last_probe_at=at,
        changed_at=at if healthy != status.healthy else status.changed_at,
    )


# -- health checks: probing ------------------------------------------------------------------
def probe(spec: HealthCheckSpec, resolve: Callable[[str], str]) -> tuple[bool, str]:
    """One probe as a Route 53 checker makes it: (success, what was observed)."""
    try:
        host = spec.ip or resolve(spec.fqdn or "")
    except DrillError as exc:
        return False, f"Failure: could not resolve {spec.fqdn}: {exc}"
    if spec.type == "TCP":
        return _probe_tcp(host, spec.port)
    return _probe_http(spec, host)


def _probe_tcp(host: str, port: int) -> tuple[bool, str]:
    try:
        with socket.create_connection((host, port), timeout=10.0):
            return True, "Success: TCP connection established"
    except OSError as exc:
        return False, f"Failure: TCP connection to {host}:{port} failed ({exc})"


def _probe_http(spec: HealthCheckSpec, host: str) -> tuple[bool, str]:
    scheme = "https" if spec.type.startswith("HTTPS") else "http"
    url = f"{scheme}://{host}:{spec.port}{spec.path}"
    headers = {"Host": spec.fqdn} if spec.fqdn else {}
    timeout = httpx.Timeout(2.0, connect=4.0)
    try:
        with httpx.Client(verify=False, timeout=timeout, trust_env=False) as client:
            response = client.get(url, headers=headers)
    except httpx.HTTPError as exc:
        return False, f"Failure: {url}: {type(exc).__name__} {exc}".strip()
    if not 200 <= response.status_code < 400:
        return False, f"Failure: HTTP Status Code {response.status_code} from {url}"
    if spec.search_string and spec.search_string not in response.text[:SEARCH_BYTES]:
        return False, f"Failure: {spec.search_string!r} not in the first {SEARCH_BYTES} bytes"
    return True, f"Success: HTTP Status Code {response.status_code}"


@dataclass
class _Tracked:
    spec: HealthCheckSpec
    status: HealthCheckStatus
    next_due: float = 0.0  # monotonic
    in_flight: bool = False


@dataclass
class HealthCheckRunner:
    """Keeps the lab's health checks in step with Route 53's list and probes each when due,
    in a thread pool, so a slow probe never delays another check."""

    resolve: Callable[[str], str]
    workers: int = 8
    version: int = 0  # bumped on every change of a status
    _tracked: dict[str, _Tracked] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _pool: ThreadPoolExecutor | None = None

    def sync(self, specs: Sequence[HealthCheckSpec], now: float) -> None:
        with self._lock:
            wanted = {s.id: s for s in specs}
            for gone in set(self._tracked) - set(wanted):
                del self._tracked[gone]
            for spec in specs:
                tracked = self._tracked.get(spec.id)
                if tracked is None or tracked.spec != spec:  # new, or reconfigured
                    self._tracked[spec.id] = _Tracked(spec, initial_status(spec), next_due=now)
                    self.version += 1

    def tick(self, now: float) -> None:
        """Start every probe that is due and not already running; refresh calculated checks."""
        with self._lock:
            due = [t for t in self._tracked.values() if self._is_due(t, now)]
            for tracked in due:
                tracked.in_flight = True
                tracked.next_due = max(tracked.next_due + tracked.spec.interval, now)
            self._recalculate()
        for tracked in due:
            self._executor().submit(self._probe, tracked.spec)

    def _is_due(self, tracked: _Tracked, now: float) -> bool:
        spec = tracked.spec
        probed = spec.type in PROBED_TYPES and not spec.disabled
        return probed and not tracked.in_flight and now >= tracked.next_due

    def _recalculate(self) -> None:
        statuses = {i: t.status for i, t in self._tracked.items()}
        for tracked in self._tracked.values():
            if tracked.spec.type == "CALCULATED" and not tracked.spec.disabled:
                before = tracked.status.healthy
                tracked.status = calculated(tracked.spec, tracked.status, statuses, time.time())
                self.version += tracked.status.healthy != before

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="probe")
        return self._pool

    def _probe(self, spec: HealthCheckSpec) -> None:
        ok, observation = probe(spec, self.resolve)
        with self._lock:
            tracked = self._tracked.get(spec.id)
            if tracked is not None and tracked.spec == spec:
                tracked.status = observe(tracked.status, ok, observation, time.time())
                tracked.in_flight = False
                self.version += 1

    def statuses(self) -> dict[str, HealthCheckStatus]:
        with self._lock:
            return {i: t.status for i, t in self._tracked.items()}


def list_health_checks(clients: AwsClients) -> list[HealthCheckSpec]:
    with aws_errors("list Route 53 health checks", "moto"):
        pages = clients.route53().get_paginator("list_health_checks").paginate()
        return [HealthCheckSpec.from_api(h) for page in pages for h in page["HealthChecks"]]


def health_check_status(status_file: Path, check_id: str) -> HealthCheckStatus:
    """A health check's status from the evaluator's status file."""
    status = read_status(status_file)
    if status is None:
        raise LabError(
            f"the evaluator's status file {status_file} is missing or unreadable; is the "
            "evaluator running? (`drkit lab status`, component evaluator)"
        )
    checks = status.get("health_checks", {})
    if check_id not in checks:
        raise LabError(
            f"no health check {check_id!r} in {status_file} (the evaluator lists them about "
            f"once a second); known: {sorted(checks) or 'none'}"
        )
    known = {f for f in HealthCheckStatus.__dataclass_fields__}
    return HealthCheckStatus(**{k: v for k, v in checks[check_id].items() if k in known})


# -- the process -----------------------------------------------------------------------------
class Evaluator:
    """Alarms and health checks, one pass a second; probes run as they fall due."""

    def __init__(
        self,
        clients: AwsClients,
        regions: Sequence[str],
        status_file: Path,
        resolve: Callable[[str], str],
    ) -> None:
        self.clients = clients
        self.regions = list(regions)
        self.status_file = status_file
        self.health = HealthCheckRunner(resolve)
        self.alarms: dict[str, dict[str, Any]] = {}
        self.errors: list[str] = []
        self.evaluated_at: float | None = None  # wall clock of the last full pass

    def evaluate(self, now_wall: float, now_mono: float) -> None:
        errors: list[str] = []
        alarms: dict[str, dict[str, Any]] = {}
        for region in self.regions:
            try:
                for spec in describe_alarms(self.clients, region):
                    alarms[f"{region}/{spec.name}"] = self._alarm(spec, now_wall)
            except DrillError as exc:
                errors.append(str(exc))
        try:
            self.health.sync(list_health_checks(self.clients), now_mono)
        except DrillError as exc:
            errors.append(str(exc))
        self.alarms, self.errors = alarms, errors
        self.evaluated_at = now_wall

    def _alarm(self, spec: AlarmSpec, now: float) -> dict[str, Any]:
        info: dict[str, Any] = {"region": spec.region, "name": spec.name}
        if spec.unsupported:
            return {**info, "state": spec.state, "note": spec.unsupported}
        decision = evaluate_alarm(self.clients, spec, now)
        return {
            **info,
            "state": decision.state,
            "reason": decision.reason,
            "values": list(decision.values),
            "period": spec.period,
            "evaluated_at": now,
        }

    def write(self, started: float) -> None:
        checks = {i: {**asdict(s), "status": s.status} for i, s in self.health.statuses().items()}
        write_status(
            self.status_file,
            {
                "pid": os.getpid(),
                "started_at": started,
                "updated_at": time.time(),
                "evaluated_at": self.evaluated_at,
                "ok": not self.errors,
                "errors": self.errors,
                "alarms": self.alarms,
                "health_checks": checks,
            },
        )


def refresh_file(status_file: Path) -> Path:
    """Touching this file asks the evaluator for a pass at its next tick (`lab reset`)."""
    return status_file.with_name(status_file.stem + ".refresh")


def run(evaluator: Evaluator, tick_s: float = 0.1, pass_s: float = 1.0) -> None:
    started = time.time()
    next_pass = 0.0
    logged: dict[str, Any] = {}
    refresh = refresh_file(evaluator.status_file)
    written, written_at = -1, 0.0
    while True:
        now = time.monotonic()
        if now >= next_pass or refresh.exists():
            refresh.unlink(missing_ok=True)
            evaluator.evaluate(time.time(), now)
            next_pass, written = now + pass_s, -1
        evaluator.health.tick(now)
        if evaluator.health.version != written or now - written_at >= 0.5:
            written, written_at = evaluator.health.version, now
            evaluator.write(started)
        logged = _log_changes(evaluator, logged)
        time.sleep(tick_s)  # the scheduler's tick: probes fall due on their own intervals


def _log_changes(evaluator: Evaluator, logged: Mapping[str, Any]) -> dict[str, Any]:
    """Print state changes and errors once, not every tick."""
    now: dict[str, Any] = {"errors": evaluator.errors}
    now |= {f"alarm {k}": a.get("state") for k, a in evaluator.alarms.items()}
    now |= {f"health check {i}": s.status for i, s in evaluator.health.statuses().items()}
    for key, value in now.items():
        if logged.get(key) != value:
            log(f"{key}: {value}")
    return now


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Evaluate the lab's alarms and health checks")
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--port-base", type=int, required=True)
    args = parser.parse_args(argv)
    from drkit.config import LabPorts
    from drkit.lab.topology import REGIONS

    ports = LabPorts(args.port_base)
    resolver = DnsResolver([("127.0.0.1", ports.dns)], timeout_s=1.0)
    evaluator = Evaluator(
        AwsClients(AwsEndpoint.lab(ports.moto, max_attempts=1)),
        REGIONS,
        args.state / "run" / STATUS_FILE,
        resolver.resolve,
    )
    log(f"evaluator: alarms in {', '.join(REGIONS)} and Route 53 health checks")
    run(evaluator)
    return 0


if __name__ == "__main__":
    sys.exit(main())
