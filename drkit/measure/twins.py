"""An in-memory twin of the two-region service, for unit tests of clients and checkers.

It is a ``Transport`` and a ``Resolver`` at once: the primary region takes writes and ships
them to the standby while the replication link is up; a crashed region refuses everything; a
promotion makes the standby writable (what was not shipped stays behind on the old primary);
the DNS record says which region the public name points at. No timing is faked: operations
happen when the clients make them.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from drkit.measure.clients import content_hash
from drkit.measure.transport import (
    Ack,
    DefiniteFailure,
    OutcomeUnknown,
    ReadResult,
    ResolutionFailed,
)

EAST, WEST = "us-east-1", "us-west-2"
ADDRESSES = {EAST: "127.0.1.10", WEST: "127.0.2.10"}


@dataclass
class _Region:
    name: str
    address: str
    primary: bool
    up: bool = True
    fenced: bool = False
    docs: dict[str, str] = field(default_factory=dict)
    drop_acks: int = 0


class TwoRegionService:
    """Two regions, asynchronous replication, a DNS record; thread-safe."""

    def __init__(self, name: str = "rag.drill.internal", primary: str = EAST) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._regions = {r: _Region(r, a, primary=(r == primary)) for r, a in ADDRESSES.items()}
        self._link_up = True
        self._unshipped: list[tuple[str, str]] = []
        self._dns = {name: ADDRESSES[primary]}

    # -- Transport and Resolver ------------------------------------------------------------

    def resolve(self, name: str) -> str:
        with self._lock:
            if name not in self._dns:
                raise ResolutionFailed(f"twin DNS has no record for {name!r}")
            return self._dns[name]

    def read(self, address: str, query: str) -> ReadResult:
        with self._lock:
            region = self._answering(address)
            wanted = query.split()
            return ReadResult(region.name, tuple(i for i in wanted if i in region.docs))

    def write(self, address: str, doc_id: str, payload: str) -> Ack:
        with self._lock:
            region = self._answering(address)
            if not region.primary or region.fenced:
                raise DefiniteFailure(
                    f"{region.name} refused write {doc_id}: not a writable primary"
                )
            region.docs[doc_id] = payload
            self._ship(region, doc_id, payload)
            if region.drop_acks > 0:
                region.drop_acks -= 1
                raise OutcomeUnknown(f"{region.name} committed {doc_id} but the answer was lost")
            return Ack(doc_id, region.name, time.time())

    def close(self) -> None:
        """Nothing to release."""

    def _answering(self, address: str) -> _Region:
        region = next((r for r in self._regions.values() if r.address == address), None)
        if region is None:
            raise DefiniteFailure(f"no region listens on {address}")
        if not region.up:
            raise DefiniteFailure(f"{region.name} ({address}) refused the connection: it is down")
        return region

    def _ship(self, source: _Region, doc_id: str, payload: str) -> None:
        self._unshipped.append((doc_id, payload))
        if self._link_up:
            self._flush(source)

    def _flush(self, source: _Region) -> None:
        for other in self._regions.values():
            if other is not source and not other.primary:
                other.docs.update(self._unshipped)
        self._unshipped.clear()

    # -- control, used by fault and recovery twins -----------------------------------------

    def set_up(self, region: str, up: bool) -> None:
        with self._lock:
            self._regions[region].up = up

    def is_up(self, region: str) -> bool:
        with self._lock:
            return self._regions[region].up

    def set_link(self, up: bool) -> None:
        with self._lock:
            self._link_up = up
            primary = next((r for r in self._regions.values() if r.primary), None)
            if up and primary is not None:
                self._flush(primary)

    def link_up(self) -> bool:
        with self._lock:
            return self._link_up

    def set_primary(self, region: str, primary: bool) -> None:
        """Promote (True) or demote (False) ``region``; a promotion drops unshipped writes."""
        with self._lock:
            if primary:
                self._unshipped.clear()
            self._regions[region].primary = primary

    def is_primary(self, region: str) -> bool:
        with self._lock:
            return self._regions[region].primary

    def set_fenced(self, region: str, fenced: bool) -> None:
        with self._lock:
            self._regions[region].fenced = fenced

    def is_fenced(self, region: str) -> bool:
        with self._lock:
            return self._regions[region].fenced

    def point_dns(self, region: str) -> None:
        with self._lock:
            self._dns[self.name] = ADDRESSES[region]

    def dns_region(self) -> str:
        with self._lock:
            address = self._dns[self.name]
            return next(r.name for r in self._regions.values() if r.address == address)

    def lose_next_acks(self, region: str, count: int) -> None:
        """The next ``count`` writes to ``region`` commit but their answers are lost."""
        with self._lock:
            self._regions[region].drop_acks = count

    def final_read(self, region: str) -> dict[str, str]:
        """Ids and content hashes stored in ``region`` (the surviving database after failover)."""
        with self._lock:
            return {i: content_hash(p) for i, p in self._regions[region].docs.items()}
