"""The system under test on the real lab: ingest and cross-region query, the standby's refusal
and promotion, index replication, pool recovery, reset to consistency, status and secrets.

Each test starts from `fresh_lab`; a test that changes the topology resets it again after.
Seeding 5,000 documents makes the session lab slower to start; DRKIT_LAB_SEED_DOCS=500 keeps
these tests quick and changes nothing they check.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pinecone import Pinecone

from drkit.clients.toxiproxy import Toxic
from drkit.lab.lab import Lab
from drkit.lab.process import cmdline, wait_until
from drkit.lab.seed import seed_document
from drkit.lab.sut import api_url, database_hashes, index_hashes, index_url, reconcile_index
from drkit.lab.topology import REGIONS, proxy_name

pytestmark = pytest.mark.integration

EAST, WEST = REGIONS
SUT_PROCESSES = ("index-us-", "index-replicator-", "rag-")
BLACKHOLE = (
    Toxic("sut-blackhole-down", "timeout", "downstream", 1.0, {"timeout": 0}),
    Toxic("sut-blackhole-up", "timeout", "upstream", 1.0, {"timeout": 0}),
)


@pytest.fixture
def restored_lab(fresh_lab: Lab) -> Iterator[Lab]:
    """The fresh lab, reset again after the test (for tests that promote a standby)."""
    yield fresh_lab
    fresh_lab.reset()


def component(lab: Lab, name: str) -> Any:
    found = {c.name: c for c in lab.services()}
    assert name in found, f"no lab component {name!r}; the lab has {sorted(found)}"
    return found[name]


def new_document() -> dict[str, Any]:
    token = uuid.uuid4().hex[:12]
    return {
        "id": f"test-{token}",
        "title": f"Counterparty exposure memo {token}",
        "body": f"Exposure to Kestrel Securities reviewed under limit {token}.",
        "source": "risk desk",
        "as_of": "2025-06-30",
        "doc_type": "research_note",
        "ticker": "NWCH",
    }


def post(lab: Lab, region: str, doc: dict[str, Any], timeout: float = 10) -> httpx.Response:
    return httpx.post(f"{api_url(lab.settings, region)}/documents", json=doc, timeout=timeout)


def query(lab: Lab, region: str, text: str) -> httpx.Response:
    params = {"q": text, "top_k": 3}
    return httpx.get(f"{api_url(lab.settings, region)}/query", params=params, timeout=10)


def found_by_query(lab: Lab, region: str, doc: dict[str, Any]) -> bool:
    response = query(lab, region, f"{doc['title']} {doc['body']}")
    if response.status_code != 200:
        return False
    return doc["id"] in [r["id"] for r in response.json()["results"]]


def in_index(lab: Lab, region: str, ids: list[str]) -> dict[str, str]:
    """id -> content hash of those `ids` in `region`'s index (read through the real SDK)."""
    index = Pinecone(api_key="lab").Index(host=index_url(lab.settings, region))
    vectors = index.fetch(ids=ids).vectors
    return {i: str((v.metadata or {}).get("content_hash")) for i, v in vectors.items()}


def test_a_document_ingested_in_us_east_1_is_found_through_both_regions(fresh_lab: Lab) -> None:
    doc = new_document()
    response = post(fresh_lab, EAST, doc)
    assert response.status_code == 201, response.text
    ack = response.json()
    assert (ack["outcome"], ack["id"], ack["region"]) == ("acknowledged", doc["id"], EAST)
    assert ack["commit_time"] and ack["content_hash"].startswith("sha256:")
    assert response.headers["X-DR-Region"] == EAST
    for region in REGIONS:
        what = f"{doc['id']} in {region}'s query results"
        wait_until(lambda r=region: found_by_query(fresh_lab, r, doc), 10, what)
        answer = query(fresh_lab, region, doc["title"])
        assert answer.json()["region"] == answer.headers["X-DR-Region"] == region
        stored = httpx.get(f"{api_url(fresh_lab.settings, region)}/documents/{doc['id']}").json()
        assert (stored["content_hash"], stored["region"]) == (ack["content_hash"], region)
        assert stored["commit_time"] == ack["commit_time"]


def test_us_west_2_refuses_ingest_while_standby_and_accepts_it_after_promotion(
    restored_lab: Lab,
) -> None:
    service = component(restored_lab, f"rag-{WEST}")
    pid_before = service.pid()
    doc = new_document()
    refused = post(restored_lab, WEST, doc)
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"] == "database is a standby"
    assert "promoted" in refused.json()["reason"]
    assert httpx.get(f"{api_url(restored_lab.settings, WEST)}/documents/{doc['id']}").is_error

    restored_lab.database.west.query("SELECT pg_promote()")
    wait_until(lambda: post(restored_lab, WEST, doc).status_code == 201, 10, "a write on us-west-2")

    assert service.pid() == pid_before, "the RAG service was restarted to accept writes"
    health = httpx.get(f"{api_url(restored_lab.settings, WEST)}/health").json()
    assert health["role"] == "primary"


def test_the_index_replicator_catches_up_after_being_stopped_and_restarted(
    fresh_lab: Lab,
) -> None:
    replicator = component(fresh_lab, f"index-replicator-{WEST}")
    replicator.stop()
    try:
        docs = [new_document() for _ in range(10)]
        acks = {d["id"]: post(fresh_lab, EAST, d).json()["content_hash"] for d in docs}
        wait_until(
            lambda: acks.keys() <= database_hashes(fresh_lab, WEST).keys(),
            10,
            "the writes to reach us-west-2's database",
        )
        assert in_index(fresh_lab, WEST, list(acks)) == {}, "copied with the replicator stopped"
    finally:
        replicator.start()
    wait_until(
        lambda: in_index(fresh_lab, WEST, list(acks)) == acks,
        15,
        "us-west-2's index to catch up after the replicator restarted",
    )


