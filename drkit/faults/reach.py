"""When a service that holds a fault (Toxiproxy, moto) stops answering mid-drill.

A fault may name the services its heal depends on (``depends_on()``). While faults are open
the ledger's ``ServiceWatch`` probes them; one that misses several probes in a row ends the
drill with a ``target unreachable`` error instead of letting it run on blind. Heals that meet an
unreachable service are retried with bounded backoff (``HealRetry``); when the window closes
the fault stays open for ``drkit rollback`` and the message says the heal was not verified.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from drkit.errors import ConfigError, TargetUnreachable

RETRY_WINDOW_ENV = "DRKIT_HEAL_RETRY_WINDOW_S"
RESTART_ADVICE = "restart the lab with `drkit lab up`, then run `drkit rollback`"


@dataclass(frozen=True)
class Service:
    """A service a fault lives in, and a cheap probe: does it answer right now?"""

    name: str
    address: str
    probe: Callable[[], bool] = field(compare=False, repr=False)

    def label(self) -> str:
        return f"{self.name} at {self.address}"


def services_of(fault: object) -> tuple[Service, ...]:
    """The services a fault declares (optional: faults without ``depends_on()`` have none)."""
    declared = getattr(fault, "depends_on", None)
    return tuple(declared()) if callable(declared) else ()


def unreachable_cause(exc: BaseException | None) -> TargetUnreachable | None:
    """The TargetUnreachable in ``exc``'s chain of causes, if any."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, TargetUnreachable):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


@dataclass(frozen=True)
class HealRetry:
    """Bounded retries with exponential backoff for a heal whose service does not answer:
    attempts continue while the next one would start within ``window_s`` of the first."""

    window_s: float = 10.0
    first_delay_s: float = 0.5
    factor: float = 2.0
    max_delay_s: float = 4.0
    clock: Callable[[], float] = field(default=time.monotonic, compare=False, repr=False)
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False, repr=False)

    @classmethod
    def from_env(cls) -> HealRetry:
        """The default policy; DRKIT_HEAL_RETRY_WINDOW_S sets the window (seconds, 0 to 600)."""
        raw = os.environ.get(RETRY_WINDOW_ENV)
        if raw is None:
            return cls()
        try:
            window = float(raw)
        except ValueError:
            window = -1.0
        if not 0.0 <= window <= 600.0:
            raise ConfigError(
                f"{RETRY_WINDOW_ENV}={raw!r}: use seconds from 0 to 600 (default {cls.window_s:g})"
            )
        return cls(window_s=window)

    def delay(self, attempt: int) -> float:
        """The pause after failed attempt number ``attempt`` (1-based)."""
        return min(self.max_delay_s, self.first_delay_s * self.factor ** (attempt - 1))


def unreachable_message(service: Service, held: Iterable[str], missed_s: float) -> str:
    """What the drill ends with when a service holding its faults stops answering."""
    return (
        f"target unreachable: {service.label()} stopped answering (no answer for "
        f"{missed_s:.1f}s) while the drill held {'; '.join(held)}; nothing after this was "
        f"measured. The drill heals what it can with retries; {RESTART_ADVICE}"
    )


Held = Callable[[], list[tuple[Service, str]]]


class ServiceWatch:
    """Probes the services of the open faults every ``interval_s``; after ``misses`` failed
    probes in a row of one service, calls ``on_lost(message)`` (again every interval until
    stopped or the service answers: the receiver may not be able to act at once)."""

    def __init__(
        self, held: Held, on_lost: Callable[[str], None], interval_s: float = 1.0, misses: int = 3
    ) -> None:
        self.held, self.on_lost = held, on_lost
        self.interval_s, self.misses = interval_s, misses
        self._stop = threading.Event()
        self._missed: dict[Service, int] = {}
        self._thread = threading.Thread(target=self._run, name="drkit-service-watch", daemon=True)

    def start(self) -> ServiceWatch:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Stop probing; False when the thread is still inside a probe after ``timeout_s``."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check_once()
            except Exception:  # a watch must never take the drill down by itself
                continue

    def check_once(self) -> str | None:
        """Probe every held service once; returns the message when one counts as lost."""
        held = self.held()
        by_service: dict[Service, list[str]] = {}
        for service, label in held:
            by_service.setdefault(service, []).append(label)
        for service in list(self._missed):
            if service not in by_service:
                del self._missed[service]
        for service, labels in by_service.items():
            answered = answers(service)
            self._missed[service] = 0 if answered else self._missed.get(service, 0) + 1
            if self._missed[service] >= self.misses and not self._stop.is_set():
                message = unreachable_message(
                    service, labels, self._missed[service] * self.interval_s
                )
                self.on_lost(message)
                return message
        return None


def answers(service: Service) -> bool:
    """The service's probe, where an exception counts as no answer."""
    try:
        return bool(service.probe())
    except Exception:
        return False
