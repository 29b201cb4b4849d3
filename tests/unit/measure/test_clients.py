"""The probe and the writer against the in-memory two-region service, and the HTTP transport."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from drkit.errors import ConfigError
from drkit.faults.ledger import Ledger
from drkit.faults.twins import Fence, Promote, RegionOutage, ReplicationLinkCut, SwitchDns
from drkit.measure.availability import check_flapping
from drkit.measure.clients import Probe, Writer
from drkit.measure.history import History, Op, load_history
from drkit.measure.ops import pair_ops
from drkit.measure.reads import check_read_your_writes, check_stale_reads
from drkit.measure.rpo import check_rpo, check_split_brain, measure_rpo
from drkit.measure.rto import check_rto
from drkit.measure.transport import (
    Ack,
    DefiniteFailure,
    HttpTransport,
    OutcomeUnknown,
    ReadResult,
    StaticResolver,
)
from drkit.measure.twins import ADDRESSES, EAST, WEST, TwoRegionService

pytestmark = pytest.mark.unit

PERIOD = 0.01


def _wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(PERIOD)


def _ok_count(history: History, kind: str, region: str) -> int:
    return sum(
        1 for op in history.ops if op.kind == kind and op.type == "ok" and op.region == region
    )


def _action_started(ops: tuple[Op, ...], phase: str) -> float:
    """When the recovery action of ``phase`` was invoked (its effect may precede its ok)."""
    return next(op.mono for op in ops if op.kind == "recovery" and op.is_invoke
                and op.value.get("phase") == phase)  # fmt: skip


@pytest.fixture
def failover_run(tmp_path: Path) -> tuple[TwoRegionService, History]:
    """A region loss drill on the twin: link cut, east down, west promoted, DNS switched."""
    service = TwoRegionService()
    history = History(tmp_path / "history.jsonl")
    writer = Writer(service, service, service.name, history, period=PERIOD)
    probe = Probe(
        service, service, service.name, history, period=PERIOD, expect=writer.recent_acked
    )
    with (
        writer,
        probe,
        Ledger(tmp_path / "run", state_dir=tmp_path / "state", history=history) as ledger,
    ):
        _wait_for(lambda: _ok_count(history, "write", EAST) >= 10)
        ledger.inject(ReplicationLinkCut(service))
        service.lose_next_acks(EAST, 2)
        _wait_for(lambda: _ok_count(history, "write", EAST) >= 20)
        ledger.inject(RegionOutage(service, EAST), disaster=True)
        time.sleep(0.1)
        history.recovery("detection")
        ledger.apply(Fence(service, EAST))
        ledger.apply(Promote(service, WEST))
        ledger.apply(SwitchDns(service, WEST, previous=EAST))
        _wait_for(
            lambda: (
                _ok_count(history, "write", WEST) >= 10 and _ok_count(history, "read", WEST) >= 10
            )
        )
    history.close()
    return service, history


def test_rto_of_a_twin_failover_spans_detection_to_the_first_lasting_write(
    failover_run: tuple[TwoRegionService, History],
) -> None:
    _, history = failover_run
    ops = history.ops
    verdict = check_rto(ops)
    assert verdict.valid is True and verdict.details["new_writer"] == WEST
    disaster = verdict.details["disaster"]["mono"]
    assert verdict.value is not None
    assert verdict.value >= _action_started(ops, "dns_switch") - disaster
    phases = [p["name"] for p in verdict.details["phases"]]
    assert phases == ["detection", "fencing", "promotion", "dns_switch", "client_convergence"]
    assert verdict.error_bar is not None and verdict.error_bar <= 0.05


def test_rpo_of_a_twin_failover_names_exactly_the_writes_left_on_the_old_primary(
    failover_run: tuple[TwoRegionService, History],
) -> None:
    service, history = failover_run
    final = service.final_read(WEST)
    stranded = set(service.final_read(EAST)) - set(final)  # committed on east, never shipped
    m = measure_rpo(history.ops, final)
    assert m.lost and set(m.lost_ids) <= stranded
    assert set(m.lost_ids) | set(m.indeterminate_absent) == stranded
    assert len(m.indeterminate_absent) == 2  # the two writes whose answers were lost
    assert m.rpo is not None and m.disaster is not None
    # from the first lost acknowledgement to the disaster, or to the last lost one when a
    # write acknowledged in the instant the outage was being recorded came later
    end = max(m.disaster.mono, m.lost[-1].ack_mono)
    assert m.rpo == pytest.approx(end - m.lost[0].ack_mono)
    assert check_rpo(history.ops, final).valid is True


def test_lost_writes_were_all_acknowledged_between_link_cut_and_disaster(
    failover_run: tuple[TwoRegionService, History],
) -> None:
    service, history = failover_run
    faults = [op for op in history.ops if op.kind == "fault" and op.value["f"] == "inject"]
    cut = faults[0].mono  # the link cut's invocation: it may take effect before its ok
    disaster = faults[3].mono  # the outage's completion: writes may land until then
    assert [op.type for op in faults] == ["invoke", "ok", "invoke", "ok"]
    m = measure_rpo(history.ops, service.final_read(WEST))
    assert all(cut <= w.ack_mono <= disaster for w in m.lost)


def test_clients_record_who_answered_and_reads_after_promotion_hold(
    failover_run: tuple[TwoRegionService, History],
) -> None:
    _, history = failover_run
    ops = history.ops
    assert check_flapping(ops).value == 1
    assert check_split_brain(ops).valid is True
    assert check_read_your_writes(ops).valid is True
    assert check_stale_reads(ops).valid is True
    assert load_history(history.path).trustworthy  # type: ignore[arg-type]


def test_every_operation_started_is_completed_after_stop(
    failover_run: tuple[TwoRegionService, History],
) -> None:
    _, history = failover_run
    pairs = pair_ops(history.ops)
    assert pairs and all(p.completion is not None for p in pairs)
    kinds = {p.completion.type for p in pairs if p.completion and p.invoke.kind == "write"}
    assert kinds == {"ok", "fail", "info"}


class _Scripted:
    """A transport that answers or raises as told, for one operation."""

    def __init__(self, outcome: Exception | Ack | ReadResult) -> None:
        self.outcome = outcome

    def read(self, address: str, query: str) -> ReadResult:
        if isinstance(self.outcome, Exception):
            raise self.outcome
        assert isinstance(self.outcome, ReadResult)
        return self.outcome

    def write(self, address: str, doc_id: str, payload: str) -> Ack:
        if isinstance(self.outcome, Exception):
            raise self.outcome
        assert isinstance(self.outcome, Ack)
        return self.outcome

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (DefiniteFailure("refused"), "fail"),
        (OutcomeUnknown("answer lost"), "info"),
        (RuntimeError("bug below"), "info"),
        (Ack("someone-else", EAST, 1.0), "info"),
    ],
)
def test_writer_classifies_each_outcome(outcome: Exception | Ack, expected: str) -> None:
    history = History()
    writer = Writer(_Scripted(outcome), StaticResolver({"svc": "a"}), "svc", history, period=PERIOD)
    writer._operate("writer-0")
    assert [op.type for op in history.ops] == ["invoke", expected]


def test_an_unresolvable_name_is_a_definite_failure() -> None:
    history = History()
    probe = Probe(_Scripted(ReadResult(EAST)), StaticResolver({}), "svc", history, period=PERIOD)
    probe._operate("probe-0")
    assert history.ops[-1].type == "fail" and "no record" in (history.ops[-1].error or "")


@pytest.mark.parametrize("period", [0.0, 0.051, -1.0])
def test_a_period_above_50ms_is_refused(period: float) -> None:
    service = TwoRegionService()
    with pytest.raises(ConfigError, match="20 operations per second"):
        Writer(service, service, service.name, History(), period=period)


def test_a_blackholed_address_does_not_stretch_the_probe_period() -> None:
    class Slow:
        def read(self, address: str, query: str) -> ReadResult:
            time.sleep(0.2)
            raise DefiniteFailure("timed out")

        def write(self, address: str, doc_id: str, payload: str) -> Ack:
            raise NotImplementedError

        def close(self) -> None:
            pass

    history = History()
    with Probe(Slow(), StaticResolver({"svc": "a"}), "svc", history, period=PERIOD):
        time.sleep(0.3)
    invokes = [op for op in history.ops if op.is_invoke]
    assert len(invokes) >= 10  # far more than the 2 a sequential probe would manage
    assert len({op.process for op in invokes}) > 1


def _http(handler: Callable[[httpx.Request], httpx.Response]) -> HttpTransport:
    return HttpTransport(port=8080, client=httpx.Client(transport=httpx.MockTransport(handler)))


def test_http_read_takes_the_region_from_the_header() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/query" and request.url.params["q"] == "d1"
        body = {"results": [{"id": "d1", "text": "..."}]}
        return httpx.Response(200, json=body, headers={"X-DR-Region": WEST})

    assert _http(handler).read(ADDRESSES[WEST], "d1") == ReadResult(WEST, ("d1",))


def test_http_read_by_id_fetches_each_expected_document() -> None:
    """Read-your-writes reads the writer's ids back one by one: found (200) or not (404)."""
    stored = {"w1a2b3c-0000001"}

    def handler(request: httpx.Request) -> httpx.Response:
        doc_id = request.url.path.rsplit("/", 1)[1]
        assert request.url.path.startswith("/documents/")
        status = 200 if doc_id in stored else 404
        return httpx.Response(status, json={"id": doc_id}, headers={"X-DR-Region": WEST})

    transport = HttpTransport(
        port=8080, by_id=True, client=httpx.Client(transport=httpx.MockTransport(handler))
    )
    result = transport.read(ADDRESSES[WEST], "w1a2b3c-0000001 w1a2b3c-0000002")
    assert result == ReadResult(WEST, ("w1a2b3c-0000001",))


