"""The lab's index server as a real process, driven through the real `pinecone` SDK.

Each test starts `python -m drkit.lab.index_server` on a free port of 127.0.0.1 with its own
data folder, so tests share nothing; starting one takes about a third of a second.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pinecone import Index, NotFoundException, Pinecone, PineconeApiException

from drkit.lab.index_server import create_app

pytestmark = pytest.mark.integration

DIMENSION = 4
START_BUDGET_S = 10.0


TRANSFERS: list[dict[str, Any]] = [
    {
        "id": "t1",
        "values": [1.0, 0.0, 0.0, 0.0],
        "metadata": {"site": "us-east-1", "kind": "wire", "amount": 100, "tags": ["eu", "urgent"]},
    },
    {
        "id": "t2",
        "values": [0.9, 0.1, 0.0, 0.0],
        "metadata": {"site": "us-west-2", "kind": "wire", "amount": 2500, "tags": ["us"]},
    },
    {
        "id": "t3",
        "values": [0.0, 1.0, 0.0, 0.0],
        "metadata": {"site": "us-east-1", "kind": "card", "amount": 40, "flagged": True},
    },
    {"id": "t4", "values": [0.0, 0.0, 1.0, 0.0]},
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class IndexServer:
    """One index server process on 127.0.0.1; `stop()` and `start()` again to restart it."""

    def __init__(self, data: Path, port: int, dimension: int = DIMENSION) -> None:
        self.data, self.port, self.dimension = data, port, dimension
        self.url = f"http://127.0.0.1:{port}"
        self.log = data.parent / f"index-{port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        return [
            *(sys.executable, "-m", "drkit.lab.index_server", "--host", "127.0.0.1"),
            *("--port", str(self.port), "--data", str(self.data), "--region", "us-east-1"),
            *("--dimension", str(self.dimension)),
        ]

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=log)
        deadline = time.monotonic() + START_BUDGET_S
        while not self._healthy():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop(signal.SIGKILL)
                pytest.fail(f"index server did not start:\n{self.log.read_text()}", pytrace=False)
            time.sleep(0.02)

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """Signal the process and return its exit code (None if it was not running)."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            return proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise

    def health(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.url}/health", timeout=2.0).json())


@pytest.fixture
def server(tmp_path: Path) -> Iterator[IndexServer]:
    srv = IndexServer(tmp_path / "index", free_port())
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def index(server: IndexServer) -> Iterator[Index]:
    client = Pinecone(api_key="lab").index(host=server.url)
    yield client
    client.close()


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Index]:
    """A shared server holding TRANSFERS in namespace "ledger": for tests that only read."""
    srv = IndexServer(tmp_path_factory.mktemp("ledger") / "index", free_port())
    srv.start()
    client = Pinecone(api_key="lab").index(host=srv.url)
    client.upsert(vectors=TRANSFERS, namespace="ledger")
    yield client
    client.close()
    srv.stop()


def ids(matches: Any) -> list[str]:
    return [m.id for m in matches]


def listed(index: Index, namespace: str) -> list[str]:
    return [str(item.id) for page in index.list(namespace=namespace) for item in page.vectors]


def test_upserts_land_in_their_namespace_and_the_default_one(index: Index) -> None:
    assert index.upsert(vectors=TRANSFERS, namespace="ledger").upserted_count == 4
    assert index.upsert(vectors=[("d1", [0.0, 0.0, 0.0, 1.0], {"k": "v"})]).upserted_count == 1

    stats = index.describe_index_stats()

    counts = {name: ns.vector_count for name, ns in stats.namespaces.items()}
    assert counts == {"ledger": 4, "__default__": 1}
    assert (stats.total_vector_count, stats.dimension, stats.metric) == (5, DIMENSION, "cosine")
    assert stats.vector_type == "dense"


def test_an_upsert_replaces_a_vector_with_the_same_id(index: Index) -> None:
    index.upsert(vectors=TRANSFERS, namespace="ledger")
    index.upsert(vectors=[("t1", [0.0, 0.0, 0.0, 2.0])], namespace="ledger")

    stored = index.fetch(ids=["t1"], namespace="ledger").vectors["t1"]

    assert stored.values == [0.0, 0.0, 0.0, 2.0]
    assert stored.metadata is None  # an upsert replaces the whole record, metadata included
    assert index.describe_index_stats().total_vector_count == 4


def test_batched_upsert_through_the_sdk_counts_every_vector(index: Index) -> None:
    vectors = [(f"v{i:03d}", [1.0, float(i), 0.0, 0.5]) for i in range(250)]

    result = index.upsert(vectors=vectors, batch_size=100, show_progress=False)

    assert (result.upserted_count, result.has_errors) == (250, False)
    assert index.describe_index_stats().namespaces["__default__"].vector_count == 250


