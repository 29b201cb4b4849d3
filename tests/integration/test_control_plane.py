"""The lab's control plane on real processes: enforced security groups, DNS from Route 53,
drkit's TTL-honouring resolver, evaluated alarms and health checks, status and reset."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from drkit.clients.resolver import NameNotFound, exchange
from drkit.errors import ConfigError
from drkit.lab.control_plane import (
    PUBLIC_NAME,
    LabControlPlane,
    restore_security_groups,
    seed,
    seeded_rules,
)
from drkit.lab.database import lsn_to_int
from drkit.lab.evaluators import ALARM, INSUFFICIENT_DATA, OK
from drkit.lab.lab import Lab
from drkit.lab.process import pid_alive, wait_until
from drkit.lab.sg_reconciler import BLACKHOLED, GROUP_NAME, IngressRule
from drkit.lab.topology import ingress_address

pytestmark = pytest.mark.integration


def plane_of(lab: Lab) -> LabControlPlane:
    return LabControlPlane.of(lab)


# -- helpers: a database client in us-west-2 ------------------------------------------------
@dataclass(frozen=True)
class Attempt:
    ok: bool
    elapsed_s: float
    error: str = ""


def connect_attempt(lab: Lab, host: str, connect_timeout: int = 2) -> Attempt:
    """One connection (start-up, authentication, ReadyForQuery), bounded by connect_timeout.

    No query follows: psycopg has no client-side timeout, so a query sent just as the path
    is cut would wait for ever; the handshake alone proves the path carries data both ways.
    """
    password = json.loads((lab.state / "secrets.json").read_text())["operator"]
    started = time.monotonic()
    try:
        psycopg.connect(
            host=host,
            port=lab.settings.ports.postgres,
            user="drkit_operator",
            password=password,
            dbname="postgres",
            connect_timeout=connect_timeout,
        ).close()
    except psycopg.OperationalError as exc:
        return Attempt(False, time.monotonic() - started, str(exc))
    return Attempt(True, time.monotonic() - started)


def first_failure(lab: Lab, host: str, budget_s: float) -> tuple[Attempt, float]:
    """Connect again and again until an attempt fails; (that attempt, when it began)."""
    started = time.monotonic()
    while time.monotonic() - started < budget_s:
        began = time.monotonic() - started
        attempt = connect_attempt(lab, host)
        if not attempt.ok:
            return attempt, began
    pytest.fail(f"every connection to {host} still succeeded after {budget_s}s", pytrace=False)


def byte_lag(lab: Lab) -> int:
    db = lab.database
    current = lsn_to_int(db.east.query("SELECT pg_current_wal_lsn()::text")[0][0])
    replayed = lsn_to_int(db.west.query("SELECT pg_last_wal_replay_lsn()::text")[0][0])
    assert current is not None and replayed is not None
    return current - replayed


def write_on_primary(lab: Lab) -> None:
    with lab.database.east.connect() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS cp_probe (id text PRIMARY KEY, body text)")
        conn.execute("INSERT INTO cp_probe VALUES (%s, repeat('x', 4000))", (uuid.uuid4().hex,))


@contextmanager
def revoked(plane: LabControlPlane, region: str, rule: IngressRule) -> Iterator[None]:
    plane.revoke_ingress(region, [rule])
    try:
        yield
    finally:
        plane.authorize_ingress(region, [rule])


# -- security groups ----------------------------------------------------------------------
def test_revoking_db_ingress_blackholes_the_primary_for_us_west_2(fresh_lab: Lab) -> None:
    lab, plane = fresh_lab, plane_of(fresh_lab)
    from_west = ingress_address("us-east-1", "us-west-2")  # 127.0.1.12
    assert connect_attempt(lab, from_west).ok
    assert lab.database.receiver_status(lab.database.west) == "streaming"

    with revoked(plane, "us-east-1", plane.service_rule("db", "us-west-2")):
        attempt, began = first_failure(lab, from_west, budget_s=5.0)
        assert began < 5.0
        # a blackhole: the attempt ends on the client's own timeout, not on a refusal
        assert "timeout" in attempt.error.lower() and "refused" not in attempt.error.lower()
        assert 1.8 <= attempt.elapsed_s <= 3.5, attempt
        socket.create_connection((from_west, lab.settings.ports.postgres), timeout=1).close()
        # other paths into us-east-1 are untouched
        assert connect_attempt(lab, ingress_address("us-east-1", "public")).ok
        # replication rides the same path: it stalls and the primary runs ahead
        write_on_primary(lab)
        wait_until(
            lambda: lab.database.receiver_status(lab.database.west) != "streaming",
            15,
            "the standby's WAL receiver to stop streaming",
        )
        write_on_primary(lab)
        assert byte_lag(lab) > 0

    wait_until(lambda: connect_attempt(lab, from_west).ok, 5, "the path to heal")
    lab.database.wait_streaming(lab.database.west, budget_s=20)
    wait_until(lambda: byte_lag(lab) == 0, 10, "the standby to catch up")


def test_a_rule_with_an_unmodelled_source_is_refused(lab: Lab) -> None:
    plane = plane_of(lab)
    rule = IngressRule(
        "tcp", lab.settings.ports.postgres, lab.settings.ports.postgres, "192.0.2.0/24"
    )
    with pytest.raises(ConfigError, match=r"192\.0\.2\.0/24.*matches no modelled source"):
        plane.authorize_ingress("us-east-1", [rule])
    assert rule not in plane.ingress_rules("us-east-1")


def test_the_reconciler_reports_rules_it_cannot_enforce(lab: Lab) -> None:
    plane = plane_of(lab)
    rule = IngressRule("tcp", 22, 22, "192.0.2.0/24")
    ec2 = plane.clients.ec2("us-west-2")
    gid = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [GROUP_NAME]}])[
        "SecurityGroups"
    ][0]["GroupId"]
    # straight through boto3, as a user might: moto cannot refuse it, the lab reports it
    ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[rule.to_permission()])  # type: ignore[list-item]
    try:

        def reported() -> bool:
            status = plane.reconciler_status() or {}
            return any(u["rule"] == rule.describe() for u in status.get("unenforceable", []))

        wait_until(reported, 3, "the reconciler to report the unenforceable rule")
    finally:
        plane.revoke_ingress("us-west-2", [rule])


def test_status_shows_groups_enforcement_dns_and_evaluations(
    fresh_lab: Lab, run_cli: Callable[..., Any]
) -> None:
    plane = plane_of(fresh_lab)
    rule = plane.service_rule("api", "public")
    with revoked(plane, "us-west-2", rule):
        plane.wait_enforced("us-west-2", "api", "public", BLACKHOLED)
        result = run_cli("lab", "status", "--json")
        status = {c["component"]: c for c in json.loads(result.stdout)["components"]}
    moto, reconciler = status["moto"], status["sg-reconciler"]
    assert rule.describe() not in moto["security_groups"]["us-west-2"]["ingress"]
    assert rule.describe() in moto["security_groups"]["us-east-1"]["ingress"]
    assert reconciler["enforcement"]["us-west-2.api.from-public"] == BLACKHOLED
    assert reconciler["enforcement"]["us-east-1.api.from-public"] == "allowed"
    assert reconciler["last_pass_age_s"] < 2
    ttl = fresh_lab.settings.profile.dns_ttl_s
    assert status["lab-dns"]["answers"][PUBLIC_NAME] == [
        {"address": "127.0.1.20", "ttl": ttl, "region": "us-east-1"}
    ]
    assert moto["public_record"]["address"] == "127.0.1.20"
    assert {"alarms", "health_checks"} <= set(status["evaluator"])


# -- DNS and the resolver ---------------------------------------------------------------------
def test_dns_answers_the_record_with_its_ttl_and_follows_an_upsert(fresh_lab: Lab) -> None:
    plane = plane_of(fresh_lab)
    server = plane.dns_server()
    reply = exchange(server, PUBLIC_NAME, 1.0)
    ttl = fresh_lab.settings.profile.dns_ttl_s
    assert [(str(rr.rdata), rr.ttl) for rr in reply.rr] == [("127.0.1.20", ttl)]
    try:
        plane.point_public_name("us-west-2", ttl=30)
        reply = exchange(server, PUBLIC_NAME, 1.0)  # the very next query: no cache in between
        assert [(str(rr.rdata), rr.ttl) for rr in reply.rr] == [("127.0.2.20", 30)]
    finally:
        plane.point_public_name("us-east-1")
    with pytest.raises(NameNotFound):
        plane.resolver().resolve("nope.lab.drkit.test")


def test_the_resolver_keeps_the_old_answer_for_its_ttl(fresh_lab: Lab) -> None:
    plane = plane_of(fresh_lab)
    try:
        plane.point_public_name("us-east-1", ttl=5)
        resolver = plane.resolver()
        first = resolver.resolve_with_ttl(PUBLIC_NAME)
        assert (first.address, first.ttl) == ("127.0.1.20", 5)
        plane.point_public_name("us-west-2", ttl=5)
        seen: list[tuple[float, str]] = []

        def switched() -> bool:
            seen.append((time.monotonic(), resolver.resolve(PUBLIC_NAME)))
            return seen[-1][1] == "127.0.2.20"

        wait_until(switched, 8, "the resolver to take the new answer", interval_s=0.05)
        switch_at = seen[-1][0] - first.resolved_at
        assert 4.9 <= switch_at <= 5.5, seen
        assert {address for _, address in seen[:-1]} == {"127.0.1.20"}
    finally:
        plane.point_public_name("us-east-1")


# -- alarms and health checks ------------------------------------------------------------------
class MetricFeeder:
    """Puts the current `level` into a metric every half second, until stopped."""

    def __init__(self, plane: LabControlPlane, namespace: str) -> None:
        self.cloudwatch = plane.clients.cloudwatch("us-east-1")
        self.namespace = namespace
        self.level = 10.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.put()

    def put(self) -> None:
        self.cloudwatch.put_metric_data(
            Namespace=self.namespace,
            MetricData=[{"MetricName": "LagSeconds", "Value": self.level, "Unit": "Seconds"}],
        )

    def __enter__(self) -> MetricFeeder:
        self.put()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.mark.slow
def test_an_alarm_goes_to_alarm_over_its_periods_and_back_to_ok(fresh_lab: Lab) -> None:
    plane = plane_of(fresh_lab)
    cloudwatch = plane.clients.cloudwatch("us-east-1")
    name, namespace = f"lag-{uuid.uuid4().hex[:8]}", f"drkit/test/{uuid.uuid4().hex[:8]}"
    cloudwatch.put_metric_alarm(
        AlarmName=name,
        Namespace=namespace,
        MetricName="LagSeconds",
        Statistic="Maximum",
        Period=10,
        EvaluationPeriods=2,
        Threshold=5.0,
        ComparisonOperator="GreaterThanThreshold",
    )
    try:
        wait_until(lambda: plane.alarm_state(name) == INSUFFICIENT_DATA, 3, "a first evaluation")
        with MetricFeeder(plane, namespace) as feeder:
            high_from = time.time()
            wait_until(lambda: plane.alarm_state(name) == ALARM, 35, f"{name} to go to ALARM")
            # two complete 10 s periods must breach: the one holding the first datum and the next
            earliest = (int(high_from) // 10) * 10 + 20
            assert time.time() >= earliest
            described = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
            assert "2 out of the last 2 datapoints" in described["StateReason"]
            feeder.level = 1.0
            wait_until(lambda: plane.alarm_state(name) == OK, 35, f"{name} to go back to OK")
    finally:
        cloudwatch.delete_alarms(AlarmNames=[name])


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_a_health_check_turns_unhealthy_after_its_threshold_not_before(fresh_lab: Lab) -> None:
    plane = plane_of(fresh_lab)
    route53 = plane.clients.route53()

    def create(config: dict[str, Any]) -> str:
        base = {"RequestInterval": 10, "FailureThreshold": 2}
        check = route53.create_health_check(
            CallerReference=uuid.uuid4().hex,
            HealthCheckConfig={**base, **config},  # type: ignore[typeddict-item]
        )
        return check["HealthCheck"]["Id"]

    stopped = create(
        {"Type": "HTTP", "IPAddress": "127.0.0.1", "Port": closed_port(), "ResourcePath": "/health"}
    )
    live = create(
        {"Type": "TCP", "IPAddress": "127.0.1.20", "Port": fresh_lab.settings.ports.postgres}
    )
    try:
        seen = []

        def flipped() -> bool:
            try:
                status = plane.health_check_status(stopped)
            except Exception:  # not listed by the evaluator yet
                return False
            seen.append((time.monotonic(), status))
            return not status.healthy

        wait_until(flipped, 30, "the stopped endpoint's check to turn unhealthy", interval_s=0.1)
        first_probe = next(t for t, s in seen if s.probes >= 1)
        flip_at, final = seen[-1]
        assert all(s.healthy for _, s in seen if s.probes < 2)  # not before the threshold
        assert (final.probes, final.consecutive_failures) == (2, 2)
        assert 9.0 <= flip_at - first_probe <= 12.0  # the second probe, one interval later
        assert "Failure" in (final.last_observation or "")
        live_status = plane.health_check_status(live)
        assert live_status.healthy and live_status.probes >= 2
    finally:
        for check_id in (stopped, live):
            route53.delete_health_check(HealthCheckId=check_id)


# -- seeding and reset -----------------------------------------------------------------------
def test_seeding_twice_changes_nothing(lab: Lab) -> None:
    plane = plane_of(lab)
    assert seed(plane.clients, lab.settings, plane.service_ports()) == []


def test_reset_restores_rules_record_and_removes_drill_alarms_and_checks(lab: Lab) -> None:
    plane = plane_of(lab)
    plane.revoke_service("us-west-2", "index", ["public"])
    plane.authorize_ingress("us-east-1", [IngressRule("tcp", 22, 22, "10.0.0.0/8")])
    plane.point_public_name("us-west-2", ttl=30)
    plane.clients.cloudwatch("us-west-2").put_metric_alarm(
        AlarmName="drill-alarm",
        Namespace="drkit/test",
        MetricName="m",
        Statistic="Average",
        Period=10,
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanThreshold",
    )
    plane.clients.route53().create_health_check(
        CallerReference=uuid.uuid4().hex,
        HealthCheckConfig={"Type": "TCP", "IPAddress": "127.0.1.20", "Port": 1},
    )
    plane.wait_enforced("us-west-2", "index", "public", BLACKHOLED)

    lab.reset()

    expected = seeded_rules(plane.service_ports())
    for region in ("us-east-1", "us-west-2"):
        assert sorted(plane.ingress_rules(region), key=repr) == sorted(expected, key=repr)
    record = plane.public_record()
    assert (record.address, record.ttl) == ("127.0.1.20", lab.settings.profile.dns_ttl_s)
    for region in ("us-east-1", "us-west-2"):
        assert plane.clients.cloudwatch(region).describe_alarms()["MetricAlarms"] == []
    assert plane.clients.route53().list_health_checks()["HealthChecks"] == []
    enforcement = (plane.reconciler_status() or {})["proxies"]
    assert {p["state"] for p in enforcement.values()} == {"allowed"}
    assert plane.enforcement("us-west-2", "index", "public") == "allowed"


def test_restoring_security_groups_reopens_the_replication_link(fresh_lab: Lab) -> None:
    plane = plane_of(fresh_lab)
    rule = plane.service_rule("db", "us-west-2")
    plane.revoke_ingress("us-east-1", [rule])
    plane.wait_enforced("us-east-1", "db", "us-west-2", BLACKHOLED)
    assert restore_security_groups(fresh_lab) == [f"authorized {rule.describe()}"]
    assert plane.enforcement("us-east-1", "db", "us-west-2") == "allowed"
    fresh_lab.database.wait_streaming(fresh_lab.database.west, budget_s=20)


def test_a_restarted_moto_is_seeded_again_by_up(lab: Lab) -> None:
    moto = next(c for c in lab.services() if c.name == "moto")
    pid = moto.status()["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(pid), 5, "moto to die")
    lab.up()
    plane = plane_of(lab)
    assert moto.status()["pid"] not in (None, pid)
    assert plane.public_record().address == "127.0.1.20"
    assert len(plane.ingress_rules("us-east-1")) == 9
    wait_until(
        lambda: (plane.reconciler_status() or {}).get("ok") is True,
        3,
        "the reconciler to read the new moto",
    )
    reply = exchange(plane.dns_server(), PUBLIC_NAME, 1.0)  # the DNS server finds the new zone
    assert [str(rr.rdata) for rr in reply.rr] == ["127.0.1.20"]
