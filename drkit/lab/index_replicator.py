"""A region's index replicator: while its database is a standby, it copies the vectors of the
documents its database has replayed into its own region's index.

    python -m drkit.lab.index_replicator --region us-west-2 --db-host 127.0.2.12 \\
        --db-port 25432 --db-name ragdb --db-user rag_app --secrets .drkit/secrets.json \\
        --index-host http://127.0.2.12:25481 --status-file .drkit/run/replicator.json

Design: the database is the replication channel. The replicator never talks to the other
region; it reads its own region's database (through its own region's db proxy), so its lag is
database replication lag plus its poll interval plus the index path, and a cut replication
link or a faulted index proxy really stops it. It follows the `seq` column with a watermark;
writers hold an advisory lock from `nextval` to commit, so `seq` order is commit order and no
row is skipped. The direction follows the role: while its region is primary it is idle (the
RAG service writes that index itself) and forgets its watermark; when its region is (again) a
standby, it first reconciles the whole index with its database (ids and content hashes), then
follows from the highest `seq` seen before the reconcile. It also keeps the id of the row at
its watermark: when that row is gone or different (the database was rebuilt or rewound under
it), it reconciles again. It reports in a JSON status file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from drkit.lab.rag_service import ServiceConfig, bounded, describe, read_password
from drkit.lab.sut import (
    DOCUMENT_SELECT,
    StoredDocument,
    async_index,
    reconcile,
    upsert_documents,
)

if TYPE_CHECKING:
    from pinecone.async_client.async_index import AsyncIndex

log = logging.getLogger("drkit.lab.index_replicator")

BATCH = 500
FOLLOW_BUDGET_S = 5.0
RECONCILE_BUDGET_S = 120.0
HEARTBEAT_S = 0.5
STEP_QUERY = (
    "SELECT pg_is_in_recovery(), (SELECT max(seq) FROM documents), "
    "(SELECT id FROM documents WHERE seq = %s)"
)
NEWEST_ROW = "SELECT seq, id FROM documents ORDER BY seq DESC LIMIT 1"


@dataclass
class Report:
    """What the status file says; `pid` lets the lab tell this process's report from a stale one."""

    region: str
    pid: int = field(default_factory=os.getpid)
    state: str = "starting"  # starting | reconciling | following | idle-primary | error
    role: str = "unknown"
    watermark: int | None = None
    watermark_id: str | None = None  # the id of the row at `watermark`, to notice a rebuild
    database_max_seq: int | None = None
    applied: int = 0
    passes: int = 0
    last_applied_at: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    last_reconcile: dict[str, Any] | None = None
    started_at: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        body = dict(self.__dict__)
        body["heartbeat_at"] = time.time()
        body["behind"] = (
            None
            if self.watermark is None or self.database_max_seq is None
            else max(0, self.database_max_seq - self.watermark)
        )
        return body


