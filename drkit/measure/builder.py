"""Hand-built histories with chosen times, for checker tests and for driving Then steps.

Times are seconds on a made-up monotonic axis; wall times follow it from ``start_wall``
unless ``step_wall`` simulates a clock step (NTP) from some moment on. Events are sorted by
monotonic time when ``ops()`` builds the history, so operations may be added in any order.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from drkit.measure.clients import content_hash
from drkit.measure.history import (
    NEMESIS_PROCESS,
    OBSERVER_PROCESS,
    RECOVERY_PROCESS,
    Kind,
    Op,
    OpType,
)


@dataclass(frozen=True)
class _Event:
    mono: float
    seq: int
    process: str
    type: OpType
    kind: Kind
    value: Any
    region: str | None
    error: str | None


Result = Literal["ok", "fail", "info", "pending"]


class HistoryBuilder:
    """Collects operations at explicit times and returns them as a history's ops."""

    def __init__(self, start_wall: float = 1_800_000_000.0, latency: float = 0.01) -> None:
        self.start_wall = start_wall
        self.latency = latency
        self._events: list[_Event] = []
        self._seq = itertools.count()
        self._process = itertools.count()
        self._wall_steps: list[tuple[float, float]] = []

    def step_wall(self, at: float, delta: float) -> HistoryBuilder:
        """From monotonic time ``at`` on, wall clock readings are shifted by ``delta``."""
        self._wall_steps.append((at, delta))
        return self

    def _add(
        self, mono: float, process: str, type: OpType, kind: Kind, value: Any, **kw: Any
    ) -> None:
        event = _Event(
            mono, next(self._seq), process, type, kind, value, kw.get("region"), kw.get("error")
        )
        self._events.append(event)

    def _pair(
        self, at: float, kind: Kind, invoke: Any, result: Result, done: Any, **kw: Any
    ) -> None:
        process = kw.pop("process", None) or f"{kind}-{next(self._process)}"
        latency = kw.pop("latency", None) or self.latency
        self._add(at, process, "invoke", kind, invoke)
        if result == "pending":
            return
        region = kw.get("region") if result == "ok" else None
        error = None if result == "ok" else f"{result} (hand-built)"
        self._add(at + latency, process, result, kind, done, region=region, error=error)

    def write(
        self, doc_id: str, at: float, *, region: str = "us-east-1", result: Result = "ok", **kw: Any
    ) -> HistoryBuilder:
        """A write invoked at ``at``; ``result`` ok, fail, info or pending (never completes)."""
        invoke = {"id": doc_id, "hash": kw.pop("hash", None) or payload_hash(doc_id)}
        done = {"id": doc_id, "commit_time": self.start_wall + at} if result == "ok" else invoke
        self._pair(at, "write", invoke, result, done, region=region, **kw)
        return self

    def writes(self, ids: Iterable[str], start: float, period: float, **kw: Any) -> HistoryBuilder:
        """Several writes, one every ``period`` seconds from ``start``."""
        for n, doc_id in enumerate(ids):
            self.write(doc_id, start + n * period, **kw)
        return self

    def read(
        self, at: float, *, region: str = "us-east-1", ids: Iterable[str] = (),
        expect: Iterable[str] = (), result: Result = "ok", **kw: Any,
    ) -> HistoryBuilder:  # fmt: skip
        """A read invoked at ``at`` expecting ``expect`` and (when ok) returning ``ids``."""
        invoke = {"query": "q", "expect": list(expect)}
        self._pair(at, "read", invoke, result, {"ids": list(ids)}, region=region, **kw)
        return self

    def fault(
        self,
        name: str,
        at: float,
        *,
        disaster: bool = False,
        f: str = "inject",
        record: int | None = None,
    ) -> HistoryBuilder:
        """A fault injection (or heal) by the nemesis, completing ok; `record` is its ledger
        record number (an inject and its heal share one)."""
        value = {"fault": name, "f": f, "disaster": disaster, "record": record}
        self._pair(at, "fault", value, "ok", value, process=NEMESIS_PROCESS)
        return self

    def phase(self, name: str, at: float) -> HistoryBuilder:
        """The end of a recovery phase (detection, decision, fencing, promotion, dns_switch)."""
        self._add(at, RECOVERY_PROCESS, "ok", "recovery", {"phase": name})
        return self

    def observe(
        self, check: str, at: float, *, region: str | None = None, **value: Any
    ) -> HistoryBuilder:
        """An observation (replication sample, pre-flight result, read-back) at ``at``."""
        self._add(at, OBSERVER_PROCESS, "ok", "health", {"check": check, **value}, region=region)
        return self

    def _wall(self, mono: float) -> float:
        return self.start_wall + mono + sum(d for at, d in self._wall_steps if mono >= at)

    def ops(self) -> tuple[Op, ...]:
        ordered = sorted(self._events, key=lambda e: (e.mono, e.seq))
        return tuple(
            Op(i, e.process, e.type, e.kind, e.value, self._wall(e.mono), e.mono, e.region, e.error)
            for i, e in enumerate(ordered)
        )


def payload_hash(doc_id: str) -> str:
    """The content hash a hand-built write of ``doc_id`` records."""
    return content_hash(f"payload of {doc_id}")
