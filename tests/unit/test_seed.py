"""The lab's seed documents: deterministic, prefix-stable, plausible; the content hash."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from datetime import date

import pytest

from drkit.errors import ConfigError
from drkit.lab.seed import (
    DEFAULT_SEED_DOCS,
    DOC_TYPES,
    ISSUERS,
    SEED_DOCS_ENV,
    Document,
    generate_documents,
    seed_count_from_env,
    seed_document,
)

pytestmark = pytest.mark.unit

FIRST_HASH = "sha256:9d9cd790f3fd36ff684a9adf82653b0e8553a69142d07dfff3e9b8fb8fdad20a"


def test_the_seed_set_is_pinned_so_every_lab_loads_the_same_documents() -> None:
    first = seed_document(0)
    assert (first.id, first.content_hash()) == ("seed-000000", FIRST_HASH)


def test_another_process_generates_the_same_documents() -> None:
    code = "from drkit.lab.seed import seed_document; print(seed_document(7).content_hash())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == seed_document(7).content_hash()


def test_a_smaller_seed_is_a_prefix_of_a_larger_one() -> None:
    assert list(generate_documents(20))[:8] == list(generate_documents(8))


def test_another_rng_seed_gives_other_documents() -> None:
    assert seed_document(3, rng_seed=1) != seed_document(3, rng_seed=2)


def test_ids_are_unique_and_every_document_type_appears() -> None:
    docs = list(generate_documents(200))
    assert len({d.id for d in docs}) == 200
    assert {d.doc_type for d in docs} == set(DOC_TYPES)


def test_fields_are_plausible_for_each_document_type() -> None:
    tickers = {i.ticker for i in ISSUERS}
    for doc in generate_documents(400):
        assert doc.ticker in tickers and doc.ticker in doc.title
        assert date(2022, 1, 1) <= doc.as_of <= date(2025, 12, 31)
        assert doc.title and len(doc.body.split()) > 30 and doc.source
        if doc.doc_type == "10-K":
            assert (doc.as_of.month, doc.as_of.day) == (12, 31)
            assert doc.source == "SEC EDGAR"
        if doc.doc_type == "10-Q":
            assert (doc.as_of.month, doc.as_of.day) in {(3, 31), (6, 30), (9, 30)}
        if doc.doc_type == "trade_confirmation":
            assert doc.as_of.weekday() < 5, f"{doc.id} trades on a weekend"


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(Document)])
def test_the_content_hash_changes_with_every_field(field: str) -> None:
    doc = seed_document(1)
    changed = date(2020, 1, 1) if field == "as_of" else "something else"
    assert dataclasses.replace(doc, **{field: changed}).content_hash() != doc.content_hash()


def test_the_content_hash_does_not_depend_on_the_instance() -> None:
    doc = seed_document(2)
    assert dataclasses.replace(doc).content_hash() == doc.content_hash()


def test_the_seed_count_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SEED_DOCS_ENV, raising=False)
    assert seed_count_from_env() == DEFAULT_SEED_DOCS == 5000
    monkeypatch.setenv(SEED_DOCS_ENV, "250")
    assert seed_count_from_env() == 250


@pytest.mark.parametrize("raw", ["many", "-1", "2.5"])
def test_a_bad_seed_count_is_refused_with_the_fix(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv(SEED_DOCS_ENV, raw)
    with pytest.raises(ConfigError, match=f"{SEED_DOCS_ENV}=.*whole number"):
        seed_count_from_env()
