"""The lab's system under test: per region an index server, a RAG service and an index
replicator, plus the documents schema, the seed load and `reconcile_index`.

Every SUT process reaches its dependencies through the Toxiproxy listener for traffic from its
own region (`ingress_address(R, R)`), so faults and security groups hit it. The lab's own
administration (schema, seed, reconcile, counts, status) goes around the proxies, through
PostgreSQL's unix socket and the index servers' backend addresses, so it sees the truth even
while a fault is injected.

Functions the engine calls (all synchronous, all on a running lab):

* `reconcile_index(lab, region)`: make a region's index equal to its own database (ids and
  content hashes); extra vectors deleted, missing or stale ones upserted. `reconcile_indexes`
  does several regions at once.
* `database_hashes(lab, region)`, `index_hashes(lab, region)`: id -> content hash.
* `document_counts(lab)`: rows and vectors per region.
* `api_url(settings, region, source)`, `index_url(settings, region, source)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import psycopg
from pinecone import Pinecone

from drkit.config import LabSettings
from drkit.errors import LabError
from drkit.lab.component import Component, PythonService
from drkit.lab.embedding import DIMENSION, embed
from drkit.lab.fence import FENCE_FILE
from drkit.lab.postgres import APP_USER, SUPERUSER, PgCluster
from drkit.lab.process import wait_until
from drkit.lab.seed import DEFAULT_RNG_SEED, Document, generate_documents, seed_count_from_env
from drkit.lab.topology import PUBLIC, REGIONS, backend_address, ingress_address

if TYPE_CHECKING:
    from pinecone.async_client.async_index import AsyncIndex

    from drkit.lab.lab import Lab

NAMESPACE = ""  # the index's default namespace
LIST_PAGE = 100  # Pinecone's largest `list` page
UPSERT_BATCH = 200
DELETE_BATCH = 1000
WRITE_LOCK_KEY = 43_700_001
"""Advisory lock every document write holds from `nextval` to commit, so that `seq` order is
commit order and a replicator's `seq > watermark` never skips a row that commits late."""

# -- schema and the SQL the service, the replicator and the lab share -----------------------

SCHEMA: tuple[str, ...] = (
    "CREATE SEQUENCE IF NOT EXISTS documents_seq",
    """CREATE TABLE IF NOT EXISTS documents (
        id            text PRIMARY KEY,
        title         text NOT NULL,
        body          text NOT NULL,
        source        text NOT NULL,
        as_of         date NOT NULL,
        doc_type      text,
        issuer        text,
        ticker        text,
        content_hash  text NOT NULL,
        seq           bigint NOT NULL DEFAULT nextval('documents_seq'),
        created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
        written_in    text NOT NULL
    )""",
    "ALTER SEQUENCE documents_seq OWNED BY documents.seq",
    "CREATE UNIQUE INDEX IF NOT EXISTS documents_seq_key ON documents (seq)",
    """CREATE TABLE IF NOT EXISTS seed_load (
        singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        documents  integer NOT NULL,
        rng_seed   bigint NOT NULL,
        loaded_at  timestamptz NOT NULL DEFAULT now()
    )""",
)

CONTENT_COLUMNS = ("id", "title", "body", "source", "as_of", "doc_type", "issuer", "ticker")
DOCUMENT_SELECT = (
    "SELECT id, title, body, source, as_of, doc_type, issuer, ticker, content_hash, seq, "
    "created_at, pg_xact_commit_timestamp(xmin) FROM documents"
)
UPSERT_DOCUMENT = (
    "INSERT INTO documents (id, title, body, source, as_of, doc_type, issuer, ticker, "
    "content_hash, written_in) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (id) DO UPDATE SET title = EXCLUDED.title, body = EXCLUDED.body, "
    "source = EXCLUDED.source, as_of = EXCLUDED.as_of, doc_type = EXCLUDED.doc_type, "
    "issuer = EXCLUDED.issuer, ticker = EXCLUDED.ticker, content_hash = EXCLUDED.content_hash, "
    "written_in = EXCLUDED.written_in, seq = EXCLUDED.seq, created_at = EXCLUDED.created_at "
    "RETURNING seq, xmin::text"
)


@dataclass(frozen=True)
class StoredDocument:
    """A document as read back from a region's database."""

    document: Document
    content_hash: str
    seq: int
    created_at: Any
    commit_time: Any

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> StoredDocument:
        return cls(Document(*row[:8]), row[8], row[9], row[10], row[11])