def test_query_by_vector_ranks_by_cosine_with_values_and_metadata(ledger: Index) -> None:
    result = ledger.query(
        vector=[1.0, 0.0, 0.0, 0.0],
        top_k=3,
        namespace="ledger",
        include_values=True,
        include_metadata=True,
    )

    assert ids(result.matches) == ["t1", "t2", "t3"]
    assert [round(m.score, 4) for m in result.matches] == [1.0, 0.9939, 0.0]
    assert result.matches[0].values == [1.0, 0.0, 0.0, 0.0]
    assert result.matches[0].metadata == TRANSFERS[0]["metadata"]
    assert result.namespace == "ledger"


def test_query_leaves_values_and_metadata_out_unless_asked(ledger: Index) -> None:
    top = ledger.query(vector=[1.0, 0.0, 0.0, 0.0], top_k=1, namespace="ledger").matches[0]

    assert (top.id, top.values, top.metadata) == ("t1", [], None)


@pytest.mark.parametrize(
    ("filter_", "expected"),
    [
        ({"site": {"$eq": "us-east-1"}}, ["t1", "t3"]),
        ({"site": "us-east-1"}, ["t1", "t3"]),  # implicit $eq
        ({"site": {"$ne": "us-east-1"}}, ["t2", "t4"]),  # t4 has no metadata: not equal
        ({"kind": {"$in": ["card", "cash"]}}, ["t3"]),
        ({"kind": {"$nin": ["wire"]}}, ["t3", "t4"]),
        ({"amount": {"$gt": 40}}, ["t1", "t2"]),
        ({"amount": {"$gte": 40, "$lt": 2500}}, ["t1", "t3"]),
        ({"amount": {"$lte": 100}}, ["t1", "t3"]),
        ({"tags": "urgent"}, ["t1"]),  # a list field matches a value it contains
        ({"tags": {"$in": ["us", "apac"]}}, ["t2"]),
        ({"flagged": True}, ["t3"]),
        ({"flagged": {"$exists": False}}, ["t1", "t2", "t4"]),
        ({"$and": [{"kind": "wire"}, {"amount": {"$gt": 1000}}]}, ["t2"]),
        ({"$or": [{"site": "us-west-2"}, {"kind": "card"}]}, ["t2", "t3"]),
        ({"kind": "wire", "site": "us-east-1"}, ["t1"]),  # several fields: all must hold
        (
            {"$or": [{"$and": [{"kind": "wire"}, {"site": "us-east-1"}]}, {"amount": 40}]},
            ["t1", "t3"],
        ),
    ],
)
def test_query_filters_on_metadata(
    ledger: Index, filter_: dict[str, Any], expected: list[str]
) -> None:
    result = ledger.query(vector=[1.0, 1.0, 1.0, 1.0], top_k=10, namespace="ledger", filter=filter_)

    assert sorted(ids(result.matches)) == expected


def test_a_filter_with_an_unknown_operator_is_a_bad_request(ledger: Index) -> None:
    with pytest.raises(PineconeApiException) as caught:
        ledger.query(vector=[1.0, 0, 0, 0], top_k=1, namespace="ledger", filter={"a": {"$like": 1}})

    assert caught.value.status_code == 400
    assert "$like" in caught.value.message


def test_query_by_id_ranks_by_the_stored_vector(ledger: Index) -> None:
    result = ledger.query(id="t2", top_k=2, namespace="ledger")

    assert ids(result.matches) == ["t2", "t1"]
    assert result.matches[0].score == pytest.approx(1.0)


def test_query_by_an_id_the_namespace_lacks_matches_nothing(ledger: Index) -> None:
    assert ledger.query(id="no-such-id", top_k=3, namespace="ledger").matches == []


def test_fetch_returns_stored_vectors_and_leaves_out_missing_ids(index: Index) -> None:
    index.upsert(vectors=TRANSFERS, namespace="ledger")
    index.upsert(
        vectors=[
            {
                "id": "s1",
                "values": [0.0, 0.0, 0.0, 1.0],
                "sparse_values": {"indices": [1, 5], "values": [0.5, 0.25]},
            }
        ],
        namespace="ledger",
    )

    fetched = index.fetch(ids=["t1", "s1", "missing"], namespace="ledger")

    assert sorted(fetched.vectors) == ["s1", "t1"]
    assert fetched.vectors["t1"].values == TRANSFERS[0]["values"]
    assert fetched.vectors["t1"].metadata == TRANSFERS[0]["metadata"]
    sparse = fetched.vectors["s1"].sparse_values
    assert sparse is not None and (sparse.indices, sparse.values) == ([1, 5], [0.5, 0.25])
    assert index.fetch(ids=["t1"]).vectors == {}  # other namespace


