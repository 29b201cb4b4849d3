"""The lab's reference financial RAG service for one region: FastAPI, run by uvicorn.

    python -m drkit.lab.rag_service --region us-east-1 --host 127.0.1.1 --port 25480 \\
        --db-host 127.0.1.11 --db-port 25432 --db-name ragdb --db-user rag_app \\
        --secrets .drkit/secrets.json --index-host http://127.0.1.11:25481

It reaches its database and its index only at the addresses it is given (the lab gives it
its own region's Toxiproxy listeners). The database password comes from the `app` key of the
--secrets file or from DRKIT_RAG_DB_PASSWORD, never from the command line.

* `POST /documents` stores a document in PostgreSQL, then its vector in the index. 201: the
  write is committed and indexed. 503 (`outcome: refused`): nothing was written (a standby,
  or the database unreachable before the commit). 502 (`outcome: indeterminate`): the commit's
  fate is unknown, or it committed and the index upsert failed (`committed: true`).
* `GET /documents/{id}`, `GET /query?q=`: read from this region's database and index.
* `GET /health`: region, database role, dependencies; 200 when both answer, else 503.

Every response carries the answering region in the X-DR-Region header. The database role is
read on every request, never cached. Every wait is bounded; a connection that failed or timed
out is closed, and the pool opens new ones by itself (after a promotion or a heal).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
import uvicorn
from fastapi import FastAPI, Query
from fastapi.responses import JSONResponse
from psycopg_pool import AsyncConnectionPool, PoolTimeout, TooManyRequests
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from drkit.lab.embedding import embed
from drkit.lab.fence import FenceReader
from drkit.lab.seed import Document
from drkit.lab.sut import (
    DOCUMENT_SELECT,
    NAMESPACE,
    UPSERT_DOCUMENT,
    WRITE_LOCK_KEY,
    StoredDocument,
    async_index,
    document_values,
    vector_record,
)

if TYPE_CHECKING:
    from pinecone.async_client.async_index import AsyncIndex

log = logging.getLogger("drkit.lab.rag_service")

PASSWORD_ENV = "DRKIT_RAG_DB_PASSWORD"
REGION_HEADER = "X-DR-Region"
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@#-]{0,127}$"
DB_ERRORS = (psycopg.Error, PoolTimeout, TimeoutError, OSError)
T = TypeVar("T")


@dataclass(frozen=True)
class ServiceConfig:
    """Where the service listens and what it depends on; the password is never printed."""

    region: str
    db_host: str
    db_port: int
    db_name: str
    db_user: str
    index_host: str
    password: str = field(repr=False, default="")
    db_timeout_s: float = 2.0
    index_timeout_s: float = 2.0
    health_timeout_s: float = 1.0
    pool_min: int = 2
    pool_max: int = 10
    fence_file: Path | None = None

    def conninfo(self) -> str:
        return psycopg.conninfo.make_conninfo(
            host=self.db_host,
            port=self.db_port,
            dbname=self.db_name,
            user=self.db_user,
            connect_timeout=1,
            application_name=f"rag-{self.region}",
            keepalives=1,
            keepalives_idle=2,
            keepalives_interval=1,
            keepalives_count=3,
            tcp_user_timeout=3000,
        )


class DocumentIn(BaseModel):
    """A financial document to store; `id` is the client's (unique ids make writes traceable)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str | None = Field(default=None, pattern=ID_PATTERN)
    title: str = Field(min_length=1, max_length=1_000)
    body: str = Field(min_length=1, max_length=100_000)
    source: str = Field(min_length=1, max_length=200)
    as_of: date
    doc_type: str | None = Field(default=None, max_length=50)
    issuer: str | None = Field(default=None, max_length=200)
    ticker: str | None = Field(default=None, max_length=20)

    def to_document(self) -> Document:
        return Document(
            id=self.id or f"doc-{uuid.uuid4().hex}",
            title=self.title,
            body=self.body,
            source=self.source,
            as_of=self.as_of,
            doc_type=self.doc_type,
            issuer=self.issuer,
            ticker=self.ticker,
        )