def vector_record(stored: StoredDocument) -> dict[str, Any]:
    """The index record of a document: its embedding, with its content hash as metadata."""
    doc = stored.document
    metadata = {
        "content_hash": stored.content_hash,
        "seq": stored.seq,
        "as_of": doc.as_of.isoformat() if isinstance(doc.as_of, date) else str(doc.as_of),
        "source": doc.source,
        "doc_type": doc.doc_type,
        "ticker": doc.ticker,
    }
    return {
        "id": doc.id,
        "values": embed(doc.embedding_text()),
        "metadata": {k: v for k, v in metadata.items() if v is not None},
    }


def chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


# -- reconciliation: one implementation for the replicator and the lab ---------------------


@dataclass(frozen=True)
class ReconcileReport:
    """What `reconcile` found and changed; id lists are cut to their first 20 entries."""

    region: str
    database_rows: int
    index_vectors_before: int
    missing: int
    stale: int
    extra: int
    duration_s: float
    sample: dict[str, list[str]] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.missing or self.stale or self.extra)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


async def read_database_hashes(conn: psycopg.AsyncConnection[Any]) -> dict[str, str]:
    cur = await conn.execute("SELECT id, content_hash FROM documents")
    return {row[0]: row[1] for row in await cur.fetchall()}


async def read_documents(
    conn: psycopg.AsyncConnection[Any], ids: Sequence[str]
) -> list[StoredDocument]:
    cur = await conn.execute(DOCUMENT_SELECT + " WHERE id = ANY(%s)", (list(ids),))
    return [StoredDocument.from_row(row) for row in await cur.fetchall()]


async def read_index_hashes(index: AsyncIndex) -> dict[str, str]:
    """Every vector id in the index with the content hash in its metadata ("" when none)."""
    hashes: dict[str, str] = {}
    token: str | None = None
    while True:
        page = await index.list_paginated(
            limit=LIST_PAGE, pagination_token=token, namespace=NAMESPACE
        )
        ids = [str(item.id) for item in page.vectors]
        if ids:
            fetched = await index.fetch(ids=ids, namespace=NAMESPACE)
            for vector_id, vector in fetched.vectors.items():
                hashes[vector_id] = str((vector.metadata or {}).get("content_hash", ""))
        token = page.pagination.next if page.pagination else None
        if not token or not ids:
            return hashes


async def upsert_documents(index: AsyncIndex, documents: Sequence[StoredDocument]) -> None:
    for start in range(0, len(documents), UPSERT_BATCH):
        batch = [vector_record(d) for d in documents[start : start + UPSERT_BATCH]]
        await index.upsert(vectors=batch, namespace=NAMESPACE, show_progress=False)


async def reconcile(
    conn: psycopg.AsyncConnection[Any], index: AsyncIndex, region: str
) -> ReconcileReport:
    """Make `index` hold exactly the documents of `conn`'s database, with equal hashes."""
    started = time.monotonic()
    # the index first: with writers running, a vector listed before the database was read
    # and absent from it is truly extra (rows are never deleted, only rebuilt away)
    present = await read_index_hashes(index)
    wanted = await read_database_hashes(conn)
    missing = sorted(wanted.keys() - present.keys())
    stale = sorted(i for i in wanted.keys() & present.keys() if wanted[i] != present[i])
    extra = sorted(present.keys() - wanted.keys())
    for batch in chunks(extra, DELETE_BATCH):
        await index.delete(ids=batch, namespace=NAMESPACE)
    for batch in chunks(missing + stale, UPSERT_BATCH * 5):
        await upsert_documents(index, await read_documents(conn, batch))
    return ReconcileReport(
        region=region,
        database_rows=len(wanted),
        index_vectors_before=len(present),
        missing=len(missing),
        stale=len(stale),
        extra=len(extra),
        duration_s=round(time.monotonic() - started, 3),
        sample={"missing": missing[:20], "stale": stale[:20], "extra": extra[:20]},
    )


# -- where things are ------------------------------------------------------------------------


def api_url(settings: LabSettings, region: str, source: str = PUBLIC) -> str:
    """The RAG API of `region` as reached from `source` (a Toxiproxy listener)."""
    return f"http://{ingress_address(region, source)}:{settings.ports.api}"


def index_url(settings: LabSettings, region: str, source: str | None = None) -> str:
    """The index of `region` from `source`; `None` is the backend itself (lab admin only)."""
    address = backend_address(region) if source is None else ingress_address(region, source)
    return f"http://{address}:{settings.ports.index}"


def async_index(host: str, timeout_s: float) -> AsyncIndex:
    """The real `pinecone` SDK's asyncio index client, with a per-request timeout."""
    index: AsyncIndex = Pinecone(api_key="lab", timeout=timeout_s).IndexAsyncio(host=host)
    return index


