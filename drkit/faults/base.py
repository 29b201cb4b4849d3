"""Faults and recovery actions: the protocols, the registry that rebuilds them, bounded calls.

A fault (Jepsen's nemesis) is named by its effect and can be injected, healed (idempotent,
safe before inject) and read back. A recovery action (fence, promote, DNS switch) is another
kind: it is applied and undone, and only failback or a lab reset undoes it. Both must be
serialisable as ``kind`` plus JSON ``params()``, so a fresh process rebuilds them from a
ledger record through the registry and heals what a killed run left open.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar, runtime_checkable

from drkit.errors import ConfigError

T = TypeVar("T")


@runtime_checkable
class Fault(Protocol):
    """Something that breaks the system on purpose, and can be removed again."""

    kind: str

    def params(self) -> dict[str, Any]:
        """JSON parameters from which the registry's factory rebuilds this fault."""
        ...

    def describe(self) -> str:
        """What it does and where, e.g. 'replication link us-east-1 -> us-west-2 cut'."""
        ...

    def inject(self) -> None: ...

    def heal(self) -> None:
        """Remove the fault; a no-op when it is not applied (safe twice, safe before inject)."""
        ...

    def verify_injected(self) -> bool:
        """Read the system's state back: is the fault in place?"""
        ...

    def verify_healed(self) -> bool:
        """Read the system's state back: is every trace of the fault gone?"""
        ...


@runtime_checkable
class RecoveryAction(Protocol):
    """A step of the failover itself; ``phase`` is the RTO phase it ends (e.g. 'promotion')."""

    kind: str
    phase: str

    def params(self) -> dict[str, Any]: ...

    def describe(self) -> str: ...

    def apply(self) -> None: ...

    def undo(self) -> None: ...

    def verify_applied(self) -> bool: ...

    def verify_undone(self) -> bool: ...


Factory = Callable[..., Any]


class Registry:
    """kind -> factory, so a ledger record (kind + params) rebuilds its fault in any process."""

    def __init__(self) -> None:
        self._factories: dict[str, Factory] = {}

    def register(self, kind: str, factory: Factory) -> None:
        existing = self._factories.get(kind)
        if existing is not None and existing is not factory:
            raise ConfigError(f"fault kind {kind!r} is already registered by {_where(existing)}")
        self._factories[kind] = factory

    def kinds(self) -> list[str]:
        return sorted(self._factories)

    def module_of(self, kind: str) -> str | None:
        factory = self._factories.get(kind)
        return getattr(factory, "__module__", None) if factory is not None else None

    def build(self, kind: str, params: Mapping[str, Any], module: str | None = None) -> Any:
        """Rebuild a fault; a kind defined inside drkit is imported on demand."""
        if kind not in self._factories and module and module.split(".")[0] == "drkit":
            importlib.import_module(module)
        factory = self._factories.get(kind)
        if factory is None:
            raise ConfigError(
                f"no factory for fault kind {kind!r} (registered: {self.kinds() or 'none'}); "
                f"import the module that registers it ({module or 'unknown'}) before rollback"
            )
        return factory(**params)


FAULTS = Registry()
"""The default registry; fault classes register here when their module is imported."""


C = TypeVar("C", bound=type)


def register_fault(cls: C) -> C:
    """Class decorator: register ``cls`` in ``FAULTS`` as the factory of ``cls.kind``."""
    kind = getattr(cls, "kind", None)
    if not isinstance(kind, str) or not kind:
        raise ConfigError(
            f"{cls.__qualname__} needs a class attribute `kind` (str) to be registered"
        )
    FAULTS.register(kind, cls)
    return cls


def _where(factory: Factory) -> str:
    return f"{getattr(factory, '__module__', '?')}.{getattr(factory, '__qualname__', factory)}"


class CallTimedOut(TimeoutError):
    """A bounded call did not return in time; ``worker`` is its thread, maybe still running."""

    def __init__(self, message: str, worker: threading.Thread) -> None:
        super().__init__(message)
        self.worker = worker


def call_bounded(fn: Callable[[], T], timeout: float, what: str) -> T:
    """Run ``fn`` in a daemon thread and wait at most ``timeout`` seconds for it."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    worker = threading.Thread(target=run, name=f"drkit-bounded-{what}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        message = f"{what} did not return within {timeout:g}s (it may still be running)"
        raise CallTimedOut(message, worker)
    if "error" in box:
        raise box["error"]
    return box["value"]