class Replicator:
    def __init__(self, config: ServiceConfig, index: AsyncIndex, interval_s: float) -> None:
        self.config = config
        self.index = index
        self.interval_s = interval_s
        self.conn: psycopg.AsyncConnection[Any] | None = None
        self.report = Report(config.region)

    async def connection(self) -> psycopg.AsyncConnection[Any]:
        if self.conn is None or self.conn.closed:
            self.conn = await psycopg.AsyncConnection.connect(
                self.config.conninfo(), password=self.config.password, autocommit=True
            )
        return self.conn

    async def drop_connection(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                await self.conn.close()
        self.conn = None

    async def step(self) -> bool:
        """One pass; True when there is more to copy right away."""
        conn = await self.connection()
        row = await (await conn.execute(STEP_QUERY, (self.report.watermark or 0,))).fetchone()
        assert row is not None
        standby, max_seq, id_at_watermark = bool(row[0]), row[1], row[2]
        self.report.role = "standby" if standby else "primary"
        self.report.database_max_seq = max_seq
        if not standby:
            self.report.state, self.report.watermark = "idle-primary", None
            return False
        if self.report.watermark is not None and id_at_watermark != self.report.watermark_id:
            log.warning(
                "%s: the row at seq %s is no longer %r (the database was rebuilt or rewound); "
                "reconciling the index before following again",
                *(self.config.region, self.report.watermark, self.report.watermark_id),
            )
            self.report.watermark = None
        if self.report.watermark is None:
            await self.reconcile(conn)
            return True
        return await self.follow(conn, max_seq or 0)

    async def reconcile(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Reconcile the whole index, then follow from the newest row seen before it."""
        self.report.state = "reconciling"
        newest = await (await conn.execute(NEWEST_ROW)).fetchone()
        result = await reconcile(conn, self.index, self.config.region)
        self.report.last_reconcile = result.to_json()
        # rows above the floor are copied again: upserts are idempotent
        self.report.watermark, self.report.watermark_id = newest or (0, None)
        log.info("%s: reconciled the index: %s", self.config.region, result)

    async def follow(self, conn: psycopg.AsyncConnection[Any], max_seq: int) -> bool:
        self.report.state = "following"
        watermark = self.report.watermark or 0
        if max_seq <= watermark:
            return False
        cur = await conn.execute(
            DOCUMENT_SELECT + " WHERE seq > %s ORDER BY seq LIMIT %s", (watermark, BATCH)
        )
        rows = [StoredDocument.from_row(r) for r in await cur.fetchall()]
        if rows:
            await upsert_documents(self.index, rows)
            self.report.watermark = rows[-1].seq
            self.report.watermark_id = rows[-1].document.id
            self.report.applied += len(rows)
            self.report.last_applied_at = time.time()
        return len(rows) == BATCH

    async def run(self) -> None:
        while True:
            budget = RECONCILE_BUDGET_S if self.report.watermark is None else FOLLOW_BUDGET_S
            more = False
            try:
                more = await bounded(self.step(), budget)
                self.report.last_error = None
            except Exception as exc:  # report, reconnect, keep going: faults are expected
                await self.note_error(exc)
            self.report.passes += 1
            if not more:
                await asyncio.sleep(self.interval_s)

    async def note_error(self, exc: Exception) -> None:
        message = describe(exc)
        if message != self.report.last_error:
            log.warning("%s: %s", self.config.region, message)
        self.report.state, self.report.last_error = "error", message
        self.report.last_error_at = time.time()
        await self.drop_connection()


def write_status(path: Path, report: Report) -> None:
    """Replace the status file atomically, so a reader never sees half of it."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(report.to_json(), indent=2))
    os.replace(tmp, path)


async def heartbeat(path: Path, report: Report) -> None:
    while True:
        write_status(path, report)
        await asyncio.sleep(HEARTBEAT_S)


async def serve(config: ServiceConfig, status_file: Path, interval_s: float) -> None:
    index = async_index(config.index_host, config.index_timeout_s)
    replicator = Replicator(config, index, interval_s)
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, main.cancel)
    beat = asyncio.create_task(heartbeat(status_file, replicator.report))
    try:
        await replicator.run()
    except asyncio.CancelledError:
        log.info("%s: stopping", config.region)
    finally:
        beat.cancel()
        await replicator.drop_connection()
        await index.close()
        status_file.unlink(missing_ok=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m drkit.lab.index_replicator", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--region", required=True)
    parser.add_argument("--db-host", required=True, help="this region's database (a proxy)")
    parser.add_argument("--db-port", type=int, required=True)
    parser.add_argument("--db-name", default="ragdb")
    parser.add_argument("--db-user", default="rag_app")
    parser.add_argument("--secrets", type=Path, help="JSON file with the `app` password")
    parser.add_argument("--index-host", required=True, help="this region's index (a proxy)")
    parser.add_argument("--status-file", type=Path, required=True)
    parser.add_argument("--interval", type=float, default=0.1, help="poll interval, seconds")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s index-replicator %(message)s"
    )
    for chatty in ("httpx", "pinecone", "psycopg"):  # one line per request otherwise
        logging.getLogger(chatty).setLevel(logging.WARNING)
    config = ServiceConfig(
        region=args.region,
        db_host=args.db_host,
        db_port=args.db_port,
        db_name=args.db_name,
        db_user=args.db_user,
        index_host=args.index_host,
        password=read_password(args.secrets),
    )
    log.info(
        "%s: following %s@%s:%d/%s into %s",
        *(config.region, config.db_user, config.db_host, config.db_port, config.db_name),
        config.index_host,
    )
    asyncio.run(serve(config, args.status_file, args.interval))
    return 0


if __name__ == "__main__":
    sys.exit(main())
