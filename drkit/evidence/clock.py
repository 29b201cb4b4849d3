"""Clock evidence: how far each server's clock is from the harness's, and how sure we are.

Durations never mix clocks (they come from the harness's monotonic clock); wall times do when
acknowledgements are matched with database commit times, so the report states the offsets.
Each estimate is NTP's: ask the server its time between two harness readings; the offset is
server - midpoint, the uncertainty half the round trip. The sample with the shortest round
trip of several is kept. Measured at the start and the end of the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

CLOCK_FILE = "clock.json"
ServerClock = Callable[[], float]  # returns the server's time now, as a Unix epoch


@dataclass(frozen=True)
class ClockOffset:
    source: str
    offset_s: float | None  # server minus harness; positive: the server is ahead
    uncertainty_s: float | None  # half the best round trip
    samples: int
    measured_at: str
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        if self.offset_s is None:
            return f"{self.source}: not measured ({self.error})"
        return (
            f"{self.source}: {self.offset_s * 1000:+.3f} ms "
            f"+- {(self.uncertainty_s or 0) * 1000:.3f} ms ({self.samples} samples)"
        )


def measure(
    source: str,
    server_time: ServerClock,
    *,
    samples: int = 7,
    clock: Callable[[], float] = time.time,
    resolution_s: float = 0.0,
) -> ClockOffset:
    """The offset of one server's clock against `clock`, from the best of `samples`; a server
    time truncated to `resolution_s` (an HTTP Date header: 1 s) is read at the middle of its
    step, and half the step is added to the uncertainty."""
    at = datetime.now(UTC).isoformat(timespec="milliseconds")
    best: tuple[float, float] | None = None  # (round trip, offset)
    taken = 0
    try:
        for _ in range(samples):
            before = clock()
            server = server_time()
            after = clock()
            taken += 1
            trip = after - before
            offset = server + resolution_s / 2 - (before + after) / 2
            if best is None or trip < best[0]:
                best = (trip, offset)
    except Exception as exc:  # the evidence says what failed; the drill goes on
        if best is None:
            return ClockOffset(source, None, None, taken, at, f"{type(exc).__name__}: {exc}")
    assert best is not None
    return ClockOffset(
        source, round(best[1], 6), round(best[0] / 2 + resolution_s / 2, 6), taken, at
    )


def postgres_offset(source: str, connect: Callable[[], Any], samples: int = 7) -> ClockOffset:
    """A PostgreSQL server's offset, read over one open connection (`clock_timestamp()`, not
    the transaction's start), so connection set-up stays out of the round trip."""
    try:
        conn = connect()
    except Exception as exc:
        at = datetime.now(UTC).isoformat(timespec="milliseconds")
        return ClockOffset(source, None, None, 0, at, f"{type(exc).__name__}: {exc}")
    try:
        conn.autocommit = True

        def read() -> float:
            row = conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()
            return float(row[0])

        return measure(source, read, samples=samples)
    finally:
        conn.close()


def http_date_offset(source: str, url: str, samples: int = 3) -> ClockOffset:
    """An HTTP server's offset from its Date header (the AWS API's, on the aws target); the
    header has whole seconds, so the uncertainty is at least half a second."""
    from email.utils import parsedate_to_datetime

    import httpx

    with httpx.Client(timeout=5.0) as client:

        def read() -> float:
            return parsedate_to_datetime(client.head(url).headers["date"]).timestamp()

        return measure(source, read, samples=samples, resolution_s=1.0)