def test_list_pages_through_every_id_exactly_once(index: Index) -> None:
    wanted = [f"doc-{i:02d}" for i in range(25)]
    index.upsert(vectors=[(i, [1.0, 0.0, 0.0, 0.0]) for i in wanted], namespace="docs")
    index.upsert(vectors=[("other", [1.0, 0.0, 0.0, 0.0])], namespace="docs")

    pages = list(index.list(prefix="doc-", limit=10, namespace="docs"))

    assert [len(page.vectors) for page in pages] == [10, 10, 5]
    seen = [item.id for page in pages for item in page.vectors]
    assert seen == wanted  # each once, in id order, without "other"
    assert pages[0].pagination is not None and pages[-1].pagination is None


def test_list_without_a_prefix_in_the_default_namespace(index: Index) -> None:
    index.upsert(vectors=[("b", [1.0, 0, 0, 0]), ("a", [0, 1.0, 0, 0])])

    page = index.list_paginated()

    assert [item.id for item in page.vectors] == ["a", "b"]
    assert page.pagination is None


def test_a_pagination_token_the_index_did_not_give_is_a_bad_request(ledger: Index) -> None:
    with pytest.raises(PineconeApiException, match="paginationToken") as caught:
        ledger.list_paginated(namespace="ledger", pagination_token="%%%")

    assert caught.value.status_code == 400


def test_delete_by_ids_then_delete_all(index: Index) -> None:
    index.upsert(vectors=TRANSFERS, namespace="ledger")

    index.delete(ids=["t1", "t2", "not-there"], namespace="ledger")

    assert sorted(index.fetch(ids=["t1", "t2", "t3"], namespace="ledger").vectors) == ["t3"]
    assert index.describe_index_stats().namespaces["ledger"].vector_count == 2

    index.delete(delete_all=True, namespace="ledger")

    assert index.describe_index_stats().total_vector_count == 0
    assert index.query(vector=[1.0, 0, 0, 0], top_k=5, namespace="ledger").matches == []


def test_delete_by_filter_removes_what_it_matches(index: Index) -> None:
    index.upsert(vectors=TRANSFERS, namespace="ledger")

    index.delete(filter={"kind": "wire"}, namespace="ledger")

    assert listed(index, "ledger") == ["t3", "t4"]


def test_deleting_in_a_namespace_never_written_is_not_found(index: Index) -> None:
    with pytest.raises(NotFoundException) as caught:
        index.delete(delete_all=True, namespace="never-written")

    assert caught.value.status_code == 404
    assert caught.value.message == "Namespace not found"


def test_a_path_the_server_does_not_serve_is_not_found(server: IndexServer) -> None:
    client = Pinecone(api_key="lab").index(host=f"{server.url}/no-such-prefix")
    try:
        with pytest.raises(NotFoundException, match="not served by this index"):
            client.describe_index_stats()
    finally:
        client.close()


def test_a_deleted_namespace_is_gone(index: Index) -> None:
    index.upsert(vectors=TRANSFERS, namespace="ledger")
    assert index.describe_namespace(name="ledger").record_count == 4

    index.delete_namespace(name="ledger")

    assert "ledger" not in index.describe_index_stats().namespaces
    with pytest.raises(NotFoundException):
        index.describe_namespace(name="ledger")


def test_a_dimension_mismatch_is_a_bad_request(index: Index) -> None:
    with pytest.raises(PineconeApiException) as caught:
        index.upsert(vectors=[("short", [0.1, 0.2, 0.3])], namespace="ledger")

    assert type(caught.value) is PineconeApiException  # the SDK's exception for a 400
    assert caught.value.status_code == 400
    assert caught.value.message == "Vector dimension 3 does not match the dimension of the index 4"
    assert caught.value.body == {"code": 3, "message": caught.value.message, "details": []}


def test_an_all_zero_vector_in_a_cosine_index_is_a_bad_request(index: Index) -> None:
    with pytest.raises(PineconeApiException, match="only zeros") as caught:
        index.upsert(vectors=[("z", [0.0, 0.0, 0.0, 0.0])])

    assert caught.value.status_code == 400


def test_metadata_pinecone_refuses_is_refused_by_the_server_too(server: IndexServer) -> None:
    # The SDK checks metadata before sending; other clients reach the server's own check.
    vector = {"id": "m", "values": [1.0, 0, 0, 0], "metadata": {"nested": {"a": 1}}}

    response = httpx.post(f"{server.url}/vectors/upsert", json={"vectors": [vector]})

    assert response.status_code == 400
    assert response.json()["message"].startswith("Metadata value must be a string, number")


