"""Consistency of two stores read while writes go on: a write landing between the two reads
of a pass is not drift; drift that persists is counted exactly."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from drkit.targets.lab import settled_consistency

pytestmark = pytest.mark.unit


def store(reads: list[dict[str, str]]) -> Callable[[], dict[str, str]]:
    """A store whose successive reads return the given states (writes between reads)."""
    states: Iterator[dict[str, str]] = iter(reads)
    return lambda: next(states)


def docs(n: int, *, first: int = 0, hash_: str = "h") -> dict[str, str]:
    return {f"d{i}": hash_ for i in range(first, first + n)}


def test_writes_in_flight_between_the_reads_are_not_drift() -> None:
    # pass 1: the source read 100 rows, 5 more were written and replicated before the
    # replica's read (extra), and 3 committed just before the source read have not replayed
    source = store([docs(100), docs(110)])
    replica = store([{k: v for k, v in docs(105).items() if k not in {"d97", "d98", "d99"}},
                     docs(112)])  # fmt: skip
    c = settled_consistency(source, replica, "rows")
    assert (c.ratio, c.missing, c.extra, c.stale) == (1.0, 0, 0, 0)
    assert c.detail["rows"]["passes"] == 2


def test_persistent_drift_is_counted_exactly() -> None:
    drifted = docs(100)
    for i in range(5):  # 5 % deleted and 2 with a wrong hash, in both passes
        del drifted[f"d{i}"]
    drifted |= {"d50": "wrong", "d51": "wrong"}
    source = store([docs(100), docs(102)])
    replica = store([drifted | docs(3, first=100), drifted | docs(2, first=100)])
    c = settled_consistency(source, replica, "vectors")
    assert (c.missing, c.extra, c.stale) == (5, 0, 2)
    assert c.ratio == pytest.approx(95 / 102)


def test_an_extra_row_that_persists_is_counted() -> None:
    """A row in the replica its source never had (a write to the wrong side) stays extra."""
    source = store([docs(10), docs(10)])
    replica = store([docs(10) | {"rogue": "x"}, docs(10) | {"rogue": "x"}])
    c = settled_consistency(source, replica, "rows")
    assert (c.missing, c.extra, c.stale, c.total) == (0, 1, 0, 11)


def test_identical_stores_are_read_once() -> None:
    c = settled_consistency(store([docs(10)]), store([docs(10)]), "rows")
    assert (c.ratio, c.detail["rows"]["passes"]) == (1.0, 1)