def test_the_rag_service_pool_recovers_after_its_db_proxy_is_blackholed_and_healed(
    fresh_lab: Lab,
) -> None:
    service = component(fresh_lab, f"rag-{EAST}")
    pid_before = service.pid()
    assert post(fresh_lab, EAST, new_document()).status_code == 201  # pooled connections live
    name = proxy_name(EAST, "db", EAST)
    client = fresh_lab.toxiproxy.client()
    for toxic in BLACKHOLE:
        client.add_toxic(name, toxic)
    try:
        health = httpx.get(f"{api_url(fresh_lab.settings, EAST)}/health", timeout=4)
        assert health.status_code == 503
        assert health.json()["dependencies"]["database"]["status"] == "unavailable"
        write = post(fresh_lab, EAST, new_document(), timeout=6)
        assert write.status_code == 503, write.text
        assert write.json()["outcome"] == "refused"
    finally:
        for toxic in BLACKHOLE:
            client.remove_toxic(name, toxic.name)
    doc = new_document()
    wait_until(lambda: post(fresh_lab, EAST, doc).status_code == 201, 15, "a write after the heal")
    assert service.pid() == pid_before, "the RAG service was restarted to recover"
    assert httpx.get(f"{api_url(fresh_lab.settings, EAST)}/health").status_code == 200


def test_a_write_whose_index_upsert_fails_is_indeterminate_but_committed_and_replicated(
    fresh_lab: Lab,
) -> None:
    name = proxy_name(EAST, "index", EAST)
    client = fresh_lab.toxiproxy.client()
    doc = new_document()
    for toxic in BLACKHOLE:
        client.add_toxic(name, toxic)
    try:
        response = post(fresh_lab, EAST, doc, timeout=6)
    finally:
        for toxic in BLACKHOLE:
            client.remove_toxic(name, toxic.name)
    assert response.status_code == 502, response.text
    body = response.json()
    assert (body["outcome"], body["committed"], body["indexed"]) == ("indeterminate", True, False)
    assert doc["id"] in database_hashes(fresh_lab, EAST)
    wait_until(
        lambda: doc["id"] in in_index(fresh_lab, WEST, [doc["id"]]),
        10,
        "us-west-2's replicator to index the committed row",
    )
    assert in_index(fresh_lab, EAST, [doc["id"]]) == {}
    report = reconcile_index(fresh_lab, EAST)
    assert report.missing == 1 and in_index(fresh_lab, EAST, [doc["id"]]) != {}


def test_reset_after_a_promotion_and_writes_on_us_west_2_leaves_both_regions_consistent(
    fresh_lab: Lab,
) -> None:
    fresh_lab.database.west.query("SELECT pg_promote()")
    west_only = [new_document() for _ in range(3)]
    for doc in west_only:
        wait_until(lambda d=doc: post(fresh_lab, WEST, d).status_code == 201, 10, "a west write")
    assert post(fresh_lab, EAST, new_document()).status_code == 201  # the regions diverge
    assert database_hashes(fresh_lab, EAST) != database_hashes(fresh_lab, WEST)

    fresh_lab.reset()

    databases = {region: database_hashes(fresh_lab, region) for region in REGIONS}
    indexes = {region: index_hashes(fresh_lab, region) for region in REGIONS}
    assert databases[EAST] == databases[WEST] == indexes[EAST] == indexes[WEST]
    assert not {d["id"] for d in west_only} & databases[EAST].keys()


def test_lab_status_shows_vector_counts_and_each_service_role(fresh_lab: Lab) -> None:
    components = {c["component"]: c for c in fresh_lab.status()["components"]}
    counts = components["documents"]["counts"]
    for region in REGIONS:
        assert components[f"index-{region}"]["vectors"] == counts[region]["database_rows"]
    assert components[f"rag-{EAST}"]["service"]["role"] == "primary"
    assert components[f"rag-{WEST}"]["service"]["role"] == "standby"
    assert components[f"index-replicator-{WEST}"]["replicator"]["state"] == "following"
    seeded = [i for i in database_hashes(fresh_lab, EAST) if i.startswith("seed-")]
    assert components["documents"]["seeded_documents"] == len(seeded) > 0


def test_seed_documents_are_in_both_regions_with_their_generated_content(fresh_lab: Lab) -> None:
    expected = seed_document(0)
    for region in REGIONS:
        url = f"{api_url(fresh_lab.settings, region)}/documents/{expected.id}"
        stored = httpx.get(url).json()
        assert (stored["title"], stored["content_hash"]) == (
            expected.title,
            expected.content_hash(),
        )
        assert in_index(fresh_lab, region, [expected.id]) == {expected.id: stored["content_hash"]}


def test_no_password_shows_in_command_lines_status_or_logs(fresh_lab: Lab) -> None:
    passwords = json.loads((fresh_lab.state / "secrets.json").read_text()).values()
    post(fresh_lab, WEST, new_document())  # a refusal, so the logs have something to say
    ours = [c for c in fresh_lab.services() if c.name.startswith(SUT_PROCESSES)]
    texts = {
        "status": json.dumps(fresh_lab.status(), default=str),
        **{f"{c.name} command line": cmdline(c.pid()) for c in ours},
        **{f"{c.name} log": c.log_file.read_text(errors="replace") for c in ours},
    }
    assert len(ours) == 6 and all(c.pid() for c in ours)
    for where, text in texts.items():
        assert not [p for p in passwords if p in text], f"a password shows in the {where}"