def test_http_read_by_id_still_searches_a_plain_query() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/query"
        return httpx.Response(200, json={"results": []}, headers={"X-DR-Region": EAST})

    transport = HttpTransport(
        port=8080, by_id=True, client=httpx.Client(transport=httpx.MockTransport(handler))
    )
    assert transport.read(ADDRESSES[EAST], "settlement record") == ReadResult(EAST, ())


def test_http_write_returns_the_ack() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.method == "POST" and request.url.path == "/documents"
        return httpx.Response(201, json={"id": "d1", "commit_time": 12.5, "region": EAST})

    assert _http(handler).write(ADDRESSES[EAST], "d1", "text") == Ack("d1", EAST, 12.5)


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (httpx.Response(503, json={"detail": "standby"}), DefiniteFailure),
        (httpx.Response(409), DefiniteFailure),
        (httpx.Response(500), OutcomeUnknown),
        (httpx.Response(201, json={"id": "d1"}), OutcomeUnknown),  # no region: cannot trust it
    ],
)
def test_http_write_status_mapping(response: httpx.Response, error: type[Exception]) -> None:
    with pytest.raises(error):
        _http(lambda request: response).write("127.0.0.1", "d1", "text")


@pytest.mark.parametrize(
    ("exc", "read_error", "write_error"),
    [
        (httpx.ConnectError("refused"), DefiniteFailure, DefiniteFailure),
        (httpx.ConnectTimeout("no route"), DefiniteFailure, DefiniteFailure),
        (httpx.ReadTimeout("silent"), DefiniteFailure, OutcomeUnknown),
    ],
)
def test_http_network_errors_split_into_definite_and_unknown(
    exc: Exception, read_error: type[Exception], write_error: type[Exception]
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    with pytest.raises(read_error):
        _http(handler).read("127.0.0.1", "q")
    with pytest.raises(write_error):
        _http(handler).write("127.0.0.1", "d1", "text")
