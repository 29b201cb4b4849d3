"""The lab's PostgreSQL clusters: real `initdb`, `pg_ctl`, `pg_basebackup` and `pg_promote`.

As root, every PostgreSQL program runs as the unprivileged `postgres` user (PostgreSQL refuses
root) on data directories that user owns, with an explicit socket directory. Admin connections
go over that socket with trust auth; TCP connections need a password (scram-sha-256).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from drkit.config import TimingProfile
from drkit.errors import LabError, MissingBinary
from drkit.lab.process import children_of, cmdline, pid_alive, wait_until

SUPERUSER = "postgres"
REPLICATION_USER = "replicator"
OPERATOR_USER = "drkit_operator"
APP_USER = "rag_app"
PG_TOOLS = ("initdb", "pg_ctl", "pg_basebackup", "pg_rewind")


def find_pg_bindir() -> Path:
    """Locate PostgreSQL's server binaries: DRKIT_PG_BINDIR alone when set, else Debian's
    layout, then pg_config."""
    override = os.environ.get("DRKIT_PG_BINDIR")
    if override:
        candidates = [override]
    else:
        candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
        pg_config = shutil.which("pg_config")
        if pg_config:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=False
            )
            candidates.append(out.stdout.strip())
    for candidate in candidates:
        if candidate and all((Path(candidate) / t).is_file() for t in PG_TOOLS):
            return Path(candidate)
    where = f"DRKIT_PG_BINDIR={override}" if override else "/usr/lib/postgresql/*/bin and pg_config"
    raise MissingBinary(
        f"PostgreSQL server binaries ({', '.join(PG_TOOLS)}) were not found in {where}; run "
        "`make setup` (as root it installs Debian's postgresql-15), or set DRKIT_PG_BINDIR to "
        "the folder that holds them"
    )


def service_user() -> str | None:
    """The OS user PostgreSQL runs as: `postgres` when we are root, else ourselves (None)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise LabError(
            "running as root, but there is no `postgres` user to run PostgreSQL as; create one "
            "(useradd --system postgres) or run drkit as an unprivileged user"
        ) from None
    return "postgres"


@dataclass(frozen=True)
class PgNode:
    """One region's cluster: where it listens and where its files are."""

    region: str
    address: str
    port: int
    root: Path

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    @property
    def archive_dir(self) -> Path:
        return self.root / "archive"

    @property
    def log_file(self) -> Path:
        return self.root / "postgresql.log"

    @property
    def passfile(self) -> Path:
        return self.root / "pgpass"

    @property
    def slot_name(self) -> str:
        """The replication slot a primary keeps for this node when it is the standby."""
        return "standby_" + self.region.replace("-", "_")


@dataclass(frozen=True)
class Passwords:
    replication: str
    operator: str
    app: str


