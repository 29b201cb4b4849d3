"""A Pinecone-compatible vector index for one lab region, kept in SQLite so restarts keep it.

It serves the data-plane subset the `pinecone` SDK (10.x) sends over plain HTTP
(`Pinecone(api_key="x").Index(host="http://127.0.1.1:25081")`), in Pinecone's camelCase JSON,
with errors shaped so the SDK raises its own exceptions (404 -> `NotFoundException`, 400 ->
`PineconeApiException`). `GET /health` is the lab's own liveness check.

    python -m drkit.lab.index_server --host 127.0.1.1 --port 25081 --data DIR \\
        --region us-east-1 [--dimension 64] [--metric cosine]

Where it differs from Pinecone (fidelity caveats):

* reads see writes at once; Pinecone is eventually consistent (its counts lag writes);
* search is exact (brute force over the namespace); Pinecone's is approximate;
* dense values come back exactly as sent; Pinecone stores them as float32;
* `$ne` and `$nin` match records that lack the field (Pinecone does not document this case).

Like Pinecone, a namespace exists from its first upsert until it is deleted
(`DELETE /namespaces/{name}`); `deleteAll` empties it and leaves it, and any delete in a
namespace that does not exist answers 404 "Namespace not found". The default namespace is
`""` in requests (`"__default__"` is accepted too) and `"__default__"` in
`describe_index_stats`, as the SDK documents.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import heapq
import json
import logging
import math
import operator
import os
import signal
import sqlite3
import sys
import threading
from array import array
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import uvicorn
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, NonNegativeInt
from pydantic.alias_generators import to_camel
from starlette.exceptions import HTTPException as StarletteHTTPException

from drkit.errors import ConfigError
from drkit.lab.embedding import DIMENSION

log = logging.getLogger("drkit.lab.index_server")

METRICS = ("cosine", "dotproduct", "euclidean")
DEFAULT_NAMESPACE_ALIAS = "__default__"
DB_FILE = "index.sqlite3"
MAX_DIMENSION = 20_000
MAX_UPSERT_BATCH = 1_000
MAX_TOP_K = 10_000
MAX_FETCH_IDS = 1_000
MAX_LIST_LIMIT = 100
MAX_METADATA_BYTES = 40_960
MAX_ID_LENGTH = 512

# gRPC status codes: Pinecone's data plane puts them in the "code" field of its errors.
INVALID_ARGUMENT = 3
NOT_FOUND = 5
UNIMPLEMENTED = 12


# -- errors --------------------------------------------------------------------------------


class IndexApiError(Exception):
    """An error answered to the client as Pinecone does: `{"code", "message", "details"}`."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def response(self) -> JSONResponse:
        body = {"code": self.code, "message": self.message, "details": []}
        return JSONResponse(body, status_code=self.status)


def bad_request(message: str) -> IndexApiError:
    return IndexApiError(400, INVALID_ARGUMENT, message)


def not_found(message: str) -> IndexApiError:
    return IndexApiError(404, NOT_FOUND, message)


# -- records -------------------------------------------------------------------------------


Sparse = tuple[tuple[int, ...], tuple[float, ...]]
Metadata = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Record:
    """One stored vector. Never mutated: an update stores a new Record."""

    values: array[float]
    norm: float
    sparse: Sparse | None = None
    metadata: Metadata | None = None

    @classmethod
    def build(
        cls, values: Sequence[float], sparse: Sparse | None, metadata: Metadata | None
    ) -> Record:
        dense = array("d", values)
        return cls(dense, math.sqrt(dot(dense, dense)), sparse, metadata)

    def to_json(self, vector_id: str, values: bool = True, metadata: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"id": vector_id}
        if values:
            out["values"] = self.values.tolist()
            if self.sparse is not None:
                out["sparseValues"] = {
                    "indices": list(self.sparse[0]),
                    "values": list(self.sparse[1]),
                }
        if metadata and self.metadata is not None:
            out["metadata"] = self.metadata
        return out


def dot(a: Iterable[float], b: Iterable[float]) -> float:
    return sum(map(operator.mul, a, b))


# -- metadata filters ----------------------------------------------------------------------


Predicate = Callable[[Mapping[str, Any]], bool]
_MISSING = object()
_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
}
_FIELD_OPERATORS = ("$eq", "$ne", "$in", "$nin", *_COMPARISONS, "$exists")


