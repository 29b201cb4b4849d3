"""drkit's own DNS resolver: asks given nameservers and caches each answer for its TTL.

Every drkit client resolves the public service name through this, as a real client would:
the answer is kept until its TTL runs out (on a monotonic clock), so a DNS switch reaches
clients only after the old record's TTL, which is what a failover drill has to measure. The
system resolver never sees the lab's DNS server (it listens on a non-standard port); on AWS
point `DnsResolver` at the VPC's Route 53 resolver, or use `SystemResolver`.
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from dnslib import QTYPE, RCODE, DNSError, DNSQuestion, DNSRecord

from drkit.errors import ConfigError, TargetUnreachable

Clock = Callable[[], float]
Nameserver = tuple[str, int]


class DnsLookupFailed(TargetUnreachable):
    """No nameserver gave a usable answer (timeout, SERVFAIL, no A record)."""


class NameNotFound(DnsLookupFailed):
    """The nameserver answered NXDOMAIN: the name does not exist."""


@dataclass(frozen=True)
class Answer:
    """One resolution: the addresses, the TTL the server gave, and when the answer expires."""

    name: str
    addresses: tuple[str, ...]
    ttl: int
    resolved_at: float  # on the resolver's clock (monotonic)
    expires_at: float
    server: str
    cached: bool = False

    @property
    def address(self) -> str:
        return self.addresses[0]

    def remaining_ttl(self, now: float) -> float:
        return max(0.0, self.expires_at - now)


class Resolver(Protocol):
    def resolve(self, name: str) -> str: ...


def parse_nameservers(
    spec: str | Sequence[str | Nameserver], default_port: int = 53
) -> list[Nameserver]:
    """'10.0.0.2, 10.0.0.3:5353' or a list of strings / (host, port) pairs -> [(host, port)]."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    servers = [_nameserver(item, default_port) for item in items if item]
    if not servers:
        raise ConfigError(
            f"no nameserver in {spec!r}; give host[:port] entries, e.g. 127.0.0.1:25453"
        )
    return servers


def _nameserver(item: str | Nameserver, default_port: int) -> Nameserver:
    if isinstance(item, tuple):
        return (item[0], int(item[1]))
    host, _, port = item.strip().partition(":")
    try:
        return (host, int(port) if port else default_port)
    except ValueError:
        raise ConfigError(f"nameserver {item!r}: the port is not a number") from None


def _key(name: str) -> str:
    return name.strip().rstrip(".").lower()


class DnsResolver:
    """Resolves A records through the given nameservers (UDP, TCP on truncation), in order.

    Answers are cached for their TTL (TTL 0 is not cached); NXDOMAIN and failures are not
    cached. Thread-safe: the cache is guarded by a lock, lookups run outside it.
    """

    def __init__(
        self,
        nameservers: str | Sequence[str | Nameserver],
        timeout_s: float = 1.0,
        attempts: int = 2,
        clock: Clock = time.monotonic,
    ) -> None:
        self.nameservers = parse_nameservers(nameservers)
        self.timeout_s = timeout_s
        self.attempts = attempts
        self._clock = clock
        self._cache: dict[str, Answer] = {}
        self._lock = threading.Lock()

    def resolve(self, name: str) -> str:
        return self.resolve_with_ttl(name).address

    def resolve_with_ttl(self, name: str) -> Answer:
        """The cached answer while its TTL lasts, else a fresh one from a nameserver."""
        key = _key(name)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and self._clock() < cached.expires_at:
                return _as_cached(cached)
        answer = self.query(name)
        if answer.ttl > 0:
            with self._lock:
                self._cache[key] = answer
        return answer

    def flush(self) -> None:
        with self._lock:
            self._cache.clear()

    def query(self, name: str) -> Answer:
        """Ask the nameservers now, bypassing the cache (what `dig` would show)."""
        failures: list[str] = []
        for _ in range(self.attempts):
            for server in self.nameservers:
                try:
                    return self._ask(server, name)
                except NameNotFound:
                    raise
                except (OSError, DNSError, DnsLookupFailed) as exc:
                    failures.append(f"{server[0]}:{server[1]}: {exc}")
        raise DnsLookupFailed(
            f"could not resolve {name!r}: {'; '.join(failures)}; check that the DNS server is "
            "up (on the lab: `drkit lab status`, component lab-dns)"
        )

    def _ask(self, server: Nameserver, name: str) -> Answer:
        sent_at = self._clock()
        reply = exchange(server, name, self.timeout_s)
        addresses, ttl = _a_records(reply, server, name)
        return Answer(
            name=_key(name),
            addresses=addresses,
            ttl=ttl,
            resolved_at=sent_at,
            expires_at=sent_at + ttl,
            server=f"{server[0]}:{server[1]}",
        )