def test_update_patches_metadata_and_values(index: Index) -> None:
    index.upsert(vectors=TRANSFERS, namespace="ledger")

    index.update(id="t1", set_metadata={"kind": "reversal"}, namespace="ledger")
    index.update(id="t2", values=[0.0, 0.0, 0.0, 1.0], namespace="ledger")
    preview = index.update(
        filter={"site": "us-east-1"},
        set_metadata={"audited": True},
        namespace="ledger",
        dry_run=True,
    )
    applied = index.update(
        filter={"site": "us-east-1"}, set_metadata={"audited": True}, namespace="ledger"
    )

    fetched = index.fetch(ids=["t1", "t2", "t3"], namespace="ledger").vectors
    assert fetched["t1"].metadata == {
        **TRANSFERS[0]["metadata"],
        "kind": "reversal",
        "audited": True,
    }
    assert fetched["t2"].values == [0.0, 0.0, 0.0, 1.0]
    assert fetched["t2"].metadata == TRANSFERS[1]["metadata"]
    assert fetched["t3"].metadata is not None and fetched["t3"].metadata["audited"] is True
    assert (preview.matched_records, applied.matched_records) == (2, 2)


def test_vectors_survive_a_restart(server: IndexServer) -> None:
    with Pinecone(api_key="lab").index(host=server.url) as client:
        client.upsert(vectors=TRANSFERS, namespace="ledger")
        client.upsert(vectors=[("d1", [0.0, 0.0, 0.0, 1.0])])
        client.delete(ids=["t4"], namespace="ledger")
        before = client.query(
            vector=[1.0, 0.5, 0, 0], top_k=3, namespace="ledger", include_metadata=True
        )

    assert server.stop() == 0  # SIGTERM is a clean stop
    server.start()

    with Pinecone(api_key="lab").index(host=server.url) as client:
        after = client.query(
            vector=[1.0, 0.5, 0, 0], top_k=3, namespace="ledger", include_metadata=True
        )
        stats = client.describe_index_stats()
    assert after.matches == before.matches
    assert {n: s.vector_count for n, s in stats.namespaces.items()} == {
        "ledger": 3,
        "__default__": 1,
    }


def test_acknowledged_upserts_survive_sigkill(server: IndexServer) -> None:
    with Pinecone(api_key="lab").index(host=server.url) as client:
        client.upsert(vectors=TRANSFERS, namespace="ledger")

    assert server.stop(signal.SIGKILL) == -signal.SIGKILL
    server.start()

    assert server.health()["namespaces"] == {"ledger": 4}


def test_health_reports_region_and_counts(server: IndexServer, index: Index) -> None:
    index.upsert(vectors=TRANSFERS, namespace="ledger")

    assert server.health() == {
        "status": "ok",
        "region": "us-east-1",
        "dimension": DIMENSION,
        "metric": "cosine",
        "totalVectorCount": 4,
        "namespaces": {"ledger": 4},
    }


def test_data_made_with_another_dimension_is_refused(server: IndexServer) -> None:
    other = IndexServer(server.data, free_port(), dimension=8)

    run = subprocess.run(other.command(), capture_output=True, text=True, timeout=30)

    assert run.returncode == 2
    assert "created with dimension 4" in run.stderr and "--data" in run.stderr


def test_a_taken_port_makes_the_second_server_fail(server: IndexServer, tmp_path: Path) -> None:
    rival = IndexServer(tmp_path / "rival", server.port)

    run = subprocess.run(rival.command(), capture_output=True, text=True, timeout=30)

    assert run.returncode != 0
    assert "address already in use" in run.stderr.lower()
    assert server.health()["status"] == "ok"


def test_in_process_app_serves_the_same_api(tmp_path: Path) -> None:
    app = create_app(tmp_path, "us-west-2", dimension=2, metric="euclidean")
    vectors = [{"id": "a", "values": [0, 0]}, {"id": "b", "values": [3, 4]}]

    async def upsert_then_query() -> dict[str, Any]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://lab") as http:
            await http.post("/vectors/upsert", json={"vectors": vectors})
            return dict((await http.post("/query", json={"topK": 2, "vector": [3, 3]})).json())

    result = asyncio.run(upsert_then_query())
    app.state.index.store.close()

    # euclidean scores are squared distances, nearest first, as in Pinecone
    assert [(m["id"], m["score"]) for m in result["matches"]] == [("b", 1.0), ("a", 18.0)]