async def admin_connection(
    cluster: PgCluster, settings: LabSettings
) -> psycopg.AsyncConnection[Any]:
    """A superuser connection to the documents database over the cluster's unix socket."""
    return await psycopg.AsyncConnection.connect(
        host=str(cluster.node.socket_dir),
        port=cluster.node.port,
        user=SUPERUSER,
        dbname=settings.database,
        connect_timeout=3,
        autocommit=True,
    )


# -- what the engine calls --------------------------------------------------------------------


def reconcile_index(lab: Lab, region: str) -> ReconcileReport:
    """Bring `region`'s index back to `region`'s own database: ids and content hashes."""
    return asyncio.run(_reconcile_region(lab, region))


def reconcile_indexes(lab: Lab, regions: Sequence[str] = REGIONS) -> dict[str, ReconcileReport]:
    """`reconcile_index` for several regions at once (each region's index is its own process)."""

    async def both() -> list[ReconcileReport]:
        return await asyncio.gather(*(_reconcile_region(lab, region) for region in regions))

    return {report.region: report for report in asyncio.run(both())}


async def _reconcile_region(lab: Lab, region: str) -> ReconcileReport:
    index = async_index(index_url(lab.settings, region), timeout_s=30)
    try:
        async with await admin_connection(lab.database.clusters[region], lab.settings) as conn:
            return await reconcile(conn, index, region)
    finally:
        await index.close()


def database_hashes(lab: Lab, region: str) -> dict[str, str]:
    """id -> content hash of every document in `region`'s database."""

    async def read() -> dict[str, str]:
        async with await admin_connection(lab.database.clusters[region], lab.settings) as conn:
            return await read_database_hashes(conn)

    return asyncio.run(read())


def index_hashes(lab: Lab, region: str) -> dict[str, str]:
    """id -> content hash (from vector metadata) of every vector in `region`'s index."""

    async def read() -> dict[str, str]:
        index = async_index(index_url(lab.settings, region), timeout_s=30)
        try:
            return await read_index_hashes(index)
        finally:
            await index.close()

    return asyncio.run(read())


def document_counts(lab: Lab) -> dict[str, dict[str, int | None]]:
    """Rows in each region's database and vectors in each region's index (None: unreachable)."""
    return {
        region: {
            "database_rows": _row_count(lab.database.clusters[region], lab.settings),
            "index_vectors": index_vector_count(lab.settings, region),
        }
        for region in REGIONS
    }


def _row_count(cluster: PgCluster, settings: LabSettings) -> int | None:
    try:
        return int(cluster.query("SELECT count(*) FROM documents", dbname=settings.database)[0][0])
    except psycopg.Error:
        return None


def index_vector_count(settings: LabSettings, region: str) -> int | None:
    try:
        body = httpx.get(f"{index_url(settings, region)}/health", timeout=2).json()
        return int(body["totalVectorCount"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None


# -- schema bootstrap and the seed load ------------------------------------------------------


def bootstrap_schema(primary: PgCluster, settings: LabSettings) -> None:
    """Create the documents schema on the primary, owned by the application role (idempotent)."""
    with primary.connect(settings.database) as conn:
        conn.execute(f"SET ROLE {APP_USER}")
        for statement in SCHEMA:
            conn.execute(statement)


def load_seed(primary: PgCluster, settings: LabSettings, count: int) -> bool:
    """Load the seed documents once per database; False when they were loaded before."""
    with primary.connect(settings.database) as conn, conn.transaction():
        conn.execute(f"SET LOCAL ROLE {APP_USER}")
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK_KEY,))
        if conn.execute("SELECT 1 FROM seed_load").fetchone():
            return False
        columns = (*CONTENT_COLUMNS, "content_hash", "written_in")
        with conn.cursor().copy(f"COPY documents ({', '.join(columns)}) FROM STDIN") as copy:
            for doc in generate_documents(count):
                copy.write_row((*document_values(doc), doc.content_hash(), "seed"))
        conn.execute(
            "INSERT INTO seed_load (documents, rng_seed) VALUES (%s, %s)",
            (count, DEFAULT_RNG_SEED),
        )
    return True


def document_values(doc: Document) -> tuple[Any, ...]:
    """The content columns of `doc`, in CONTENT_COLUMNS order."""
    return tuple(getattr(doc, name) for name in CONTENT_COLUMNS)


