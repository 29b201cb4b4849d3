"""The lab's database tier: a us-east-1 primary streaming to a us-west-2 standby.

The standby's WAL receiver reaches the primary through the Toxiproxy proxy that stands for
the cross-region link, using a replication slot bounded by `max_slot_wal_keep_size`. The
standby has no `restore_command`: a cut longer than the slot's retention forces a rebuild.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
from psycopg import sql

from drkit.clients.postgres import lsn_to_int
from drkit.config import LabSettings
from drkit.errors import LabError
from drkit.lab.postgres import (
    APP_USER,
    OPERATOR_USER,
    REPLICATION_USER,
    SUPERUSER,
    Passwords,
    PgCluster,
    PgNode,
    PgTools,
)
from drkit.lab.process import check_port_free, wait_until
from drkit.lab.topology import REGIONS, backend_address, replication_link

HOME_PRIMARY, HOME_STANDBY = REGIONS  # the initial topology: us-east-1 -> us-west-2


def primary_conninfo(primary: PgCluster, standby: PgCluster, settings: LabSettings) -> str:
    link = replication_link(primary.node.region, standby.node.region, settings.ports.postgres)
    host, port = link.listen.rsplit(":", 1)
    p = settings.profile
    return (
        f"host={host} port={port} user={REPLICATION_USER} passfile={standby.node.passfile} "
        f"application_name={standby.node.region.replace('-', '_')} "
        f"connect_timeout={p.connect_timeout_s} keepalives=1 keepalives_idle=1 "
        f"keepalives_interval=1 keepalives_count=3 tcp_user_timeout={p.tcp_user_timeout_ms}"
    )


class DatabaseTier:
    """Start, inspect, reset and stop the two clusters."""

    name = "postgres"

    def __init__(
        self, settings: LabSettings, data_root: Any, tools: PgTools, passwords: Passwords
    ) -> None:
        self.settings = settings
        self.tools = tools
        self.passwords = passwords
        self.clusters = {
            region: PgCluster(
                PgNode(
                    region, backend_address(region), settings.ports.postgres, data_root / region
                ),
                tools,
            )
            for region in REGIONS
        }

    @property
    def east(self) -> PgCluster:
        return self.clusters[HOME_PRIMARY]

    @property
    def west(self) -> PgCluster:
        return self.clusters[HOME_STANDBY]

    # -- up ------------------------------------------------------------------------------
    def start(self) -> None:
        """Start what is not running; build what does not exist. Topology is left as found."""
        if not self.east.exists():
            self._check_free(self.east)
            self.east.initdb(
                self.settings.profile, self.settings.slot_wal_keep_size_mb, self.passwords
            )
        self._start(self.east)
        if not self.east.in_recovery():
            self.bootstrap(self.east)
        if not self.west.exists():
            self.rebuild_standby(self.east, self.west)
        self._start(self.west)
        if self.east_streams_to_west():
            self.wait_streaming(self.west, budget_s=20)

    def _check_free(self, cluster: PgCluster) -> None:
        node = cluster.node
        check_port_free(node.address, node.port, f"PostgreSQL {node.region}")

    def _start(self, cluster: PgCluster) -> None:
        if cluster.pid() is None:
            self._check_free(cluster)
            cluster.write_node_settings()
            cluster.start()

    def bootstrap(self, primary: PgCluster) -> None:
        """Roles and the application database, created once on the primary (idempotent).
        Passwords are sent as SCRAM verifiers made here, never as text: a server that logs
        statements (`log_statement = 'ddl'`, as audits ask) would log a `PASSWORD 'text'`."""
        p = self.passwords
        roles = (
            (REPLICATION_USER, "LOGIN REPLICATION", p.replication),
            (OPERATOR_USER, "LOGIN SUPERUSER", p.operator),
            (APP_USER, "LOGIN", p.app),
        )
        with primary.connect() as conn:
            for role, attrs, password in roles:
                exists = conn.execute(
                    "SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)
                ).fetchone()
                verb = "ALTER" if exists else "CREATE"
                verifier = conn.pgconn.encrypt_password(
                    password.encode(), role.encode(), b"scram-sha-256"
                ).decode()
                conn.execute(
                    sql.SQL("{} ROLE {} WITH " + attrs + " PASSWORD {}").format(
                        sql.SQL(verb), sql.Identifier(role), sql.Literal(verifier)
                    )
                )
            db = self.settings.database
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone():
                conn.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(db), sql.Identifier(APP_USER)
                    )
                )

    # -- the standby ----------------------------------------------------------------------
    def rebuild_standby(self, primary: PgCluster, standby: PgCluster) -> None:
        """Throw the standby's data away and clone it from the primary through the link."""
        standby.stop("immediate")
        standby.remove_data()
        self.drop_slot(primary, standby.node.slot_name)
        standby.prepare_dirs()
        standby.write_passfile(self.passwords)
        link = replication_link(
            primary.node.region, standby.node.region, self.settings.ports.postgres
        )
        host, port = link.listen.rsplit(":", 1)
        self.tools.run(
            "pg_basebackup",
            "-h",
            host,
            "-p",
            port,
            "-U",
            REPLICATION_USER,
            "-w",
            "-D",
            str(standby.node.data_dir),
            "-X",
            "stream",
            "-R",
            "-C",
            "-S",
            standby.node.slot_name,
            "--checkpoint=fast",
            "--no-sync",
            env={"PGPASSFILE": str(standby.node.passfile), "PGCONNECT_TIMEOUT": "5"},
        )
        self._point_at(primary, standby)

    def follow(self, primary: PgCluster, old_primary: PgCluster) -> str:
        """Make a former primary a standby of the new one: a clean stop (crash recovery first
        if it crashed), `pg_rewind` back to where the timelines forked (throwing away what only
        it had: export that first), a slot on the new primary, then streaming through the link.
        """
        old_primary.start()  # a crashed cluster must finish crash recovery before a rewind
        old_primary.stop("fast")
        source = (
            f"host={primary.node.socket_dir} port={primary.node.port} user={SUPERUSER} "
            "dbname=postgres"
        )
        # a promotion records its new timeline in pg_control only at its next checkpoint, and
        # pg_rewind reads the timeline there: without this it may see none and rewind nothing
        with primary.connect() as conn:
            conn.execute("CHECKPOINT")
        rewound = self.tools.run(
            "pg_rewind",
            "--target-pgdata",
            str(old_primary.node.data_dir),
            "--source-server",
            source,
            "--no-sync",
            timeout=120,
        )
        with primary.connect() as conn:
            slot = old_primary.node.slot_name
            if not conn.execute(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (slot,)
            ).fetchone():
                conn.execute("SELECT pg_create_physical_replication_slot(%s, true)", (slot,))
        old_primary.write_passfile(self.passwords)
        self._point_at(primary, old_primary)
        old_primary.start()
        self.wait_streaming(old_primary, budget_s=30)
        return (rewound.stderr or rewound.stdout).strip()

    def _point_at(self, primary: PgCluster, standby: PgCluster) -> None:
        auto = standby.node.data_dir / "postgresql.auto.conf"
        auto.write_text(
            "# written by drkit: this node is a standby\n"
            f"primary_conninfo = '{primary_conninfo(primary, standby, self.settings)}'\n"
            f"primary_slot_name = '{standby.node.slot_name}'\n"
        )
        (standby.node.data_dir / "standby.signal").touch()
        standby.write_node_settings()
        self.tools.own(standby.node.root)

    def drop_slot(self, primary: PgCluster, slot: str) -> None:
        with primary.connect() as conn:
            row = conn.execute(
                "SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (slot,)
            ).fetchone()
            if row is None:
                return
            if row[0] is not None:
                conn.execute("SELECT pg_terminate_backend(%s)", (row[0],))
            wait_until(
                lambda: (
                    conn.execute(
                        "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,)
                    ).fetchone()
                    in (None, (False,))
                ),
                5,
                f"slot {slot} to become inactive",
            )
            conn.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                "WHERE slot_name = %s",
                (slot,),
            )

    def wait_streaming(self, standby: PgCluster, budget_s: float) -> float:
        return wait_until(
            lambda: self.receiver_status(standby) == "streaming",
            budget_s,
            f"{standby.node.region} to stream WAL (log: {standby.node.log_file})",
            interval_s=0.05,
        )

    def receiver_status(self, standby: PgCluster) -> str | None:
        try:
            rows = standby.query("SELECT status FROM pg_stat_wal_receiver")
        except psycopg.Error:
            return None
        return rows[0][0] if rows else None

    def east_streams_to_west(self) -> bool:
        """Whether the initial topology holds: east a primary, west its standby."""
        try:
            return not self.east.in_recovery() and self.west.in_recovery()
        except psycopg.Error:
            return False

    # -- reset ---------------------------------------------------------------------------
    def reset(self) -> None:
        """Back to us-east-1 primary streaming to us-west-2, whatever happened in between."""
        if not self.east.exists():
            raise LabError(
                f"us-east-1's data directory {self.east.node.data_dir} is gone; run "
                "`drkit lab down --purge` and then `drkit lab up` to rebuild the lab"
            )
        self._start(self.east)
        if self.east.in_recovery():
            self.west.stop("immediate")
            self.tools.run("pg_ctl", "-D", str(self.east.node.data_dir), "-w", "-s", "promote")
            wait_until(lambda: not self.east.in_recovery(), 10, "us-east-1 to leave recovery")
        self.bootstrap(self.east)
        if not self._standby_is_sound():
            self.rebuild_standby(self.east, self.west)
        self._start(self.west)
        self.west.query("SELECT pg_wal_replay_resume()")
        self.wait_streaming(self.west, budget_s=15)
        self.clear_archives()

    def clear_archives(self) -> None:
        """Empty both WAL archives. Each region archives its own timelines, and drills that
        promote in turn reuse timeline numbers across resets: a segment name archived before
        the reset could collide with a different segment after it (the archiver would stall on
        it, and a rewind or restore could fetch the wrong history). What a drill needs from
        an archive (a restore, a rewind) it writes after the reset."""
        for cluster in self.clusters.values():
            archive = cluster.node.archive_dir
            if archive.is_dir():
                for entry in archive.iterdir():
                    entry.unlink(missing_ok=True)

    def _standby_is_sound(self) -> bool:
        """West exists, follows east on east's timeline, and is not a promoted primary."""
        if not self.west.exists() or not (self.west.node.data_dir / "standby.signal").exists():
            return False
        try:
            self._start(self.west)
        except LabError:  # it cannot even start (e.g. a timeline it cannot follow): rebuild
            return False
        try:
            if not self.west.in_recovery():
                return False
            east_tli = self.east.query("SELECT timeline_id FROM pg_control_checkpoint()")[0][0]
            west_tli = self.west.query("SELECT timeline_id FROM pg_control_checkpoint()")[0][0]
            slot = self.slot_state(self.east, self.west.node.slot_name)
        except psycopg.Error:
            return False
        return bool(east_tli == west_tli) and slot not in (None, "lost")  # lost: WAL is gone

    def slot_state(self, primary: PgCluster, slot: str) -> str | None:
        """The slot's `wal_status` on the primary (reserved, extended, unreserved, lost), or
        None when there is no such slot."""
        rows = primary.query(
            "SELECT wal_status FROM pg_replication_slots WHERE slot_name = %s", (slot,)
        )
        return str(rows[0][0]) if rows else None

    # -- down ----------------------------------------------------------------------------
    def stop(self) -> None:
        for cluster in (self.west, self.east):
            cluster.stop("fast")

    # -- status --------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        regions = {region: self._node_status(c) for region, c in self.clusters.items()}
        return {"component": self.name, "regions": regions, "replication": self._replication()}

    def _node_status(self, cluster: PgCluster) -> dict[str, Any]:
        node = cluster.node
        info: dict[str, Any] = {
            "pid": cluster.pid(),
            "address": f"{node.address}:{node.port}",
            "data_dir": str(node.data_dir),
            "log": str(node.log_file),
        }
        if info["pid"] is None:
            return {**info, "health": "stopped", "role": "stopped"}
        try:
            row = cluster.query(
                "SELECT pg_is_in_recovery(), (SELECT timeline_id FROM pg_control_checkpoint()), "
                "CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text "
                "ELSE pg_current_wal_lsn()::text END, "
                "CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() END"
            )[0]
        except psycopg.Error as exc:
            return {**info, "health": "unhealthy", "role": "unknown", "error": str(exc).strip()}
        recovery, timeline, lsn, paused = row
        return {
            **info,
            "health": "healthy",
            "role": "standby" if recovery else "primary",
            "timeline": timeline,
            "lsn": lsn,
            "replay_paused": paused,
        }

    def _replication(self) -> dict[str, Any]:
        """Replication from the current primary to the other node, measured by LSN."""
        primaries = [c for c in self.clusters.values() if self._role(c) == "primary"]
        standbys = [c for c in self.clusters.values() if self._role(c) == "standby"]
        if len(primaries) != 1 or not standbys:
            roles = {c.node.region: self._role(c) for c in self.clusters.values()}
            return {"state": "none", "roles": roles}
        primary, standby = primaries[0], standbys[0]
        return {
            "primary": primary.node.region,
            "standby": standby.node.region,
            "link": replication_link(
                primary.node.region, standby.node.region, self.settings.ports.postgres
            ).name,
            **self._lag(primary, standby),
            "slot": self._slot(primary, standby.node.slot_name),
        }

    def _role(self, cluster: PgCluster) -> str:
        if cluster.pid() is None:
            return "stopped"
        try:
            return "standby" if cluster.in_recovery() else "primary"
        except psycopg.Error:
            return "unknown"

    def _lag(self, primary: PgCluster, standby: PgCluster) -> dict[str, Any]:
        receiver = standby.query(
            "SELECT status, sender_host, sender_port FROM pg_stat_wal_receiver"
        )
        replay = standby.query(
            "SELECT pg_last_wal_replay_lsn()::text, pg_last_wal_receive_lsn()::text, "
            "pg_is_wal_replay_paused()"
        )[0]
        current = primary.query("SELECT pg_current_wal_lsn()::text")[0][0]
        cur, replayed = lsn_to_int(current), lsn_to_int(replay[0])
        state = receiver[0][0] if receiver else "disconnected"
        return {
            "state": "paused" if replay[2] else state,
            "sender": f"{receiver[0][1]}:{receiver[0][2]}" if receiver else None,
            "primary_lsn": current,
            "received_lsn": replay[1],
            "replayed_lsn": replay[0],
            "byte_lag": (cur - replayed) if cur is not None and replayed is not None else None,
            "measured_at": time.time(),
        }

    def _slot(self, primary: PgCluster, slot: str) -> dict[str, Any] | None:
        rows = primary.query(
            "SELECT slot_name, active, wal_status, safe_wal_size, restart_lsn::text "
            "FROM pg_replication_slots WHERE slot_name = %s",
            (slot,),
        )
        if not rows:
            return None
        name, active, wal_status, safe, restart = rows[0]
        return {
            "name": name,
            "active": active,
            "wal_status": wal_status,
            "safe_wal_size": safe,
            "restart_lsn": restart,
        }
