"""The lab's deterministic embedding: stable across processes, unit length, lexical similarity."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from drkit.errors import ConfigError
from drkit.lab.embedding import DIMENSION, embed

pytestmark = pytest.mark.unit

TEXTS = [
    "Wire transfer of 10,000 USD from account 4411 to account 9920",
    "Quarterly report: net interest margin rose to 3.1%",
    "",
    "Ünïcödé Straße — naïve café",
]


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))  # both are unit vectors


def test_same_text_gives_the_same_vector_in_another_process() -> None:
    # A fresh interpreter gets a fresh hash seed: this fails if embed() used hash().
    code = (
        "import json, sys; from drkit.lab.embedding import embed; "
        "print(json.dumps([embed(t) for t in json.loads(sys.stdin.read())]))"
    )
    child = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(TEXTS),
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "random"},
    )
    assert json.loads(child.stdout) == [embed(t) for t in TEXTS]


@pytest.mark.parametrize("dimension", [1, 8, DIMENSION, 384])
@pytest.mark.parametrize("text", TEXTS)
def test_vectors_have_unit_length_and_the_dimension_asked(text: str, dimension: int) -> None:
    vector = embed(text, dimension)
    assert len(vector) == dimension
    assert math.sqrt(sum(x * x for x in vector)) == pytest.approx(1.0)


def test_default_dimension_is_the_lab_constant() -> None:
    assert len(embed("settlement")) == DIMENSION


def test_case_and_punctuation_do_not_change_the_vector() -> None:
    assert embed("Wire transfer, account 4411!") == embed("wire TRANSFER account 4411")


def test_texts_sharing_words_are_closer_than_unrelated_texts() -> None:
    query = embed("wire transfer to account 9920")
    related = embed("Wire transfer of 10,000 USD from account 4411 to account 9920")
    unrelated = embed("Quarterly report: net interest margin rose to 3.1%")
    assert cosine(query, related) > cosine(query, unrelated) + 0.2


def test_word_order_counts_through_bigrams() -> None:
    phrase = embed("interest rate swap")
    same_order = embed("the interest rate swap was booked")
    shuffled = embed("swap the rate was interest booked")
    assert cosine(phrase, same_order) > cosine(phrase, shuffled)


@pytest.mark.parametrize("dimension", [0, -3, 2.5, True])
def test_a_dimension_that_is_not_a_positive_integer_is_refused(dimension: object) -> None:
    with pytest.raises(ConfigError, match="positive integer"):
        embed("text", dimension)  # type: ignore[arg-type]