def primary_and_standbys(lab: Lab) -> tuple[PgCluster | None, list[PgCluster]]:
    primary, standbys = None, []
    for cluster in lab.database.clusters.values():
        try:
            in_recovery = cluster.in_recovery()
        except psycopg.Error:
            continue
        if in_recovery:
            standbys.append(cluster)
        elif primary is None:
            primary = cluster
    return primary, standbys


def wait_replayed(primary: PgCluster, standby: PgCluster, budget_s: float) -> None:
    """Wait until `standby` has replayed everything `primary` has written so far."""
    target = primary.query("SELECT pg_current_wal_lsn()::text")[0][0]
    wait_until(
        lambda: bool(
            standby.query("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,))[0][0]
        ),
        budget_s,
        f"{standby.node.region} to replay the documents schema and seed",
        interval_s=0.05,
    )


# -- components ------------------------------------------------------------------------------


def index_data_dir(state: Path, region: str) -> Path:
    return state / "index" / region


def _answers(url: str, statuses: tuple[int, ...] = (200,)) -> bool:
    try:
        return httpx.get(url, timeout=1.5).status_code in statuses
    except httpx.HTTPError:
        return False


class IndexServer(PythonService):
    """A region's Pinecone-compatible index server (drkit.lab.index_server), on its backend."""

    prelaunch = True

    def __init__(self, lab: Lab, region: str) -> None:
        ports = lab.settings.ports
        address = backend_address(region)
        self.region = region
        self.settings = lab.settings
        self.data_dir = index_data_dir(lab.state, region)
        super().__init__(
            name=f"index-{region}",
            state=lab.state,
            module="drkit.lab.index_server",
            args=[
                *("--host", address, "--port", str(ports.index), "--region", region),
                *("--data", str(self.data_dir)),
                *("--dimension", str(DIMENSION)),
            ],
            healthy=lambda: _answers(f"{index_url(lab.settings, region)}/health"),
            binds=[(address, ports.index)],
        )

    def status(self) -> dict[str, Any]:
        info = super().status()
        info["region"] = self.region
        if info["health"] == "healthy":
            info["vectors"] = index_vector_count(self.settings, self.region)
        return info

    def purge(self) -> None:
        """Delete the index's data (`lab down --purge`); the process is stopped by then."""
        shutil.rmtree(self.data_dir, ignore_errors=True)
        with contextlib.suppress(OSError):  # the last region's purge removes the folder
            self.data_dir.parent.rmdir()


class RagService(PythonService):
    """A region's RAG API (drkit.lab.rag_service): its database and index through Toxiproxy."""

    prelaunch = True

    def __init__(self, lab: Lab, region: str) -> None:
        ports = lab.settings.ports
        address = backend_address(region)
        self.region = region
        self.health_url = f"http://{address}:{ports.api}/health"
        super().__init__(
            name=f"rag-{region}",
            state=lab.state,
            module="drkit.lab.rag_service",
            args=[
                *("--region", region, "--host", address, "--port", str(ports.api)),
                *("--db-host", ingress_address(region, region), "--db-port", str(ports.postgres)),
                *("--db-name", lab.settings.database, "--db-user", APP_USER),
                *("--secrets", str(lab.state / "secrets.json")),
                *("--index-host", index_url(lab.settings, region, source=region)),
                *("--fence-file", str(lab.state / FENCE_FILE)),
            ],
            # the process is healthy when it answers; a 503 reports a sick dependency
            healthy=lambda: _answers(self.health_url, (200, 503)),
            binds=[(address, ports.api)],
        )

    def status(self) -> dict[str, Any]:
        info = super().status()
        info["region"] = self.region
        if info["pid"] is not None:
            info["service"] = self._service_health()
        return info

    def _service_health(self) -> dict[str, Any]:
        try:
            response = httpx.get(self.health_url, timeout=2.5)
            return dict(response.json())
        except (httpx.HTTPError, ValueError) as exc:
            return {"status": "unreachable", "error": str(exc) or type(exc).__name__}

    def serving_problem(self) -> str | None:
        """None when the service reports itself and both its dependencies ok."""
        health = self._service_health()
        if health.get("status") == "ok":
            return None
        deps = health.get("dependencies") or {}
        sick = [
            f"{k}: {v.get('error', v.get('status'))}"
            for k, v in deps.items()
            if v.get("status") != "ok"
        ]
        return f"{self.name} is {health.get('status')}" + (f" ({'; '.join(sick)})" if sick else "")

    def reset(self) -> None:
        """Running and serving: its dependencies were just restored, so a service still
        degraded after a grace period is stuck inside (e.g. a pool of dead connections) and
        is restarted."""
        super().reset()
        try:
            wait_until(lambda: self.serving_problem() is None, 5.0, f"{self.name} to serve")
        except LabError:
            self.stop()
            self.start()
            wait_until(lambda: self.serving_problem() is None, 10.0, f"{self.name} to serve")


class IndexReplicator(PythonService):
    """A region's index replicator (drkit.lab.index_replicator); it reports in a status file."""

    prelaunch = True  # it retries until the schema exists, so it may boot early

    HEARTBEAT_BUDGET_S = 5.0

    def __init__(self, lab: Lab, region: str) -> None:
        ports = lab.settings.ports
        self.region = region
        self.status_file = lab.state / "run" / f"index-replicator-{region}.json"
        super().__init__(
            name=f"index-replicator-{region}",
            state=lab.state,
            module="drkit.lab.index_replicator",
            args=[
                "--region",
                region,
                *("--db-host", ingress_address(region, region), "--db-port", str(ports.postgres)),
                *("--db-name", lab.settings.database, "--db-user", APP_USER),
                *("--secrets", str(lab.state / "secrets.json")),
                *("--index-host", index_url(lab.settings, region, source=region)),
                *("--status-file", str(self.status_file)),
            ],
            healthy=self._reporting,
            start_budget_s=60.0,  # the first pass reconciles the whole index
        )

    def report(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.status_file.read_text()))
        except (OSError, ValueError):
            return {}

    def _reporting(self) -> bool:
        """Alive, heartbeating, and past its first pass (which reconciles when a standby)."""
        report = self.report()
        fresh = time.time() - float(report.get("heartbeat_at", 0)) < self.HEARTBEAT_BUDGET_S
        return fresh and report.get("pid") == self.pid() and report.get("passes", 0) > 0

    def start(self) -> None:
        if self.pid() is None:
            self.status_file.unlink(missing_ok=True)
        super().start()

    def status(self) -> dict[str, Any]:
        info = super().status()
        info["region"] = self.region
        if info["pid"] is not None:
            report = self.report()
            report.pop("pid", None)
            info["replicator"] = report
        return info