def compile_filter(expression: Any) -> Predicate:
    """Turn a Pinecone metadata filter into a predicate over a record's metadata.

    Invalid filters raise a 400 here, before any record is looked at, so a bad filter on an
    empty namespace is refused as it would be on a full one.
    """
    if not isinstance(expression, dict):
        raise bad_request(f"filter must be a JSON object, got {_json_type(expression)}")
    clauses = [_compile_clause(key, value) for key, value in expression.items()]
    return lambda metadata: all(clause(metadata) for clause in clauses)


def _compile_clause(key: str, value: Any) -> Predicate:
    if key in ("$and", "$or"):
        if not isinstance(value, list) or not value:
            raise bad_request(f"filter operator {key} needs a non-empty array of filter objects")
        parts = [compile_filter(part) for part in value]
        combine = all if key == "$and" else any
        return lambda metadata: combine(part(metadata) for part in parts)
    if key.startswith("$"):
        raise bad_request(f"unknown filter operator {key!r} at the top level; use $and or $or")
    conditions = value if isinstance(value, dict) else {"$eq": value}
    if not conditions:
        raise bad_request(f"filter on field {key!r} is an empty object; give it an operator")
    tests = [_compile_operator(key, op, operand) for op, operand in conditions.items()]
    return lambda metadata: all(test(metadata.get(key, _MISSING)) for test in tests)


def _compile_operator(field: str, op: str, operand: Any) -> Callable[[Any], bool]:
    if op in ("$eq", "$ne"):
        _require_scalar(field, op, operand)
        if op == "$eq":
            return lambda stored: _holds(stored, operand)
        return lambda stored: not _holds(stored, operand)
    if op in ("$in", "$nin"):
        if not isinstance(operand, list):
            raise bad_request(f"filter {op} on field {field!r} needs an array, got {operand!r}")
        for item in operand:
            _require_scalar(field, op, item)
        if op == "$in":
            return lambda stored: any(_holds(stored, item) for item in operand)
        return lambda stored: not any(_holds(stored, item) for item in operand)
    if op in _COMPARISONS:
        if not _is_number(operand):
            raise bad_request(f"filter {op} on field {field!r} needs a number, got {operand!r}")
        compare = _COMPARISONS[op]
        return lambda stored: _is_number(stored) and compare(stored, operand)
    if op == "$exists":
        if not isinstance(operand, bool):
            raise bad_request(f"filter $exists on field {field!r} needs true or false")
        return lambda stored: (stored is not _MISSING) == operand
    raise bad_request(
        f"unknown filter operator {op!r} on field {field!r}; "
        f"supported: {', '.join(_FIELD_OPERATORS)}"
    )


def _require_scalar(field: str, op: str, operand: Any) -> None:
    if not isinstance(operand, str | bool) and not _is_number(operand):
        raise bad_request(
            f"filter {op} on field {field!r} needs a string, number or boolean, got {operand!r}"
        )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same(stored: Any, wanted: Any) -> bool:
    """Equality that keeps booleans apart from numbers (Python has True == 1)."""
    return isinstance(stored, bool) == isinstance(wanted, bool) and stored == wanted


def _holds(stored: Any, wanted: Any) -> bool:
    """A field matches a value if it equals it or, for a list of strings, contains it."""
    if isinstance(stored, list):
        return any(_same(item, wanted) for item in stored)
    return stored is not _MISSING and _same(stored, wanted)


def _json_type(value: Any) -> str:
    names: dict[type, str] = {dict: "an object", list: "an array", str: "a string"}
    return names.get(type(value), repr(value))


# -- the store -----------------------------------------------------------------------------