class ServiceError(Exception):
    """An answer other than success, with its HTTP status and JSON body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("error", "error"))
        self.status = status
        self.body = body


def refused(config: ServiceConfig, error: str, reason: str, **extra: Any) -> ServiceError:
    body = {"outcome": "refused", "error": error, "reason": reason, "region": config.region}
    return ServiceError(503, {**body, **extra})


def describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"timed out: {exc}" if str(exc) else "timed out"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else 'no detail'}"


def iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime | date) else None


# -- dependencies ----------------------------------------------------------------------------

_abandoned: set[asyncio.Future[Any]] = set()


async def bounded(work: Awaitable[T], budget_s: float) -> T:
    """`work`, or TimeoutError after `budget_s`, even when its connection is blackholed.

    A plain `asyncio.timeout` is not enough: psycopg answers a cancellation by asking the
    server to cancel the query and waiting up to 10 s for that, which a blackholed link never
    answers. Cancelled a second time, it drops the connection at once; `abandon` does that.
    """
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({task}, timeout=budget_s)
    except asyncio.CancelledError:
        await abandon(task)
        raise
    if task in done:
        return task.result()
    await abandon(task)
    raise TimeoutError(f"no answer within {budget_s:g}s")


async def abandon(task: asyncio.Future[Any]) -> None:
    for _ in range(2):
        if task.done():
            break
        task.cancel()
        await asyncio.wait({task}, timeout=0.05)
    if not task.done():  # keep a reference until it ends, and read its outcome then
        _abandoned.add(task)
        task.add_done_callback(_forget)
    elif not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log it as never retrieved


def _forget(task: asyncio.Future[Any]) -> None:
    _abandoned.discard(task)
    if not task.cancelled():
        task.exception()


class Runtime:
    """The service's pool and index client, and bounded access to both."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
            config.conninfo(),
            kwargs={"autocommit": True, "password": config.password},
            min_size=config.pool_min,
            max_size=config.pool_max,
            open=False,
            timeout=config.db_timeout_s,
            max_waiting=200,
            reconnect_timeout=24 * 3600.0,  # keep trying for as long as a drill may cut us off
            name=f"rag-{config.region}",
        )
        self.index: AsyncIndex = async_index(config.index_host, config.index_timeout_s)
        self.index_clients_retired = 0
        self.fences = FenceReader(config.fence_file)

    async def open(self) -> None:
        await self.pool.open(wait=False)

    async def index_call(self, call: Callable[[AsyncIndex], Awaitable[T]], budget_s: float) -> T:
        """`call` on the index client within `budget_s`. A request that timed out may hold a
        connection that a blackholed link never releases, and the client's pool fills with
        them (the service would never recover after the heal); so a timeout retires the
        client and the next request opens a fresh one."""
        index = self.index
        try:
            return await bounded(call(index), budget_s)
        except TimeoutError:
            if self.index is index:
                self.index = async_index(self.config.index_host, self.config.index_timeout_s)
                self.index_clients_retired += 1
                retiring = asyncio.ensure_future(bounded(index.close(), 5.0))
                _abandoned.add(retiring)
                retiring.add_done_callback(_forget)
            raise

    async def close(self) -> None:
        await self.pool.close(timeout=1.0)
        await self.index.close()

    @asynccontextmanager
    async def session(self) -> AsyncIterator[tuple[psycopg.AsyncConnection[Any], str]]:
        """A pooled connection and the database's role, read on it just now.

        Reading the role is also the connection check: a connection the server closed (a
        restart, a demotion, a rebuild) fails at once and the next one is tried, without the
        pool's back-off. One that fails or is cut off mid-call is closed, never reused.
        """
        conn, role = await self._checked_connection()
        try:
            yield conn, role
        except BaseException as exc:
            idle = conn.pgconn.transaction_status == psycopg.pq.TransactionStatus.IDLE
            if not (idle and isinstance(exc, ServiceError)):
                await conn.close()
            raise
        finally:
            await self.pool.putconn(conn)

    async def _checked_connection(self) -> tuple[psycopg.AsyncConnection[Any], str]:
        for _ in range(self.config.pool_max):
            conn = await self.pool.getconn()
            try:
                return conn, await self._role(conn)
            except psycopg.OperationalError as exc:
                log.info("%s: dropping a dead connection: %s", self.config.region, describe(exc))
                await self._discard(conn)
            except BaseException:
                await self._discard(conn)
                raise
        conn = await self.pool.getconn()  # every pooled one was dead: this one is new
        try:
            return conn, await self._role(conn)
        except BaseException:
            await self._discard(conn)
            raise

    @staticmethod
    async def _role(conn: psycopg.AsyncConnection[Any]) -> str:
        row = await (await conn.execute("SELECT pg_is_in_recovery()")).fetchone()
        return "standby" if row and row[0] else "primary"

    async def _discard(self, conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.close()
        await self.pool.putconn(conn)


# -- POST /documents -------------------------------------------------------------------------


@dataclass
class WriteProgress:
    """How far a write got: decides between 'refused' and 'indeterminate' on failure."""

    phase: str = "connecting"  # connecting -> writing -> committing -> committed


async def commit_document(rt: Runtime, doc: Document, progress: WriteProgress) -> dict[str, Any]:
    """Insert (or replace) `doc` and commit; the ack fields, or ServiceError(503) if refused."""
    return await bounded(_commit_document(rt, doc, progress), rt.config.db_timeout_s)


async def _commit_document(rt: Runtime, doc: Document, progress: WriteProgress) -> dict[str, Any]:
    content_hash = doc.content_hash()
    fence = rt.fences.fence_of(rt.config.region)
    if fence is not None:
        raise refused(
            rt.config,
            "region fenced",
            f"{rt.config.region} was fenced by a failover (epoch {fence.get('epoch')}: "
            f"{fence.get('reason', '')}); it accepts no writes until failback or lab reset",
            fence_epoch=fence.get("epoch"),
        )
    async with rt.session() as (conn, role):
        if role == "standby":
            raise refused(
                rt.config,
                "database is a standby",
                f"{rt.config.region}'s database is a hot standby (pg_is_in_recovery() is true) "
                "and accepts no writes until it is promoted; write to the primary region",
                role="standby",
            )
        progress.phase = "writing"
        await conn.execute("BEGIN")
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK_KEY,))
        params = (*document_values(doc), content_hash, rt.config.region)
        row = await (await conn.execute(UPSERT_DOCUMENT, params)).fetchone()
        assert row is not None
        progress.phase = "committing"
        await conn.execute("COMMIT")
        progress.phase = "committed"
        seq, xid = row
        stamp = await (
            await conn.execute("SELECT pg_xact_commit_timestamp(%s::xid)", (xid,))
        ).fetchone()
    commit_time = stamp[0] if stamp else None
    return {
        "id": doc.id,
        "region": rt.config.region,
        "seq": seq,
        "content_hash": content_hash,
        "commit_time": iso(commit_time),
        "commit_time_epoch": commit_time.timestamp() if commit_time else None,
    }


