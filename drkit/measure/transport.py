"""The seam between the drill's clients and the service: a transport and a name resolver.

A transport raises ``DefiniteFailure`` when the operation certainly did not happen (refused,
could not connect, a read that timed out, the service said no) and ``OutcomeUnknown`` when it
may have happened (a write whose answer was lost). Clients record the first as ``fail`` and
the second, like any other exception, as ``info``: an unknown outcome is never ``ok``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

import httpx

REGION_HEADER = "X-DR-Region"
DOC_ID = re.compile(r"^[A-Za-z0-9]+-\d+$")  # a writer's document id, e.g. w3f9a1c-0000042


@dataclass(frozen=True)
class ReadResult:
    """A successful read: which region answered, and the document ids it returned."""

    region: str
    ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Ack:
    """A write acknowledgement: the id stored, the region that committed it, and when."""

    id: str
    region: str
    commit_time: float | None = None


class TransportError(Exception):
    """Base of the two outcomes a transport signals."""


class DefiniteFailure(TransportError):
    """The operation did not happen."""


class OutcomeUnknown(TransportError):
    """The operation may or may not have happened."""


class ResolutionFailed(DefiniteFailure):
    """The name did not resolve; nothing was sent."""


class Transport(Protocol):
    """Reads and writes against one address of the service."""

    def read(self, address: str, query: str) -> ReadResult: ...

    def write(self, address: str, doc_id: str, payload: str) -> Ack: ...

    def close(self) -> None: ...


class Resolver(Protocol):
    """Turns the service's public name into an address (the lab's resolver honours TTLs)."""

    def resolve(self, name: str) -> str: ...


class StaticResolver:
    """A resolver from a mapping that tests (or a runbook step) can repoint at any time."""

    def __init__(self, records: Mapping[str, str]) -> None:
        self._records = dict(records)
        self._lock = threading.Lock()

    def point(self, name: str, address: str) -> None:
        with self._lock:
            self._records[name] = address

    def resolve(self, name: str) -> str:
        with self._lock:
            if name not in self._records:
                known = ", ".join(sorted(self._records)) or "none"
                raise ResolutionFailed(f"name {name!r} has no record (known: {known})")
            return self._records[name]


class HttpTransport:
    """The RAG service over HTTP: ``GET /query?q=`` and ``POST /documents``.

    ``address`` is a host (the resolved A record); ``port`` and ``scheme`` are fixed per
    transport. The answering region comes from the ``X-DR-Region`` header, else the body.
    """

    def __init__(
        self,
        *,
        port: int,
        scheme: str = "http",
        timeout: float = 1.0,
        host_header: str | None = None,
        client: httpx.Client | None = None,
        point_read: str | None = None,
        by_id: bool = False,
    ) -> None:
        """`point_read`: reads fetch this one document by id (`GET /documents/{id}`, the
        database alone) instead of searching (`GET /query`, database and index): a cheap
        read for clients that only need to know which region answers."""
        self._point_read = point_read
        self._by_id = by_id  # a query of document ids reads each by id (read-your-writes)
        self._port = port
        self._scheme = scheme
        headers = {"Host": host_header} if host_header else {}
        self._client = client or httpx.Client(timeout=timeout, headers=headers)

    def _url(self, address: str, path: str) -> str:
        return f"{self._scheme}://{address}:{self._port}{path}"

    def read(self, address: str, query: str) -> ReadResult:
        if self._point_read is not None:
            return self._read_one(address, self._point_read)
        ids = query.split()
        if self._by_id and ids and all(DOC_ID.match(i) for i in ids):
            return self._read_ids(address, ids)
        try:
            response = self._client.get(self._url(address, "/query"), params={"q": query})
        except httpx.TransportError as exc:
            raise DefiniteFailure(f"read from {address}: {type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            raise DefiniteFailure(f"read from {address}: HTTP {response.status_code}")
        body = response.json()
        return ReadResult(_region(response, body, address), _result_ids(body))

    def _read_ids(self, address: str, ids: list[str]) -> ReadResult:
        """Each id by `GET /documents/{id}`: found (200) or not (404); anything else fails."""
        found, region = [], None
        for doc_id in ids:
            try:
                response = self._client.get(self._url(address, f"/documents/{doc_id}"))
            except httpx.TransportError as exc:
                raise DefiniteFailure(f"read from {address}: {type(exc).__name__}: {exc}") from exc
            if response.status_code not in (200, 404):
                raise DefiniteFailure(
                    f"read of {doc_id} from {address}: HTTP {response.status_code}"
                )
            region = _region(response, response.json(), address)
            if response.status_code == 200:
                found.append(doc_id)
        return ReadResult(region or address, tuple(found))

    def _read_one(self, address: str, doc_id: str) -> ReadResult:
        try:
            response = self._client.get(self._url(address, f"/documents/{doc_id}"))
        except httpx.TransportError as exc:
            raise DefiniteFailure(f"read from {address}: {type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            raise DefiniteFailure(f"read of {doc_id} from {address}: HTTP {response.status_code}")
        return ReadResult(_region(response, response.json(), address), (doc_id,))

    def write(self, address: str, doc_id: str, payload: str) -> Ack:
        document = {
            "id": doc_id,
            "title": f"drill write {doc_id}",
            "body": payload,
            "source": "drkit-writer",
            "as_of": date.today().isoformat(),
        }
        try:
            response = self._client.post(self._url(address, "/documents"), json=document)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise DefiniteFailure(f"write to {address}: not connected: {exc}") from exc
        except httpx.TransportError as exc:
            raise OutcomeUnknown(f"write to {address}: answer lost: {type(exc).__name__}") from exc
        return _ack(response, address, doc_id)

    def close(self) -> None:
        self._client.close()


def _ack(response: httpx.Response, address: str, doc_id: str) -> Ack:
    status = response.status_code
    if status in (200, 201):
        body = response.json()
        stored = str(body.get("id", doc_id))
        return Ack(stored, _region(response, body, address), _commit_epoch(body))
    where = f"write {doc_id} to {address}: HTTP {status}"
    if 400 <= status < 500 or status == 503:
        raise DefiniteFailure(f"{where} (refused)")
    raise OutcomeUnknown(f"{where} (the write may have committed)")


def _commit_epoch(body: dict[str, Any]) -> float | None:
    """The commit time as epoch seconds: `commit_time_epoch`, or a numeric `commit_time`."""
    for key in ("commit_time_epoch", "commit_time"):
        value = body.get(key)
        if isinstance(value, int | float):
            return float(value)
    return None


def _region(response: httpx.Response, body: Any, address: str) -> str:
    region = response.headers.get(REGION_HEADER) or (
        body.get("region") if isinstance(body, dict) else None
    )
    if not region:
        raise OutcomeUnknown(f"{address} answered without {REGION_HEADER} header or 'region' field")
    return str(region)


def _result_ids(body: Any) -> tuple[str, ...]:
    if not isinstance(body, dict):
        return ()
    items = body.get("results") or body.get("documents") or body.get("matches") or []
    return tuple(str(item["id"]) for item in items if isinstance(item, dict) and "id" in item)