class PgTools:
    """Runs PostgreSQL programs as the service user."""

    def __init__(self, bindir: Path, user: str | None) -> None:
        self.bindir = bindir
        self.user = user

    def run(
        self, tool: str, *args: str, env: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / tool), *args]
        full_env = {**os.environ, **(env or {})}
        kwargs: dict[str, Any] = {}
        if self.user:
            kwargs = {"user": self.user, "group": self.user, "extra_groups": []}
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=full_env,
            cwd="/",
            timeout=timeout,
            check=False,
            **kwargs,
        )
        if result.returncode != 0:
            raise LabError(
                f"{tool} failed (exit {result.returncode}): "
                f"{(result.stderr or result.stdout).strip()[-800:]}"
            )
        return result

    def own(self, *paths: Path) -> None:
        """Give the service user a folder tree (no-op when not root)."""
        if not self.user:
            return
        entry = pwd.getpwnam(self.user)
        for path in paths:
            os.chown(path, entry.pw_uid, entry.pw_gid)
            for sub, dirs, files in os.walk(path):
                for name in dirs + files:
                    os.chown(
                        os.path.join(sub, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False
                    )

    def can_traverse(self, path: Path) -> bool:
        """Whether the service user can reach `path` (every parent executable for it)."""
        if not self.user:
            return True
        result = subprocess.run(
            ["test", "-x", str(path)],
            user=self.user,
            group=self.user,
            extra_groups=[],
            cwd="/",
            check=False,
        )
        return result.returncode == 0


def common_settings(profile: TimingProfile, slot_keep_mb: int) -> str:
    """Settings every lab cluster shares: rewindable, archived, slot-bounded, profile timeouts."""
    return f"""
# --- drkit lab settings ---
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
wal_log_hints = on
hot_standby = on
hot_standby_feedback = on
track_commit_timestamp = on
archive_mode = on
max_slot_wal_keep_size = '{slot_keep_mb}MB'
# kept in pg_wal for pg_rewind, which reads back to the last checkpoint before a fork
wal_keep_size = '128MB'
max_wal_size = '64MB'
min_wal_size = '8MB'
wal_sender_timeout = '{int(profile.wal_sender_timeout_s * 1000)}ms'
wal_receiver_timeout = '{int(profile.wal_receiver_timeout_s * 1000)}ms'
wal_receiver_status_interval = '1s'
wal_retrieve_retry_interval = '500ms'
shared_buffers = '32MB'
max_connections = 100
log_line_prefix = '%m [%p] '
include_if_exists = 'drkit_node.conf'
"""


def node_settings(node: PgNode) -> str:
    archive = node.archive_dir
    return f"""# written by drkit for {node.region}
listen_addresses = '{node.address}'
port = {node.port}
unix_socket_directories = '{node.socket_dir}'
cluster_name = '{node.region}'
archive_command = 'test ! -f {archive}/%f && cp %p {archive}/%f'
"""


HBA = """
# --- drkit lab access ---
host    replication     {repl}      127.0.0.0/8     scram-sha-256
host    all             all         127.0.0.0/8     scram-sha-256
"""


class PgCluster:
    """Lifecycle and admin access for one node."""

    def __init__(self, node: PgNode, tools: PgTools) -> None:
        self.node = node
        self.tools = tools

    # -- files ---------------------------------------------------------------------------
    def exists(self) -> bool:
        return (self.node.data_dir / "PG_VERSION").is_file()

    def prepare_dirs(self) -> None:
        for path in (self.node.root, self.node.socket_dir, self.node.archive_dir):
            path.mkdir(parents=True, exist_ok=True)
        os.chmod(self.node.root, 0o700)
        self.tools.own(self.node.root)

    def write_node_settings(self) -> None:
        conf = self.node.data_dir / "drkit_node.conf"
        conf.write_text(node_settings(self.node))
        self.tools.own(conf)

    def write_passfile(self, passwords: Passwords) -> None:
        self.node.passfile.write_text(f"*:*:*:{REPLICATION_USER}:{passwords.replication}\n")
        os.chmod(self.node.passfile, 0o600)
        self.tools.own(self.node.passfile)

    def initdb(self, profile: TimingProfile, slot_keep_mb: int, passwords: Passwords) -> None:
        self.prepare_dirs()
        self.tools.run(
            "initdb",
            "-D",
            str(self.node.data_dir),
            "-U",
            SUPERUSER,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--data-checksums",
            "--encoding=UTF8",
            "--locale=C",
            "--wal-segsize=1",
            "--no-sync",
        )
        with open(self.node.data_dir / "postgresql.conf", "a") as conf:
            conf.write(common_settings(profile, slot_keep_mb))
        with open(self.node.data_dir / "pg_hba.conf", "a") as hba:
            hba.write(HBA.format(repl=REPLICATION_USER))
        self.write_node_settings()
        self.write_passfile(passwords)

    def remove_data(self) -> None:
        shutil.rmtree(self.node.data_dir, ignore_errors=True)

    # -- processes -----------------------------------------------------------------------
    def pid(self) -> int | None:
        """The postmaster's pid when it runs; a stale postmaster.pid is removed."""
        pidfile = self.node.data_dir / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None
        if pid_alive(pid) and "postgres" in cmdline(pid):
            return pid
        pidfile.unlink(missing_ok=True)
        return None

    def start(self) -> None:
        if self.pid() is not None:
            return
        self.prepare_dirs()
        self.tools.run(
            "pg_ctl",
            "-D",
            str(self.node.data_dir),
            "-l",
            str(self.node.log_file),
            "-w",
            "-t",
            "30",
            "-s",
            "start",
        )

    def crash(self) -> None:
        """A crash: SIGKILL to the postmaster and every child at once (no shutdown at all).
        The next start runs crash recovery."""
        pid = self.pid()
        if pid is None:
            return
        victims = [pid, *children_of(pid)]
        for victim in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        wait_until(
            lambda: not any(pid_alive(v) for v in victims),
            10,
            f"{self.node.region}'s PostgreSQL processes to die",
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the cluster; `immediate` is a crash (no shutdown checkpoint)."""
        if self.pid() is None:
            return
        self.tools.run(
            "pg_ctl", "-D", str(self.node.data_dir), "-m", mode, "-w", "-t", "30", "-s", "stop"
        )

    # -- SQL -----------------------------------------------------------------------------
    def connect(self, dbname: str = "postgres", timeout: int = 3) -> psycopg.Connection[Any]:
        return psycopg.connect(
            host=str(self.node.socket_dir),
            port=self.node.port,
            user=SUPERUSER,
            dbname=dbname,
            connect_timeout=timeout,
            autocommit=True,
        )

    def query(
        self, sql: str, params: tuple[Any, ...] = (), dbname: str = "postgres"
    ) -> list[tuple[Any, ...]]:
        with self.connect(dbname) as conn:
            return conn.execute(sql, params).fetchall()

    def is_ready(self) -> bool:
        try:
            self.query("SELECT 1")
        except psycopg.Error:
            return False
        return True

    def in_recovery(self) -> bool:
        return bool(self.query("SELECT pg_is_in_recovery()")[0][0])