def write_failure(rt: Runtime, exc: BaseException, progress: WriteProgress) -> ServiceError:
    """Map a failed write to 503 (nothing written) or 502 (outcome unknown)."""
    server_said_no = isinstance(exc, psycopg.Error) and exc.sqlstate is not None
    if progress.phase == "committed":
        return ServiceError(
            502,
            {
                "outcome": "indeterminate",
                "committed": True,
                "error": "committed, but the commit time could not be read",
                "reason": describe(exc),
                "region": rt.config.region,
            },
        )
    if progress.phase == "committing" and not server_said_no:
        return ServiceError(
            502,
            {
                "outcome": "indeterminate",
                "committed": None,
                "error": "the commit was sent but its outcome is unknown",
                "reason": describe(exc),
                "region": rt.config.region,
            },
        )
    if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
        return refused(rt.config, "database is a standby", describe(exc), role="standby")
    return refused(rt.config, "database unavailable", describe(exc))


async def index_document(rt: Runtime, doc: Document, ack: dict[str, Any]) -> None:
    stored = StoredDocument(doc, ack["content_hash"], ack["seq"], None, None)
    await rt.index_call(
        lambda index: index.upsert(
            vectors=[vector_record(stored)], namespace=NAMESPACE, show_progress=False
        ),
        rt.config.index_timeout_s,
    )