_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS namespaces (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS vectors (
    namespace TEXT NOT NULL,
    id TEXT NOT NULL,
    dense BLOB NOT NULL,
    norm REAL NOT NULL,
    sparse TEXT,
    metadata TEXT,
    PRIMARY KEY (namespace, id)
) WITHOUT ROWID;
"""


class VectorStore:
    """Vectors by namespace: SQLite (WAL) is the truth, an in-memory copy serves the reads.

    One lock guards both. A write commits to SQLite before it touches memory, so what a
    client was told is stored survives a crash of the process.
    """

    def __init__(self, path: Path, dimension: int, metric: str) -> None:
        self.path = path
        self.dimension = dimension
        self.metric = metric
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # durable across a process crash
        self._db.executescript(_SCHEMA)
        self._check_settings()
        self._namespaces: dict[str, dict[str, Record]] = self._load()

    def _check_settings(self) -> None:
        stored = dict(self._db.execute("SELECT key, value FROM settings").fetchall())
        wanted = {"dimension": str(self.dimension), "metric": self.metric}
        if not stored:
            self._db.executemany("INSERT INTO settings VALUES (?, ?)", wanted.items())
        elif stored != wanted:
            self._db.close()
            raise ConfigError(
                f"index data in {self.path} was created with dimension {stored['dimension']} "
                f"and metric {stored['metric']}, not dimension {self.dimension} and metric "
                f"{self.metric}; start with those, or point --data at an empty folder"
            )

    def _load(self) -> dict[str, dict[str, Record]]:
        spaces: dict[str, dict[str, Record]] = {
            name: {} for (name,) in self._db.execute("SELECT name FROM namespaces")
        }
        rows = self._db.execute("SELECT namespace, id, dense, norm, sparse, metadata FROM vectors")
        for namespace, vector_id, dense, norm, sparse, metadata in rows:
            values = array("d")
            values.frombytes(dense)
            record = Record(values, norm, _sparse_from_json(sparse), _loads(metadata))
            spaces.setdefault(namespace, {})[vector_id] = record
        return spaces

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # reads: snapshots of immutable records, so scoring runs outside the lock
    def counts(self) -> dict[str, int]:
        with self._lock:
            return {name: len(records) for name, records in self._namespaces.items()}

    def exists(self, namespace: str) -> bool:
        with self._lock:
            return namespace in self._namespaces

    def items(self, namespace: str) -> list[tuple[str, Record]]:
        with self._lock:
            return list(self._namespaces.get(namespace, {}).items())

    def ids(self, namespace: str) -> list[str]:
        with self._lock:
            return list(self._namespaces.get(namespace, {}))

    def get(self, namespace: str, ids: Iterable[str]) -> dict[str, Record]:
        with self._lock:
            records = self._namespaces.get(namespace, {})
            return {i: records[i] for i in ids if i in records}

    # writes
    def put(self, namespace: str, records: Mapping[str, Record]) -> None:
        with self._lock:
            self._write(namespace, records)

    def modify(self, namespace: str, ids: Iterable[str], change: Callable[[Record], Record]) -> int:
        """Replace each stored record among `ids` by `change(record)`, atomically; the count."""
        with self._lock:
            records = self._namespaces.get(namespace, {})
            changed = {i: change(records[i]) for i in ids if i in records}
            self._write(namespace, changed)
        return len(changed)

    def _write(self, namespace: str, records: Mapping[str, Record]) -> None:
        rows = [
            (
                namespace,
                i,
                r.values.tobytes(),
                r.norm,
                _sparse_to_json(r.sparse),
                _dumps(r.metadata),
            )
            for i, r in records.items()
        ]
        with self._transaction():
            self._db.execute("INSERT OR IGNORE INTO namespaces VALUES (?)", (namespace,))
            self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?,?,?,?,?,?)", rows)
        self._namespaces.setdefault(namespace, {}).update(records)

    def delete(self, namespace: str, ids: Iterable[str]) -> None:
        doomed = list(ids)
        with self._lock:
            with self._transaction():
                self._db.executemany(
                    "DELETE FROM vectors WHERE namespace = ? AND id = ?",
                    [(namespace, i) for i in doomed],
                )
            records = self._namespaces.get(namespace, {})
            for vector_id in doomed:
                records.pop(vector_id, None)

    def clear(self, namespace: str, drop: bool = False) -> None:
        """Delete every vector of `namespace`; `drop` deletes the namespace itself too."""
        with self._lock:
            with self._transaction():
                self._db.execute("DELETE FROM vectors WHERE namespace = ?", (namespace,))
                if drop:
                    self._db.execute("DELETE FROM namespaces WHERE name = ?", (namespace,))
            if drop:
                self._namespaces.pop(namespace, None)
            elif namespace in self._namespaces:
                self._namespaces[namespace] = {}

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN ... COMMIT, or ROLLBACK if the block raised. Callers update memory after it."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _sparse_to_json(sparse: Sparse | None) -> str | None:
    return None if sparse is None else _dumps([list(sparse[0]), list(sparse[1])])


def _sparse_from_json(text: str | None) -> Sparse | None:
    if text is None:
        return None
    indices, values = json.loads(text)
    return tuple(indices), tuple(values)


# -- wire models (Pinecone's camelCase JSON) -----------------------------------------------


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class SparseValuesIn(_Wire):
    indices: list[NonNegativeInt]
    values: list[FiniteFloat]

    def checked(self) -> Sparse:
        if len(self.indices) != len(self.values):
            raise bad_request(
                f"sparse values have {len(self.indices)} indices but {len(self.values)} values; "
                "they must be the same length"
            )
        if len(set(self.indices)) != len(self.indices):
            raise bad_request("sparse values have duplicate indices")
        return tuple(self.indices), tuple(self.values)


class VectorIn(_Wire):
    id: Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]
    values: list[FiniteFloat] = []
    sparse_values: SparseValuesIn | None = None
    metadata: Metadata | None = None


class UpsertRequest(_Wire):
    vectors: Annotated[list[VectorIn], Field(max_length=MAX_UPSERT_BATCH)]
    namespace: str = ""


class QueryRequest(_Wire):
    top_k: Annotated[int, Field(ge=1, le=MAX_TOP_K)]
    namespace: str = ""
    vector: list[FiniteFloat] | None = None
    id: str | None = None
    sparse_vector: SparseValuesIn | None = None
    filter: dict[str, Any] | None = None
    include_values: bool = False
    include_metadata: bool = False


class DeleteRequest(_Wire):
    ids: list[str] | None = None
    delete_all: bool = False
    filter: dict[str, Any] | None = None
    namespace: str = ""


class UpdateRequest(_Wire):
    id: str | None = None
    values: list[FiniteFloat] | None = None
    sparse_values: SparseValuesIn | None = None
    set_metadata: Metadata | None = None
    filter: dict[str, Any] | None = None
    namespace: str = ""
    dry_run: bool = False


class StatsRequest(_Wire):
    filter: dict[str, Any] | None = None


# -- the index: request semantics over the store -------------------------------------------


def canonical_namespace(name: str | None) -> str:
    return "" if name in (None, DEFAULT_NAMESPACE_ALIAS) else str(name)


def stats_namespace(name: str) -> str:
    return name or DEFAULT_NAMESPACE_ALIAS


class VectorIndex:
    """Pinecone's data-plane operations, validated as Pinecone validates them."""

    def __init__(self, store: VectorStore, region: str) -> None:
        self.store = store
        self.region = region
        self.dimension = store.dimension
        self.metric = store.metric

    # validation
    def check_dense(self, values: Sequence[float], what: str = "Vector") -> None:
        if len(values) != self.dimension:
            raise bad_request(
                f"{what} dimension {len(values)} does not match the dimension of the index "
                f"{self.dimension}"
            )
        if self.metric == "cosine" and not any(values):
            raise bad_request(
                f"{what} has only zeros; a cosine index needs at least one non-zero value"
            )

    def record(self, vector: VectorIn) -> Record:
        self.check_dense(vector.values)
        sparse = vector.sparse_values.checked() if vector.sparse_values else None
        if vector.metadata is not None:
            check_metadata(vector.metadata, vector.id)
        return Record.build(vector.values, sparse, vector.metadata)

    # operations
    def upsert(self, request: UpsertRequest) -> dict[str, Any]:
        records = {vector.id: self.record(vector) for vector in request.vectors}
        self.store.put(canonical_namespace(request.namespace), records)
        return {"upsertedCount": len(request.vectors)}

    def query(self, request: QueryRequest) -> dict[str, Any]:
        namespace = canonical_namespace(request.namespace)
        predicate = compile_filter(request.filter) if request.filter else None
        vector = self._query_vector(request, namespace)
        matches: list[dict[str, Any]] = []
        if vector is not None:
            sparse = request.sparse_vector.checked() if request.sparse_vector else None
            score = self._scorer(vector, sparse)
            candidates = self.store.items(namespace)
            if predicate is not None:
                candidates = [c for c in candidates if predicate(c[1].metadata or {})]
            for vector_id, record, value in self._rank(candidates, score, request.top_k):
                match = record.to_json(vector_id, request.include_values, request.include_metadata)
                matches.append({**match, "score": value})
        return {"matches": matches, "namespace": request.namespace, "usage": {"readUnits": 5}}

    def _query_vector(self, request: QueryRequest, namespace: str) -> Sequence[float] | None:
        """The dense vector to rank by; None when querying by an id the namespace lacks."""
        if request.id is not None and request.vector is not None:
            raise bad_request("Cannot provide both 'ID' and 'vector' at the same time")
        if request.id is not None:
            found = self.store.get(namespace, [request.id]).get(request.id)
            return None if found is None else found.values
        if request.vector is None:
            raise bad_request("a query needs a dense 'vector' or an 'id'")
        self.check_dense(request.vector, "Query vector")
        if request.sparse_vector is not None and self.metric != "dotproduct":
            raise bad_request(
                f"a sparse-dense query needs an index with metric dotproduct, not {self.metric}"
            )
        return request.vector

    def _scorer(self, query: Sequence[float], sparse: Sparse | None) -> Callable[[Record], float]:
        if self.metric == "cosine":
            query_norm = math.sqrt(dot(query, query))
            return lambda r: dot(query, r.values) / (query_norm * r.norm)
        if self.metric == "euclidean":  # Pinecone's score: the squared distance
            return lambda r: sum((a - b) * (a - b) for a, b in zip(query, r.values, strict=True))
        if sparse is None:
            return lambda r: dot(query, r.values)
        weights = dict(zip(*sparse, strict=True))
        return lambda r: dot(query, r.values) + _sparse_dot(weights, r.sparse)

    def _rank(
        self, candidates: list[tuple[str, Record]], score: Callable[[Record], float], top_k: int
    ) -> list[tuple[str, Record, float]]:
        """Best first; ties go to the smaller id, so the order does not depend on history."""
        scored = [(vector_id, record, score(record)) for vector_id, record in candidates]
        sign = 1.0 if self.metric == "euclidean" else -1.0  # euclidean: smaller is closer
        return heapq.nsmallest(top_k, scored, key=lambda s: (sign * s[2], s[0]))

    def fetch(self, ids: list[str], namespace: str) -> dict[str, Any]:
        if not ids:
            raise bad_request("fetch needs at least one id")
        if len(ids) > MAX_FETCH_IDS:
            raise bad_request(f"fetch takes at most {MAX_FETCH_IDS} ids, got {len(ids)}")
        found = self.store.get(canonical_namespace(namespace), ids)
        vectors = {vector_id: record.to_json(vector_id) for vector_id, record in found.items()}
        return {"vectors": vectors, "namespace": namespace, "usage": {"readUnits": 1}}

    def list_ids(
        self, namespace: str, prefix: str, limit: int, token: str | None
    ) -> dict[str, Any]:
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise bad_request(f"limit must be between 1 and {MAX_LIST_LIMIT}, got {limit}")
        after = decode_token(token) if token else None
        wanted = (
            i
            for i in self.store.ids(canonical_namespace(namespace))
            if i.startswith(prefix) and (after is None or i > after)
        )
        page = heapq.nsmallest(limit + 1, wanted)
        body: dict[str, Any] = {
            "vectors": [{"id": i} for i in page[:limit]],
            "namespace": namespace,
            "usage": {"readUnits": 1},
        }
        if len(page) > limit:
            body["pagination"] = {"next": encode_token(page[limit - 1])}
        return body

    def delete(self, request: DeleteRequest) -> dict[str, Any]:
        selectors = [request.ids is not None, request.delete_all, request.filter is not None]
        if sum(selectors) != 1:
            raise bad_request("give exactly one of ids, deleteAll or filter")
        namespace = canonical_namespace(request.namespace)
        if not self.store.exists(namespace):
            raise not_found("Namespace not found")
        if request.delete_all:
            self.store.clear(namespace)
        elif request.ids is not None:
            self.store.delete(namespace, request.ids)
        else:
            if not request.filter:
                raise bad_request("Delete with empty metadata filter is not allowed")
            self.store.delete(namespace, self._matching(namespace, request.filter))
        return {}

    def update(self, request: UpdateRequest) -> dict[str, Any]:
        if (request.id is None) == (request.filter is None):
            raise bad_request("Exactly one of id or filter must be provided")
        namespace = canonical_namespace(request.namespace)
        if request.set_metadata is not None:
            check_metadata(request.set_metadata, request.id or "(filter)")
        if request.id is not None:
            self._update_one(namespace, request.id, request)
            return {}
        if request.values is not None or request.sparse_values is not None:
            raise bad_request("Update by metadata request does not support updating vector values.")
        if not request.filter:
            raise bad_request("Update with empty metadata filter is not allowed")
        matched = self._matching(namespace, request.filter)
        if not request.dry_run and request.set_metadata:
            patch = request.set_metadata
            self.store.modify(namespace, matched, lambda record: _patched(record, patch))
        return {"matchedRecords": len(matched)}

    def _update_one(self, namespace: str, vector_id: str, request: UpdateRequest) -> None:
        """Patch one vector; an id the namespace does not hold is left alone (a no-op)."""
        if request.values is not None:
            self.check_dense(request.values)
        sparse = request.sparse_values.checked() if request.sparse_values is not None else None

        def change(record: Record) -> Record:
            if request.values is not None:
                record = Record.build(request.values, record.sparse, record.metadata)
            if sparse is not None:
                record = replace(record, sparse=sparse)
            if request.set_metadata:
                record = _patched(record, request.set_metadata)
            return record

        self.store.modify(namespace, [vector_id], change)

    def _matching(self, namespace: str, expression: dict[str, Any]) -> list[str]:
        predicate = compile_filter(expression)
        return [i for i, r in self.store.items(namespace) if predicate(r.metadata or {})]

    def stats(self, request: StatsRequest) -> dict[str, Any]:
        if request.filter:
            raise bad_request("describe_index_stats does not take a filter on this index")
        counts = self.store.counts()
        return {
            "namespaces": {stats_namespace(n): {"vectorCount": c} for n, c in counts.items()},
            "dimension": self.dimension,
            "indexFullness": 0.0,
            "totalVectorCount": sum(counts.values()),
            "metric": self.metric,
            "vectorType": "dense",
        }

    def describe_namespace(self, name: str) -> dict[str, Any]:
        count = self.store.counts().get(canonical_namespace(name))
        if count is None:
            raise not_found("Namespace not found")
        return {"name": name, "record_count": str(count)}

    def delete_namespace(self, name: str) -> dict[str, Any]:
        namespace = canonical_namespace(name)
        if not self.store.exists(namespace):
            raise not_found("Namespace not found")
        self.store.clear(namespace, drop=True)
        return {}

    def health(self) -> dict[str, Any]:
        counts = self.store.counts()
        return {
            "status": "ok",
            "region": self.region,
            "dimension": self.dimension,
            "metric": self.metric,
            "totalVectorCount": sum(counts.values()),
            "namespaces": {stats_namespace(n): c for n, c in counts.items()},
        }


def _sparse_dot(weights: Mapping[int, float], sparse: Sparse | None) -> float:
    if sparse is None:
        return 0.0
    return sum(weights.get(i, 0.0) * v for i, v in zip(*sparse, strict=True))


def _patched(record: Record, patch: Metadata) -> Record:
    return replace(record, metadata={**(record.metadata or {}), **patch})


def check_metadata(metadata: Metadata, vector_id: str) -> None:
    """Pinecone's metadata rules: flat; values are strings, numbers, booleans, string lists."""
    for key, value in metadata.items():
        fine = isinstance(value, str | bool) or _is_number(value)
        if isinstance(value, list):
            fine = all(isinstance(item, str) for item in value)
        if not fine:
            raise bad_request(
                f"Metadata value must be a string, number, boolean or list of strings, got "
                f"{json.dumps(value)} for field {key!r} of vector {vector_id!r}"
            )
    size = len(json.dumps(metadata, separators=(",", ":")).encode())
    if size > MAX_METADATA_BYTES:
        raise bad_request(
            f"Metadata size is {size} bytes, which exceeds the limit of {MAX_METADATA_BYTES} "
            f"bytes per vector (vector {vector_id!r})"
        )


def encode_token(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode()


def decode_token(token: str) -> str:
    try:
        return base64.b64decode(token.encode(), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise bad_request(f"paginationToken {token!r} is not one this index gave out") from None


# -- the HTTP app --------------------------------------------------------------------------


def create_app(
    data_dir: str | os.PathLike[str],
    region: str,
    dimension: int = DIMENSION,
    metric: str = "cosine",
) -> FastAPI:
    """The index server for `region`, storing its vectors in `data_dir` (created if missing).

    Raises ConfigError for a bad dimension or metric, or for a data folder made with others.
    """
    index = VectorIndex(open_store(Path(data_dir), dimension, metric), region)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        index.store.close()

    app = FastAPI(title=f"drkit lab index ({region})", lifespan=lifespan, openapi_url=None)
    app.state.index = index
    _add_error_handlers(app)
    _add_routes(app, index)
    return app


def open_store(data_dir: Path, dimension: int, metric: str) -> VectorStore:
    if isinstance(dimension, bool) or not 1 <= dimension <= MAX_DIMENSION:
        raise ConfigError(f"index dimension must be between 1 and {MAX_DIMENSION}, got {dimension}")
    if metric not in METRICS:
        raise ConfigError(f"unknown index metric {metric!r}; use one of {', '.join(METRICS)}")
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the index data folder {data_dir} ({exc.strerror}); "
            "pass a --data folder you can write"
        ) from None
    return VectorStore(data_dir / DB_FILE, dimension, metric)


def _add_routes(app: FastAPI, index: VectorIndex) -> None:
    @app.get("/health")
    def health() -> JSONResponse:
        return JSONResponse(index.health())

    @app.post("/describe_index_stats")
    def describe_index_stats(request: StatsRequest) -> JSONResponse:
        return JSONResponse(index.stats(request))

    @app.post("/vectors/upsert")
    def upsert(request: UpsertRequest) -> JSONResponse:
        return JSONResponse(index.upsert(request))

    @app.post("/query")
    def query(request: QueryRequest) -> JSONResponse:
        return JSONResponse(index.query(request))

    @app.get("/vectors/fetch")
    def fetch(
        ids: Annotated[list[str] | None, Query()] = None, namespace: str = ""
    ) -> JSONResponse:
        return JSONResponse(index.fetch(ids or [], namespace))

    @app.get("/vectors/list")
    def list_vectors(
        namespace: str = "",
        prefix: str = "",
        limit: int = MAX_LIST_LIMIT,
        pagination_token: Annotated[str | None, Query(alias="paginationToken")] = None,
    ) -> JSONResponse:
        return JSONResponse(index.list_ids(namespace, prefix, limit, pagination_token))

    @app.post("/vectors/delete")
    def delete(request: DeleteRequest) -> JSONResponse:
        return JSONResponse(index.delete(request))

    @app.post("/vectors/update")
    def update(request: UpdateRequest) -> JSONResponse:
        return JSONResponse(index.update(request))

    @app.get("/namespaces/{name}")
    def describe_namespace(name: str) -> JSONResponse:
        return JSONResponse(index.describe_namespace(name))

    @app.delete("/namespaces/{name}")
    def delete_namespace(name: str) -> JSONResponse:
        return JSONResponse(index.delete_namespace(name))


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(IndexApiError)
    async def api_error(_: Request, exc: IndexApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        return bad_request(f"invalid request: {_describe_validation(exc)}").response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = NOT_FOUND if exc.status_code == 404 else UNIMPLEMENTED
        message = f"{exc.detail}: {request.method} {request.url.path} is not served by this index"
        return IndexApiError(exc.status_code, code, message).response()


def _describe_validation(exc: RequestValidationError) -> str:
    """Pydantic's errors as `field.path: problem`, e.g. `body.vectors.0.id: Field required`."""
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(part) for part in error.get("loc", ()))
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts)


# -- command line --------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m drkit.lab.index_server", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, required=True, help="port to listen on")
    parser.add_argument("--data", type=Path, required=True, help="folder for index.sqlite3")
    parser.add_argument("--region", required=True, help="the lab region this index serves")
    parser.add_argument("--dimension", type=int, default=DIMENSION, help="vector dimension")
    parser.add_argument("--metric", choices=METRICS, default="cosine", help="similarity")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s index-server %(message)s"
    )
    try:
        app = create_app(args.data, args.region, args.dimension, args.metric)
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    vectors = app.state.index.health()["totalVectorCount"]
    log.info(
        "%s: starting on http://%s:%d (dimension %d, %s), %d vectors in %s",
        *(args.region, args.host, args.port, args.dimension, args.metric, vectors, args.data),
    )
    return serve(app, args.host, args.port, args.region)


def serve(app: FastAPI, host: str, port: int, region: str) -> int:
    """Run until SIGTERM or SIGINT (then exit 0); a port that cannot be bound exits non-zero."""
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    )
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_zero)
    try:
        server.run()  # finishes in-flight requests on SIGTERM, then delivers it again
    except SystemExit as stop:
        if stop.code:
            raise  # uvicorn could not bind and has logged why
    log.info("%s: stopped", region)
    return 0


def _exit_zero(signum: int, _: FrameType | None) -> None:
    """uvicorn re-delivers the signal that stopped it; a stop that was asked for is exit 0."""
    raise SystemExit(0)


if __name__ == "__main__":
    sys.exit(main())
