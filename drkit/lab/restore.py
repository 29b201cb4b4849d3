"""Point-in-time restore on the lab: a base backup of a region's cluster, then a scratch
cluster recovered from it and the region's WAL archive to a target time, promoted, read, and
removed. The scratch cluster listens on a free loopback port beside the lab's clusters.
"""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

import psycopg

from drkit.lab.lab import Lab
from drkit.lab.postgres import SUPERUSER, PgCluster, PgNode
from drkit.lab.process import wait_until

SCRATCH_ADDRESS = "127.0.0.1"


def free_port(address: str = SCRATCH_ADDRESS) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


class PointInTimeRestore:
    """One restore: `base_backup()` before the damage, `restore(target)` after it."""

    def __init__(self, lab: Lab, region: str, name: str) -> None:
        self.lab = lab
        self.source = lab.database.clusters[region]
        root = self.source.node.root.parent / f"restore-{name}"
        self.cluster = PgCluster(
            PgNode(f"restore-{region}", SCRATCH_ADDRESS, free_port(), root), self.source.tools
        )

    @property
    def root(self) -> Path:
        return self.cluster.node.root

    def base_backup(self) -> float:
        """A base backup of the source into the scratch data directory; seconds it took."""
        self.remove()
        self.cluster.prepare_dirs()
        start = time.monotonic()
        node = self.source.node
        self.cluster.tools.run(
            "pg_basebackup",
            *("-h", str(node.socket_dir), "-p", str(node.port), "-U", SUPERUSER),
            *("-D", str(self.cluster.node.data_dir), "-X", "stream", "--checkpoint=fast"),
            "--no-sync",
            timeout=300,
        )
        return time.monotonic() - start

    def archive_through_now(self) -> str:
        """Close the source's current WAL segment and wait until the archiver has it, so
        recovery can reach any moment up to now; returns the segment's name."""
        segment = self.source.query("SELECT pg_walfile_name(pg_switch_wal())")[0][0]
        wait_until(
            lambda: (self.source.node.archive_dir / segment).exists(),
            30,
            f"the archiver to store WAL segment {segment}",
            interval_s=0.05,
        )
        return str(segment)

    def restore(self, target_time: str) -> float:
        """Recover the base backup with the source's archive to just before `target_time`
        (exclusive), promote, and wait until it accepts writes; seconds it took."""
        start = time.monotonic()
        data = self.cluster.node.data_dir
        for stale in ("standby.signal", "postmaster.pid"):
            (data / stale).unlink(missing_ok=True)
        archive = self.source.node.archive_dir
        (data / "postgresql.auto.conf").write_text(
            "# written by drkit: a point-in-time restore\n"
            f"restore_command = 'cp {archive}/%f %p'\n"
            f"recovery_target_time = '{target_time}'\n"
            "recovery_target_inclusive = off\n"
            "recovery_target_action = 'promote'\n"
            "archive_mode = off\n"
        )
        (data / "recovery.signal").touch()
        self.cluster.write_node_settings()
        self.cluster.tools.own(self.root)
        self.cluster.start()
        wait_until(self._promoted, 120, "the restored cluster to promote", interval_s=0.1)
        return time.monotonic() - start

    def _promoted(self) -> bool:
        try:
            return not self.cluster.in_recovery()
        except psycopg.Error:  # still starting up
            return False

    def remove(self) -> None:
        """Stop the scratch cluster and delete its files (idempotent)."""
        if self.cluster.exists():
            self.cluster.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
