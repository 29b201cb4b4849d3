"""`reconcile` against in-memory twins of a database and an index; vector records; addresses."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest

from drkit.config import LabPorts, LabSettings
from drkit.lab.embedding import DIMENSION, embed
from drkit.lab.seed import generate_documents
from drkit.lab.sut import (
    DOCUMENT_SELECT,
    LIST_PAGE,
    StoredDocument,
    api_url,
    index_url,
    reconcile,
    vector_record,
)

pytestmark = pytest.mark.unit


class TwinDatabase:
    """Answers the two queries `reconcile` makes, from a list of stored documents."""

    def __init__(self, stored: Sequence[StoredDocument]) -> None:
        self.rows = {s.document.id: s for s in stored}

    async def execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        if sql == "SELECT id, content_hash FROM documents":
            rows = [(i, s.content_hash) for i, s in self.rows.items()]
        elif sql.startswith(DOCUMENT_SELECT + " WHERE id = ANY"):
            rows = [self._row(self.rows[i]) for i in params[0] if i in self.rows]
        else:
            raise AssertionError(f"unexpected query {sql!r}")
        return SimpleNamespace(fetchall=lambda: _done(rows))

    @staticmethod
    def _row(s: StoredDocument) -> tuple[Any, ...]:
        d = s.document
        fields = (d.id, d.title, d.body, d.source, d.as_of, d.doc_type, d.issuer, d.ticker)
        return (*fields, s.content_hash, s.seq, None, None)


async def _done(value: Any) -> Any:
    return value


class TwinIndex:
    """The slice of the SDK's AsyncIndex that `reconcile` uses, over a dict."""

    def __init__(self, vectors: dict[str, dict[str, Any]]) -> None:
        self.vectors = vectors
        self.upserted: list[str] = []
        self.deleted: list[str] = []

    async def list_paginated(self, limit: int, pagination_token: str | None, namespace: str) -> Any:
        ids = sorted(i for i in self.vectors if pagination_token is None or i > pagination_token)
        page = ids[:limit]
        more = len(ids) > limit
        return SimpleNamespace(
            vectors=[SimpleNamespace(id=i) for i in page],
            pagination=SimpleNamespace(next=page[-1]) if more else None,
        )

    async def fetch(self, ids: list[str], namespace: str) -> Any:
        found = {i: SimpleNamespace(metadata=self.vectors[i]["metadata"]) for i in ids}
        return SimpleNamespace(vectors=found)

    async def delete(self, ids: list[str], namespace: str) -> None:
        for i in ids:
            self.vectors.pop(i, None)
        self.deleted += ids

    async def upsert(self, vectors: list[dict[str, Any]], namespace: str, **_: Any) -> None:
        for vector in vectors:
            self.vectors[vector["id"]] = vector
        self.upserted += [v["id"] for v in vectors]


def stored(count: int) -> list[StoredDocument]:
    return [
        StoredDocument(doc, doc.content_hash(), seq, None, None)
        for seq, doc in enumerate(generate_documents(count), start=1)
    ]


def test_reconcile_upserts_missing_and_stale_vectors_and_deletes_extra_ones() -> None:
    docs = stored(LIST_PAGE + 30)  # more than one list page
    index = TwinIndex({s.document.id: vector_record(s) for s in docs[5:]})
    index.vectors[docs[6].document.id]["metadata"]["content_hash"] = "sha256:stale"
    index.vectors["ghost"] = {"id": "ghost", "values": [], "metadata": {"content_hash": "x"}}

    report = asyncio.run(reconcile(TwinDatabase(docs), index, "us-west-2"))  # type: ignore[arg-type]

    assert (report.missing, report.stale, report.extra) == (5, 1, 1)
    assert report.sample["extra"] == ["ghost"] and report.changed
    assert sorted(index.upserted) == sorted(
        [s.document.id for s in docs[:5]] + [docs[6].document.id]
    )
    assert {i: v["metadata"]["content_hash"] for i, v in index.vectors.items()} == {
        s.document.id: s.content_hash for s in docs
    }


def test_reconcile_changes_nothing_when_the_index_already_matches() -> None:
    docs = stored(12)
    index = TwinIndex({s.document.id: vector_record(s) for s in docs})
    report = asyncio.run(reconcile(TwinDatabase(docs), index, "us-east-1"))  # type: ignore[arg-type]
    assert not report.changed and index.upserted == index.deleted == []
    assert (report.database_rows, report.index_vectors_before) == (12, 12)


def test_a_vector_record_carries_the_embedding_and_the_content_hash() -> None:
    [s] = stored(1)
    record = vector_record(s)
    assert record["id"] == s.document.id and len(record["values"]) == DIMENSION
    assert record["values"] == embed(s.document.embedding_text())
    assert record["metadata"]["content_hash"] == s.content_hash
    assert None not in record["metadata"].values()  # Pinecone refuses null metadata


def test_services_are_reached_at_the_proxy_for_their_source() -> None:
    settings = LabSettings(ports=LabPorts(28400))
    assert api_url(settings, "us-east-1") == "http://127.0.1.20:28480"
    assert index_url(settings, "us-west-2", source="us-west-2") == "http://127.0.2.12:28481"
    assert index_url(settings, "us-west-2") == "http://127.0.2.1:28481"  # the backend itself