class DocumentStore:
    """Not a process: the documents schema, the seed load, and indexes that match databases."""

    name = "documents"

    def __init__(self, lab: Lab) -> None:
        self.lab = lab

    def start(self) -> None:
        seeded = self._prepare()
        regions = [r for r in REGIONS if seeded or self._counts_differ(r)]
        if regions:
            reconcile_indexes(self.lab, regions)

    def reset(self) -> None:
        self._prepare()
        reconcile_indexes(self.lab)

    def stop(self) -> None:
        return None

    def _prepare(self) -> bool:
        """Schema on the primary, the seed once, and standbys caught up; True if it seeded."""
        primary, standbys = primary_and_standbys(self.lab)
        if primary is None:
            raise LabError(
                "no PostgreSQL primary to create the documents schema on; see "
                "`drkit lab status`, or run `drkit lab reset` to restore the initial topology"
            )
        bootstrap_schema(primary, self.lab.settings)
        seeded = load_seed(primary, self.lab.settings, seed_count_from_env())
        for standby in standbys:
            wait_replayed(primary, standby, budget_s=30)
        return seeded

    def _counts_differ(self, region: str) -> bool:
        counts = document_counts(self.lab)[region]
        return counts["database_rows"] != counts["index_vectors"]

    def status(self) -> dict[str, Any]:
        try:
            counts = document_counts(self.lab)
            seeded = self._seeded()
        except Exception as exc:  # status reports, it does not raise
            return {"component": self.name, "health": "unhealthy", "error": str(exc)}
        reachable = all(None not in c.values() for c in counts.values())
        return {
            "component": self.name,
            "health": "healthy" if reachable else "unhealthy",
            "counts": counts,
            "counts_match": all(c["database_rows"] == c["index_vectors"] for c in counts.values()),
            "seeded_documents": seeded,
        }

    def _seeded(self) -> int | None:
        """How many seed documents the databases were loaded with (None: not known)."""
        for cluster in self.lab.database.clusters.values():
            try:
                rows = cluster.query(
                    "SELECT documents FROM seed_load", dbname=self.lab.settings.database
                )
            except psycopg.Error:
                continue
            return int(rows[0][0]) if rows else None
        return None


def sut_components(lab: Lab) -> list[Component]:
    """The system under test, in start order: indexes, data, APIs, replicators."""
    return [
        *(IndexServer(lab, region) for region in REGIONS),
        DocumentStore(lab),
        *(RagService(lab, region) for region in REGIONS),
        *(IndexReplicator(lab, region) for region in REGIONS),
    ]
