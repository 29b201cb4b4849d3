"""History: recording, streaming to a hash-chained file, and detecting edits and truncation."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drkit.measure.chain import ChainWriter, read_chain
from drkit.measure.history import History, Op, load_history

pytestmark = pytest.mark.unit


def _record_some(history: History, count: int) -> None:
    for n in range(count):
        op = history.invoke(f"writer-{n % 3}", "write", {"id": f"d{n}", "hash": "h"})
        history.complete(op, "ok", {"id": f"d{n}", "commit_time": 1.0}, region="us-east-1")


def test_a_closed_history_reads_back_identical_and_complete(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    with History(path) as history:
        _record_some(history, 5)
        recorded = history.ops
    loaded = load_history(path)
    assert loaded.ops == recorded
    assert loaded.trustworthy and loaded.problem() is None


def test_completion_keeps_process_and_kind_and_gets_its_own_times() -> None:
    ticks = iter([(100.0, 5.0), (90.0, 5.5)])  # wall steps back, monotonic moves on
    history = History(clock=lambda: next(ticks))
    invoke = history.invoke("probe-0", "read", {"expect": []})
    done = history.complete(invoke, "fail", error="refused")
    assert (done.process, done.kind, done.type, done.index) == ("probe-0", "read", "fail", 1)
    assert (done.wall, done.mono) == (90.0, 5.5)


def test_complete_refuses_invoke_as_a_completion_type() -> None:
    history = History()
    op = history.invoke("p", "read")
    with pytest.raises(ValueError, match="ok, fail or info"):
        history.complete(op, "invoke")


def test_an_unclosed_history_is_evidence_but_marked_incomplete(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    history = History(path)
    _record_some(history, 3)  # the run is killed here: no close(), no end record
    loaded = load_history(path)
    assert len(loaded.ops) == 6
    assert not loaded.complete
    assert "interrupted" in (loaded.problem() or "")


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines))


def _closed_history(path: Path, count: int) -> list[str]:
    with History(path) as history:
        _record_some(history, count)
    return _lines(path)


def test_a_changed_record_breaks_the_next_link(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    lines = _closed_history(path, 4)
    record = json.loads(lines[3])
    record["op"]["region"] = "us-west-2"
    lines[3] = json.dumps(record, separators=(",", ":"))
    _write_lines(path, lines)
    loaded = load_history(path)
    assert loaded.broken is not None and loaded.broken.line == 5
    assert "line 4 or 5 was edited" in loaded.broken.reason
    assert len(loaded.ops) == 2 and not loaded.trustworthy  # lines 4 and 5 are both suspect


def test_a_removed_record_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    lines = _closed_history(path, 4)
    del lines[2]
    _write_lines(path, lines)
    assert load_history(path).broken is not None


def test_reordered_records_are_detected(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    lines = _closed_history(path, 4)
    lines[2], lines[3] = lines[3], lines[2]
    _write_lines(path, lines)
    broken = load_history(path).broken
    assert broken is not None and broken.line == 3


def test_a_cut_off_end_record_reads_as_incomplete(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    lines = _closed_history(path, 2)
    _write_lines(path, lines[:-1])
    loaded = load_history(path)
    assert loaded.broken is None and not loaded.complete


@settings(max_examples=60, deadline=None)
@given(
    count=st.integers(min_value=1, max_value=12),
    mutation=st.sampled_from(["change", "remove", "swap"]),
    data=st.data(),
)
def test_any_edit_before_the_last_line_is_detected(
    tmp_path_factory: pytest.TempPathFactory, count: int, mutation: str, data: st.DataObject
) -> None:
    path = tmp_path_factory.mktemp("chain") / "h.jsonl"
    lines = _closed_history(path, count)
    at = data.draw(st.integers(min_value=0, max_value=len(lines) - 2), label="line")
    if mutation == "change":
        record = json.loads(lines[at])
        record["edited"] = True
        if "op" in record:
            record["op"]["edited"] = True
        lines[at] = json.dumps(record, separators=(",", ":"))
    elif mutation == "remove":
        del lines[at]
    else:
        lines[at], lines[at + 1] = lines[at + 1], lines[at]
    _write_lines(path, lines)
    loaded = load_history(path)
    assert loaded.broken is not None
    assert loaded.broken.line <= at + 2  # the first broken link is at or right after the edit


def test_a_partial_last_line_is_cut_and_the_chain_resumes(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    with ChainWriter(path) as writer:
        writer.append({"n": 1})
    with open(path, "ab") as handle:
        handle.write(b'{"prev":"abc","n":')  # power loss in the middle of a line
    assert read_chain(path).partial_tail
    with ChainWriter(path) as writer:
        assert writer.repaired is not None and "18 bytes" in writer.repaired
        writer.append({"n": 2})
    read = read_chain(path)
    assert read.intact and [r["n"] for r in read.records] == [1, 2]


def test_a_linked_but_malformed_op_is_reported_not_raised(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    with ChainWriter(path) as writer:
        writer.append({"event": "header"})
        writer.append({"op": {"index": 0, "type": "ok", "kind": "read", "colour": "red"}})
    loaded = load_history(path)
    assert loaded.broken is not None and "unreadable" in loaded.broken.reason
    assert loaded.ops == ()


def test_concurrent_appends_keep_indices_and_chain(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    with History(path) as history:
        threads = [threading.Thread(target=_record_some, args=(history, 200)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    loaded = load_history(path)
    assert loaded.trustworthy
    assert [op.index for op in loaded.ops] == list(range(1600))


def test_op_from_json_rejects_unknown_types() -> None:
    good = Op(0, "p", "ok", "read", None, 1.0, 2.0).to_json()
    with pytest.raises(ValueError, match="not an operation record"):
        Op.from_json({**good, "type": "done"})
