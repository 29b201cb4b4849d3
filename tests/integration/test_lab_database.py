"""The lab's database tier on real processes: replication, link faults, reset, idempotence."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from collections.abc import Callable

import psycopg
import pytest
import toxiproxy  # the toxiproxy-python package users may already script with

from drkit.clients.toxiproxy import Toxic
from drkit.lab.database import lsn_to_int
from drkit.lab.lab import Lab
from drkit.lab.process import pid_alive, wait_until
from drkit.lab.topology import replication_link

pytestmark = pytest.mark.integration

LINK_BLACKHOLE = (
    Toxic("blackhole-down", "timeout", "downstream", 1.0, {"timeout": 0}),
    Toxic("blackhole-up", "timeout", "upstream", 1.0, {"timeout": 0}),
)


def link_name(lab: Lab) -> str:
    return replication_link("us-east-1", "us-west-2", lab.settings.ports.postgres).name


def byte_lag(lab: Lab) -> int:
    db = lab.database
    current = lsn_to_int(db.east.query("SELECT pg_current_wal_lsn()::text")[0][0])
    replayed = lsn_to_int(db.west.query("SELECT pg_last_wal_replay_lsn()::text")[0][0])
    assert current is not None and replayed is not None
    return current - replayed


def write_rows(lab: Lab, n: int, table: str = "lab_probe") -> list[str]:
    ids = [uuid.uuid4().hex for _ in range(n)]
    with lab.database.east.connect() as conn:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {table} (id text PRIMARY KEY, body text)")
        for row_id in ids:
            conn.execute(f"INSERT INTO {table} VALUES (%s, repeat('x', 2000))", (row_id,))
    return ids


def on_standby(lab: Lab, row_id: str, table: str = "lab_probe") -> bool:
    try:
        rows = lab.database.west.query(f"SELECT 1 FROM {table} WHERE id = %s", (row_id,))
    except psycopg.errors.UndefinedTable:
        return False
    return bool(rows)


def test_a_row_committed_on_the_primary_appears_on_the_standby(fresh_lab: Lab) -> None:
    [row_id] = write_rows(fresh_lab, 1)
    waited = wait_until(lambda: on_standby(fresh_lab, row_id), 10, "the row on us-west-2")
    assert waited < 10
    assert fresh_lab.database.west.in_recovery()


def test_the_standby_replicates_through_the_link_proxy(fresh_lab: Lab) -> None:
    link = replication_link("us-east-1", "us-west-2", fresh_lab.settings.ports.postgres)
    sender = fresh_lab.database.west.query(
        "SELECT sender_host, sender_port FROM pg_stat_wal_receiver"
    )
    assert f"{sender[0][0]}:{sender[0][1]}" == link.listen


def test_a_blackholed_link_stops_replication_and_healing_catches_up(fresh_lab: Lab) -> None:
    client = fresh_lab.toxiproxy.client()
    name = link_name(fresh_lab)
    for toxic in LINK_BLACKHOLE:
        client.add_toxic(name, toxic)
    try:
        first = write_rows(fresh_lab, 20)
        lag_early = byte_lag(fresh_lab)
        write_rows(fresh_lab, 200)
        lag_late = byte_lag(fresh_lab)
        assert lag_early > 0, "the standby replayed writes through a blackholed link"
        assert lag_late > lag_early, f"byte lag did not grow: {lag_early} then {lag_late}"
        assert not on_standby(fresh_lab, first[-1])
    finally:
        for toxic in LINK_BLACKHOLE:
            client.remove_toxic(name, toxic.name)
    wait_until(lambda: byte_lag(fresh_lab) == 0, 20, "us-west-2 to catch up after the heal")
    assert on_standby(fresh_lab, first[-1])


def test_a_disabled_link_is_seen_by_the_standby_as_a_disconnect(fresh_lab: Lab) -> None:
    client = fresh_lab.toxiproxy.client()
    name = link_name(fresh_lab)
    client.set_enabled(name, False)
    try:
        wait_until(
            lambda: fresh_lab.database.receiver_status(fresh_lab.database.west) != "streaming",
            10,
            "us-west-2's WAL receiver to notice the link is down",
        )
        repl = fresh_lab.database.status()["replication"]
        assert repl["state"] in ("disconnected", "starting", "waiting", "stopping")
    finally:
        client.set_enabled(name, True)
    fresh_lab.database.wait_streaming(fresh_lab.database.west, budget_s=15)


def test_reset_after_a_promotion_restores_the_initial_topology(fresh_lab: Lab) -> None:
    db = fresh_lab.database
    db.tools.run("pg_ctl", "-D", str(db.west.node.data_dir), "-w", "-s", "promote")
    wait_until(lambda: not db.west.in_recovery(), 10, "us-west-2 promoted")
    with db.west.connect() as conn:  # a write only the promoted node has
        conn.execute("CREATE TABLE IF NOT EXISTS only_on_west (id int)")
    fresh_lab.reset()
    roles = {r: n["role"] for r, n in db.status()["regions"].items()}
    assert roles == {"us-east-1": "primary", "us-west-2": "standby"}
    assert db.status()["replication"]["state"] == "streaming"
    [row_id] = write_rows(fresh_lab, 1)
    wait_until(lambda: on_standby(fresh_lab, row_id), 10, "replication after reset")


def test_reset_removes_toxics_and_reenables_proxies(fresh_lab: Lab) -> None:
    client = fresh_lab.toxiproxy.client()
    client.add_toxic(link_name(fresh_lab), Toxic("lat", "latency", attributes={"latency": 500}))
    client.set_enabled("us-west-2.db.from-public", False)
    fresh_lab.reset()
    dirty = [p.name for p in client.proxies().values() if p.toxics or not p.enabled]
    assert dirty == []


def test_up_twice_is_idempotent(lab: Lab) -> None:
    before = {c["component"]: c for c in lab.status()["components"]}
    lab.up()
    after = {c["component"]: c for c in lab.status()["components"]}
    assert after["toxiproxy"]["pid"] == before["toxiproxy"]["pid"]
    pids = lambda s: {r: n["pid"] for r, n in s["postgres"]["regions"].items()}  # noqa: E731
    assert pids(after) == pids(before)


def test_status_json_lists_each_component(
    lab: Lab, run_cli: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    result = run_cli("lab", "status", "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    names = [c["component"] for c in status["components"]]
    assert names[:2] == ["toxiproxy", "postgres"]
    repl = status["components"][1]["replication"]
    assert {"state", "byte_lag", "slot", "link"} <= set(repl)
    assert repl["slot"]["name"] == "standby_us_west_2"
    for node in status["components"][1]["regions"].values():
        assert {"pid", "address", "health", "timeline"} <= set(node)
    assert lab.database.passwords.operator not in result.stdout


def test_toxiproxy_python_works_against_the_lab_server(fresh_lab: Lab) -> None:
    server = toxiproxy.Toxiproxy()
    server.update_api_consumer("127.0.0.1", fresh_lab.settings.ports.toxiproxy_api)
    proxy = server.get_proxy(link_name(fresh_lab))
    proxy.add_toxic(name="py-latency", type="latency", attributes={"latency": 50})
    try:
        seen = fresh_lab.toxiproxy.client().proxy(link_name(fresh_lab)).toxic("py-latency")
        assert seen is not None and seen.attributes["latency"] == 50
    finally:
        proxy.destroy_toxic("py-latency")
    assert fresh_lab.toxiproxy.client().proxy(link_name(fresh_lab)).toxic("py-latency") is None


def test_a_killed_toxiproxy_is_recovered_by_the_next_up(lab: Lab) -> None:
    old = lab.toxiproxy.pid()
    assert old is not None
    os.kill(old, signal.SIGKILL)
    wait_until(lambda: not pid_alive(old), 5, "toxiproxy to die")
    lab.up()
    assert lab.toxiproxy.pid() not in (None, old)
    assert len(lab.toxiproxy.client().proxies()) == len(lab.proxies())
    lab.database.wait_streaming(lab.database.west, budget_s=15)


def test_a_stale_postmaster_pid_is_recovered_by_the_next_up(lab: Lab) -> None:
    east = lab.database.east
    east.stop("immediate")  # a crash: postmaster.pid stays behind in real crashes
    pidfile = east.node.data_dir / "postmaster.pid"
    decoy = subprocess.Popen(["sleep", "30"])
    try:
        pidfile.write_text(f"{decoy.pid}\n{east.node.data_dir}\n")
        lab.up()
        assert east.pid() not in (None, decoy.pid)
        assert not east.in_recovery()
    finally:
        decoy.kill()
        decoy.wait()
    lab.database.wait_streaming(lab.database.west, budget_s=20)
