"""The probe and the writer: background clients that record what the service did into a history.

Both are open-loop (Jepsen's many processes): a dispatcher starts an operation every
``period`` whether or not earlier ones have answered, on a pool of worker threads, each its
own history process doing one operation at a time. A blackholed region therefore does not
stretch the sampling period; up to ``max_in_flight`` operations may wait on it at once.
"""

from __future__ import annotations

import hashlib
import itertools
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Self

from drkit.errors import ConfigError
from drkit.measure.history import History, Op
from drkit.measure.transport import DefiniteFailure, Resolver, Transport

MAX_PERIOD = 0.05
MAX_PAYLOAD_BYTES = 65_536  # a long research note; the workload models nothing larger


def content_hash(payload: str) -> str:
    """The content hash the writer records and a final read must reproduce (SHA-256 hex)."""
    return hashlib.sha256(payload.encode()).hexdigest()


class _OpenLoopClient:
    """Starts ``_operate`` every ``period`` seconds on worker threads until stopped."""

    def __init__(
        self, history: History, *, period: float, process: str, max_in_flight: int
    ) -> None:
        if not 0 < period <= MAX_PERIOD:
            raise ConfigError(
                f"{process}: period {period!r}s is out of range; it must be > 0 and <= "
                f"{MAX_PERIOD}s (at least 20 operations per second, the RTO/RPO error bar)"
            )
        self.history = history
        self.period = period
        self.process = process
        self.skipped = 0
        self._max_in_flight = max_in_flight
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._stop = threading.Event()
        self._local = threading.local()
        self._worker_ids = itertools.count()
        self._pool: ThreadPoolExecutor | None = None
        self._dispatcher: threading.Thread | None = None

    def _operate(self, process: str) -> None:
        raise NotImplementedError

    def start(self) -> None:
        if self._dispatcher is not None:
            raise RuntimeError(f"{self.process} is already running; a client starts once")
        self._pool = ThreadPoolExecutor(self._max_in_flight, thread_name_prefix=self.process)
        self._dispatcher = threading.Thread(
            target=self._dispatch, name=f"{self.process}-tick", daemon=True
        )
        self._dispatcher.start()

    def stop(self) -> None:
        """Stop starting operations and wait for those in flight (bounded by the transport)."""
        self._stop.set()
        if self._dispatcher is not None:
            self._dispatcher.join()
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _dispatch(self) -> None:
        deadline = time.monotonic()
        while not self._stop.wait(max(0.0, deadline - time.monotonic())):
            if self._slots.acquire(blocking=False):
                assert self._pool is not None
                self._pool.submit(self._run)
            else:
                self.skipped += 1
            deadline = max(deadline + self.period, time.monotonic() - self.period)

    def _run(self) -> None:
        try:
            self._operate(self._process_id())
        finally:
            self._slots.release()

    def _process_id(self) -> str:
        if not hasattr(self._local, "process"):
            self._local.process = f"{self.process}-{next(self._worker_ids)}"
        return str(self._local.process)

    def _complete_error(self, invocation: Op, exc: BaseException) -> None:
        error = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, DefiniteFailure):
            self.history.complete(invocation, "fail", error=error)
        else:
            self.history.complete(invocation, "info", error=error)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Writer(_OpenLoopClient):
    """Acknowledged writes with unique ids through the public name, every ``period`` seconds."""

    def __init__(
        self,
        transport: Transport,
        resolver: Resolver,
        name: str,
        history: History,
        *,
        period: float = MAX_PERIOD,
        process: str = "writer",
        max_in_flight: int = 32,
        id_prefix: str | None = None,
        payload_bytes: int = 0,
    ) -> None:
        super().__init__(history, period=period, process=process, max_in_flight=max_in_flight)
        if not 0 <= payload_bytes <= MAX_PAYLOAD_BYTES:
            raise ConfigError(
                f"{process}: payload of {payload_bytes} bytes is out of range; use 0 (a short "
                f"record) to {MAX_PAYLOAD_BYTES} bytes"
            )
        self.transport, self.resolver, self.name = transport, resolver, name
        self.payload_bytes = payload_bytes
        self._prefix = id_prefix or f"w{secrets.token_hex(3)}"
        self._sequence = itertools.count(1)
        self._acked: deque[str] = deque(maxlen=64)
        self.acked_count = 0
        self._acked_lock = threading.Lock()

    def recent_acked(self, count: int = 1) -> list[str]:
        """The ids of the last ``count`` acknowledged writes, newest last."""
        with self._acked_lock:
            return list(self._acked)[-count:]

    def _operate(self, process: str) -> None:
        doc_id = f"{self._prefix}-{next(self._sequence):07d}"
        payload = f"drkit writer document {doc_id}: settlement record for drill verification"
        if len(payload) < self.payload_bytes:  # incompressible padding: WAL carries it all
            payload += (
                " " + secrets.token_hex(self.payload_bytes)[: self.payload_bytes - len(payload) - 1]
            )
        invocation = self.history.invoke(
            process, "write", {"id": doc_id, "hash": content_hash(payload)}
        )
        try:
            ack = self.transport.write(self.resolver.resolve(self.name), doc_id, payload)
        except Exception as exc:
            self._complete_error(invocation, exc)
            return
        if ack.id != doc_id:
            self.history.complete(
                invocation, "info", error=f"ack names id {ack.id!r}, sent {doc_id!r}"
            )
            return
        self.history.complete(
            invocation, "ok", {"id": doc_id, "commit_time": ack.commit_time}, region=ack.region
        )
        with self._acked_lock:
            self._acked.append(doc_id)
            self.acked_count += 1


Expectation = Callable[[], Sequence[str]]


class Probe(_OpenLoopClient):
    """Reads through the public name every ``period`` seconds, recording who answered.

    ``expect`` (e.g. ``writer.recent_acked``) names the acknowledged writes each read should
    see; the read queries for them, which feeds the read-your-writes and stale-read checkers.
    """

    def __init__(
        self,
        transport: Transport,
        resolver: Resolver,
        name: str,
        history: History,
        *,
        period: float = MAX_PERIOD,
        process: str = "probe",
        max_in_flight: int = 32,
        expect: Expectation | None = None,
        query: str = "settlement record",
    ) -> None:
        super().__init__(history, period=period, process=process, max_in_flight=max_in_flight)
        self.transport, self.resolver, self.name = transport, resolver, name
        self._expect = expect
        self._query = query

    def _operate(self, process: str) -> None:
        expected = list(self._expect()) if self._expect is not None else []
        query = " ".join(expected) or self._query
        invocation = self.history.invoke(process, "read", {"query": query, "expect": expected})
        try:
            result = self.transport.read(self.resolver.resolve(self.name), query)
        except Exception as exc:
            self._complete_error(invocation, exc)
            return
        self.history.complete(invocation, "ok", {"ids": list(result.ids)}, region=result.region)