async def store_document(rt: Runtime, document: DocumentIn) -> JSONResponse:
    doc = document.to_document()
    progress = WriteProgress()
    try:
        ack = await commit_document(rt, doc, progress)
    except ServiceError:
        raise
    except (*DB_ERRORS, TooManyRequests) as exc:
        raise write_failure(rt, exc, progress) from None
    try:
        await index_document(rt, doc, ack)
    except Exception as exc:  # any index failure: committed, not indexed
        log.warning(
            "%s: committed %s but the index upsert failed: %s",
            rt.config.region,
            doc.id,
            describe(exc),
        )
        body = {
            **ack,
            "outcome": "indeterminate",
            "committed": True,
            "indexed": False,
            "error": "committed to the database, but the index upsert failed",
            "reason": describe(exc),
        }
        raise ServiceError(502, body) from None
    return JSONResponse({"outcome": "acknowledged", **ack, "indexed": True}, status_code=201)


# -- reads -----------------------------------------------------------------------------------


async def read_documents(rt: Runtime, ids: Sequence[str]) -> tuple[str, list[StoredDocument]]:
    """This region's database role and the stored documents among `ids`."""

    async def read() -> tuple[str, list[tuple[Any, ...]]]:
        async with rt.session() as (conn, role):
            cur = await conn.execute(DOCUMENT_SELECT + " WHERE id = ANY(%s)", (list(ids),))
            return role, await cur.fetchall()

    try:
        role, rows = await bounded(read(), rt.config.db_timeout_s)
    except (*DB_ERRORS, TooManyRequests) as exc:
        raise refused(rt.config, "database unavailable", describe(exc)) from None
    return role, [StoredDocument.from_row(row) for row in rows]


def document_json(stored: StoredDocument) -> dict[str, Any]:
    doc = stored.document
    return {
        "id": doc.id,
        "title": doc.title,
        "body": doc.body,
        "source": doc.source,
        "as_of": iso(doc.as_of),
        "doc_type": doc.doc_type,
        "issuer": doc.issuer,
        "ticker": doc.ticker,
        "content_hash": stored.content_hash,
        "seq": stored.seq,
        "created_at": iso(stored.created_at),
        "commit_time": iso(stored.commit_time),
    }


async def get_document(rt: Runtime, doc_id: str) -> JSONResponse:
    role, found = await read_documents(rt, [doc_id])
    base = {"region": rt.config.region, "database_role": role}
    if not found:
        return JSONResponse({**base, "error": "not found", "id": doc_id}, status_code=404)
    return JSONResponse({**base, **document_json(found[0])})


async def search(rt: Runtime, q: str, top_k: int) -> JSONResponse:
    try:
        result = await rt.index_call(
            lambda index: index.query(top_k=top_k, vector=embed(q), namespace=NAMESPACE),
            rt.config.index_timeout_s,
        )
    except Exception as exc:
        raise refused(rt.config, "index unavailable", describe(exc)) from None
    scores = {match.id: match.score for match in result.matches}
    role, found = await read_documents(rt, list(scores))
    by_id = {stored.document.id: stored for stored in found}
    results = [{"score": scores[i], **document_json(by_id[i])} for i in scores if i in by_id]
    return JSONResponse(
        {
            "region": rt.config.region,
            "database_role": role,
            "query": q,
            "results": results,
            "not_in_database": [i for i in scores if i not in by_id],
        }
    )


# -- GET /health -----------------------------------------------------------------------------


async def timed(check: Callable[[], Awaitable[dict[str, Any]]], budget_s: float) -> dict[str, Any]:
    started = time.monotonic()
    try:
        result = {"status": "ok", **(await bounded(check(), budget_s))}
    except Exception as exc:
        result = {"status": "unavailable", "error": describe(exc)}
    return {**result, "latency_ms": round((time.monotonic() - started) * 1000, 1)}


