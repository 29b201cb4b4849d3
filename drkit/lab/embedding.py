"""Deterministic text embeddings for the lab's RAG service: feature hashing, no model download.

Lower-cased word unigrams and bigrams are hashed with BLAKE2b (stable across processes and
machines, unlike the salted built-in `hash()`) into signed buckets, and the sum is
L2-normalised; so under cosine similarity, texts that share words score higher than texts
that do not. It is a lexical embedding: it knows nothing of synonyms.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re

from drkit.errors import ConfigError

DIMENSION = 64
"""The lab's default vector dimension, shared by the index server and the RAG service."""

BIGRAM_WEIGHT = 0.5
"""Bigrams count half as much as words: they sharpen phrase matches without dominating."""

_WORD = re.compile(r"\w+")
_HASH_PERSON = b"drkit-embed-v1"  # changing it (or the features) changes every vector
_NO_WORDS_FEATURE = "\x00no-words"  # text without words still gets a valid unit vector


def embed(text: str, dimension: int = DIMENSION) -> list[float]:
    """The unit-length embedding of `text`: the same text always gives the same vector."""
    if isinstance(dimension, bool) or not isinstance(dimension, int) or dimension < 1:
        raise ConfigError(f"embedding dimension must be a positive integer, got {dimension!r}")
    vector = _hashed_features(features(text), dimension)
    norm = math.sqrt(sum(x * x for x in vector))
    if norm == 0.0:  # no words, or signed buckets that happened to cancel out
        vector = _hashed_features({_NO_WORDS_FEATURE: 1.0}, dimension)
        norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector]


def features(text: str) -> dict[str, float]:
    """Weighted features of `text`: each lower-cased word, and each adjacent pair of words."""
    words = _WORD.findall(text.casefold())
    weights: dict[str, float] = {}
    for word in words:
        weights[word] = weights.get(word, 0.0) + 1.0
    for first, second in itertools.pairwise(words):
        bigram = f"{first} {second}"
        weights[bigram] = weights.get(bigram, 0.0) + BIGRAM_WEIGHT
    return weights


def _hashed_features(weights: dict[str, float], dimension: int) -> list[float]:
    vector = [0.0] * dimension
    for feature, weight in weights.items():
        bucket, sign = _bucket(feature, dimension)
        vector[bucket] += sign * weight
    return vector


def _bucket(feature: str, dimension: int) -> tuple[int, float]:
    """A stable (bucket, sign) for `feature`: low bits pick the bucket, the top bit the sign."""
    digest = hashlib.blake2b(feature.encode(), digest_size=8, person=_HASH_PERSON).digest()
    value = int.from_bytes(digest, "big")
    return value % dimension, (1.0 if value >> 63 else -1.0)