def _as_cached(answer: Answer) -> Answer:
    return Answer(
        answer.name,
        answer.addresses,
        answer.ttl,
        answer.resolved_at,
        answer.expires_at,
        answer.server,
        cached=True,
    )


def exchange(server: Nameserver, name: str, timeout_s: float) -> DNSRecord:
    """One A query over UDP (retried over TCP when the reply is truncated)."""
    query = DNSRecord.question(name, "A")
    query.header.id = secrets.randbelow(65536)
    query.header.rd = 1
    packet = query.pack()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout_s)
        sock.connect(server)
        sock.send(packet)
        deadline = time.monotonic() + timeout_s
        while True:
            reply = DNSRecord.parse(sock.recv(4096))
            if reply.header.id == query.header.id and _same_question(reply, query.q):
                break
            if time.monotonic() > deadline:
                raise TimeoutError("only unrelated replies arrived")
    if reply.header.tc:
        reply = DNSRecord.parse(query.send(server[0], server[1], tcp=True, timeout=timeout_s))
    return reply


def _same_question(reply: DNSRecord, question: DNSQuestion) -> bool:
    return bool(reply.questions) and reply.questions[0] == question


def _a_records(reply: DNSRecord, server: Nameserver, name: str) -> tuple[tuple[str, ...], int]:
    rcode = reply.header.rcode
    where = f"{server[0]}:{server[1]}"
    if rcode == RCODE.NXDOMAIN:
        raise NameNotFound(f"{where} says {name!r} does not exist (NXDOMAIN)")
    if rcode != RCODE.NOERROR:
        raise DnsLookupFailed(f"{where} answered {RCODE.get(rcode)} for {name!r}")
    records = [rr for rr in reply.rr if rr.rtype == QTYPE.A]
    if not records:
        raise DnsLookupFailed(f"{where} has no A record for {name!r}")
    # the answer is only as fresh as its shortest-lived link (a CNAME chain included)
    return tuple(str(rr.rdata) for rr in records), min(int(rr.ttl) for rr in reply.rr)


class SystemResolver:
    """The operating system's resolver (getaddrinfo); it reports no TTL, so nothing is
    cached here: the OS or its stub resolver does its own caching."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock

    def resolve(self, name: str) -> str:
        return self.resolve_with_ttl(name).address

    def resolve_with_ttl(self, name: str) -> Answer:
        now = self._clock()
        try:
            infos = socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)
        except socket.gaierror as exc:
            if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", -5)):
                raise NameNotFound(f"the system resolver does not know {name!r}") from exc
            raise DnsLookupFailed(f"the system resolver failed on {name!r}: {exc}") from exc
        addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
        return Answer(_key(name), addresses, 0, now, now, "system")


def resolver_from_spec(spec: str, timeout_s: float = 1.0) -> DnsResolver | SystemResolver:
    """'system' for the OS resolver, else a nameserver list such as '10.0.0.2,10.0.0.3:53'."""
    if spec.strip().lower() == "system":
        return SystemResolver()
    return DnsResolver(spec, timeout_s=timeout_s)
