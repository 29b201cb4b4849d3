"""ReplicationMonitor on the real lab: each replication state gives the right figures."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from drkit.clients.toxiproxy import Toxic
from drkit.errors import ConfigError
from drkit.failover.monitor import ReplicationMonitor, ReplicationStatus
from drkit.lab.lab import Lab
from drkit.lab.process import wait_until
from drkit.lab.topology import replication_link

pytestmark = pytest.mark.integration

BLACKHOLE = (
    Toxic("bh-down", "timeout", "downstream", 1.0, {"timeout": 0}),
    Toxic("bh-up", "timeout", "upstream", 1.0, {"timeout": 0}),
)


@pytest.fixture
def monitor(fresh_lab: Lab) -> ReplicationMonitor:
    return ReplicationMonitor(fresh_lab.db_config("us-east-1"), fresh_lab.db_config("us-west-2"))


def link(lab: Lab) -> str:
    return replication_link("us-east-1", "us-west-2", lab.settings.ports.postgres).name


def checks_until(monitor: ReplicationMonitor, ok: object, budget_s: float) -> ReplicationStatus:
    holder: list[ReplicationStatus] = []

    def probe() -> bool:
        holder.append(monitor.check_replication_lag())
        return bool(ok(holder[-1]))  # type: ignore[operator]

    wait_until(probe, budget_s, "the monitor to report the expected state", interval_s=0.2)
    return holder[-1]


def test_an_idle_primary_has_no_lag_although_the_last_replay_ages(
    fresh_lab: Lab, monitor: ReplicationMonitor
) -> None:
    monitor.check_replication_lag()
    time.sleep(2.5)  # the idle period under test: the last replayed transaction ages by it
    naive = fresh_lab.database.west.query(
        "SELECT extract(epoch FROM now() - pg_last_xact_replay_timestamp())"
    )[0][0]
    status = monitor.check_replication_lag()
    assert float(naive) >= 2.0, "the naive measure should have grown while idle"
    assert status.lag_seconds == 0.0 and status.lag_bytes == 0
    assert status.state == "streaming" and status.is_connected and status.meets_rpo


@pytest.fixture
def write_load(fresh_lab: Lab) -> Iterator[None]:
    stop = threading.Event()

    def write() -> None:
        with fresh_lab.database.east.connect(fresh_lab.settings.database) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS load (id text, body text)")
            while not stop.is_set():
                conn.execute("INSERT INTO load VALUES (%s, repeat('y', 500))", (uuid.uuid4().hex,))
                time.sleep(0.005)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(5)


def test_streaming_under_load_stays_connected_with_small_lag(
    write_load: None, monitor: ReplicationMonitor
) -> None:
    samples = [monitor.check_replication_lag() for _ in range(10)]
    assert all(s.is_connected and s.state in ("streaming", "catching_up") for s in samples)
    assert max(s.lag_seconds for s in samples) < 5.0  # slack for a shared 2-core machine


def test_paused_replay_reports_paused_and_a_growing_lag(
    fresh_lab: Lab, monitor: ReplicationMonitor
) -> None:
    fresh_lab.database.west.query("SELECT pg_wal_replay_pause()")
    try:
        monitor.check_replication_lag()
        time.sleep(1.5)  # the pause under test lasts this long
        status = monitor.check_replication_lag()
        assert status.state == "paused"
        assert status.lag_seconds >= 1.0 and status.lag_bytes > 0
    finally:
        fresh_lab.database.west.query("SELECT pg_wal_replay_resume()")
    recovered = checks_until(monitor, lambda s: s.lag_seconds == 0.0, 10)
    assert recovered.state == "streaming"


def test_a_blackholed_link_disconnects_within_the_receiver_timeout_and_lag_grows(
    fresh_lab: Lab, monitor: ReplicationMonitor
) -> None:
    client = fresh_lab.toxiproxy.client()
    for toxic in BLACKHOLE:
        client.add_toxic(link(fresh_lab), toxic)
    cut = time.monotonic()
    try:
        budget = fresh_lab.settings.profile.wal_receiver_timeout_s + 2.0
        status = checks_until(monitor, lambda s: not s.is_connected, budget)
        noticed = time.monotonic() - cut
        assert status.state == "disconnected"
        time.sleep(1.0)  # lag must keep growing while the link stays cut
        later = monitor.check_replication_lag()
        assert later.lag_seconds > status.lag_seconds >= 0.0
        assert later.lag_seconds >= noticed - 1.0
        assert later.lag_bytes > 0
    finally:
        for toxic in BLACKHOLE:
            client.remove_toxic(link(fresh_lab), toxic.name)
    checks_until(monitor, lambda s: s.is_connected and s.lag_seconds == 0.0, 15)


def test_an_unreachable_dr_is_unknown_with_the_lag_proven_so_far(
    fresh_lab: Lab, monitor: ReplicationMonitor
) -> None:
    fresh_lab.database.west.query("SELECT pg_wal_replay_pause()")
    monitor.check_replication_lag()
    time.sleep(1.0)
    proven = monitor.check_replication_lag().lag_seconds
    client = fresh_lab.toxiproxy.client()
    client.set_enabled("us-west-2.db.from-public", False)
    try:
        status = monitor.check_replication_lag()
    finally:
        client.set_enabled("us-west-2.db.from-public", True)
        fresh_lab.database.west.query("SELECT pg_wal_replay_resume()")
    assert status.state == "unknown" and not status.is_connected and not status.dr_reachable
    assert status.lag_is_lower_bound and status.lag_seconds == proven > 0
    assert status.meets_rpo is False


def test_meets_rpo_is_false_past_the_objective(fresh_lab: Lab) -> None:
    strict = ReplicationMonitor(
        fresh_lab.db_config("us-east-1"),
        fresh_lab.db_config("us-west-2"),
        rpo_objective_seconds=0.5,
    )
    fresh_lab.database.west.query("SELECT pg_wal_replay_pause()")
    try:
        strict.check_replication_lag()
        time.sleep(1.0)
        status = strict.check_replication_lag()
    finally:
        fresh_lab.database.west.query("SELECT pg_wal_replay_resume()")
    assert status.lag_seconds > 0.5 and status.meets_rpo is False


def test_configs_are_used_exactly_as_given(fresh_lab: Lab) -> None:
    wrong = {**fresh_lab.db_config("us-west-2"), "password": "not-the-password"}
    monitor = ReplicationMonitor(fresh_lab.db_config("us-east-1"), wrong)
    status = monitor.check_replication_lag()
    assert status.state == "unknown" and not status.dr_reachable
    assert "not-the-password" not in repr(monitor.dr) and "not-the-password" not in str(status)
    with pytest.raises(ConfigError, match="DR database config is missing password"):
        ReplicationMonitor(
            fresh_lab.db_config("us-east-1"), {"host": "x", "port": 1, "database": "d", "user": "u"}
        )
    with pytest.raises(psycopg.OperationalError):  # the wrong password really is wrong
        psycopg.connect(
            **{k: v for k, v in wrong.items() if k != "database"},
            dbname=wrong["database"],
            connect_timeout=2,
        )


def test_the_monitor_publishes_its_figures_and_keeps_a_lag_alarm(fresh_lab: Lab) -> None:
    from drkit.lab.control_plane import LabControlPlane
    from drkit.targets.lab import LAG_ALARM, METRIC_NAMESPACE

    monitor = ReplicationMonitor(fresh_lab.db_config("us-east-1"), fresh_lab.db_config("us-west-2"))
    monitor.check_replication_lag()
    assert monitor.last_publish_error is None
    cloudwatch = LabControlPlane.of(fresh_lab).clients.cloudwatch("us-west-2")
    names = {
        m["MetricName"] for m in cloudwatch.list_metrics(Namespace=METRIC_NAMESPACE)["Metrics"]
    }
    assert names >= {
        "ReplicationLagSeconds",
        "ReplicationLagBytes",
        "ReplicationConnected",
        "DataConsistencyRatio",
    }
    [alarm] = cloudwatch.describe_alarms(AlarmNames=[LAG_ALARM])["MetricAlarms"]
    assert alarm["Threshold"] == fresh_lab.settings.profile.lag_alarm_threshold_s


@pytest.mark.slow
def test_the_lag_alarm_fires_while_replay_is_paused_and_clears_after(fresh_lab: Lab) -> None:
    from drkit.targets.lab import LabTarget

    monitor = ReplicationMonitor(fresh_lab.db_config("us-east-1"), fresh_lab.db_config("us-west-2"))
    target = LabTarget(fresh_lab)
    fresh_lab.database.west.query("SELECT pg_wal_replay_pause()")
    try:
        wait_until(
            lambda: (
                monitor.check_replication_lag() is not None
                and target.lag_alarm_state("us-west-2") == "ALARM"
            ),
            45,
            "the lag alarm to fire",
            interval_s=1.0,
        )
    finally:
        fresh_lab.database.west.query("SELECT pg_wal_replay_resume()")
    wait_until(
        lambda: (
            monitor.check_replication_lag() is not None
            and target.lag_alarm_state("us-west-2") == "OK"
        ),
        45,
        "the lag alarm to clear",
        interval_s=1.0,
    )