async def health(rt: Runtime) -> JSONResponse:
    async def database() -> dict[str, Any]:
        async with rt.session() as (_, role):
            return {"role": role}

    async def index() -> dict[str, Any]:
        stats = await rt.index_call(lambda index: index.describe_index_stats(), budget * 0.9)
        return {"vectors": stats.total_vector_count, "clients_retired": rt.index_clients_retired}

    budget = rt.config.health_timeout_s
    db, idx = await asyncio.gather(timed(database, budget), timed(index, budget))
    ok = db["status"] == "ok" and idx["status"] == "ok"
    body = {
        "region": rt.config.region,
        "status": "ok" if ok else "degraded",
        "role": db.get("role", "unknown"),
        "fenced": rt.fences.fence_of(rt.config.region) is not None,
        "dependencies": {"database": db, "index": idx},
        "checked_at": time.time(),
    }
    return JSONResponse(body, status_code=200 if ok else 503)


# -- the app ---------------------------------------------------------------------------------


class RegionHeader:
    """ASGI middleware: every response says which region answered (X-DR-Region)."""

    def __init__(self, app: ASGIApp, region: str) -> None:
        self.app = app
        self.header = (REGION_HEADER.lower().encode(), region.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_region(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), self.header]
            await send(message)

        await self.app(scope, receive, send_with_region)


def create_app(config: ServiceConfig) -> FastAPI:
    rt = Runtime(config)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await rt.open()
        yield
        await rt.close()

    app = FastAPI(title=f"drkit lab RAG service ({config.region})", lifespan=lifespan)
    app.add_middleware(RegionHeader, region=config.region)

    @app.exception_handler(ServiceError)
    async def service_error(_: Any, exc: ServiceError) -> JSONResponse:
        return JSONResponse(exc.body, status_code=exc.status)

    @app.get("/health")
    async def get_health() -> JSONResponse:
        return await health(rt)

    @app.post("/documents", status_code=201)
    async def post_document(document: DocumentIn) -> JSONResponse:
        return await store_document(rt, document)

    @app.get("/documents/{doc_id}")
    async def get_one(doc_id: str) -> JSONResponse:
        return await get_document(rt, doc_id)

    @app.get("/query")
    async def query(
        q: str = Query(min_length=1, max_length=2_000),
        top_k: int = Query(default=5, ge=1, le=50),
    ) -> JSONResponse:
        return await search(rt, q, top_k)

    return app


# -- command line ----------------------------------------------------------------------------


def read_password(secrets: Path | None) -> str:
    """The database password: DRKIT_RAG_DB_PASSWORD, else the `app` key of the secrets file."""
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    if secrets is None:
        raise SystemExit(f"rag_service: give --secrets PATH or set {PASSWORD_ENV}")
    try:
        return str(json.loads(secrets.read_text())["app"])
    except (OSError, ValueError, KeyError) as exc:
        raise SystemExit(
            f"rag_service: cannot read the `app` password from {secrets} "
            f"({type(exc).__name__}); start the lab with `drkit lab up` to create it"
        ) from None


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m drkit.lab.rag_service", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--region", required=True)
    parser.add_argument("--host", required=True, help="address to listen on")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db-host", required=True, help="the database (a Toxiproxy listener)")
    parser.add_argument("--db-port", type=int, required=True)
    parser.add_argument("--db-name", default="ragdb")
    parser.add_argument("--db-user", default="rag_app")
    parser.add_argument("--secrets", type=Path, help="JSON file with the `app` password")
    parser.add_argument("--index-host", required=True, help="e.g. http://127.0.1.11:25481")
    parser.add_argument("--fence-file", type=Path, help="the lab's fencing lease (fence.json)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s rag-service %(message)s"
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
        fence_file=args.fence_file,
    )
    log.info(
        "%s: serving on http://%s:%d; database %s@%s:%d/%s, index %s",
        *(config.region, args.host, args.port, config.db_user, config.db_host),
        *(config.db_port, config.db_name, config.index_host),
    )
    uvicorn.run(
        create_app(config),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
