"""drkit's resolver caches each answer for its TTL, like a real client, and fails clearly."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from dnslib import QTYPE, RCODE, RR, A, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSLogger, DNSServer

from drkit.clients.resolver import (
    DnsLookupFailed,
    DnsResolver,
    NameNotFound,
    SystemResolver,
    parse_nameservers,
    resolver_from_spec,
)
from drkit.errors import ConfigError

pytestmark = pytest.mark.unit


class FakeZone(BaseResolver):
    """A DNS server's brain: a dict of name -> (address, ttl), counting the queries."""

    def __init__(self) -> None:
        self.records: dict[str, tuple[str, int]] = {}
        self.queries = 0
        self._lock = threading.Lock()

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        with self._lock:
            self.queries += 1
        reply = request.reply()
        name = str(request.q.qname).rstrip(".")
        if name not in self.records:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        address, ttl = self.records[name]
        reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(address), ttl=ttl))
        return reply


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def dns_server() -> Iterator[tuple[FakeZone, int]]:
    brain = FakeZone()
    quiet = DNSLogger(log="-recv,-send,-request,-reply,-truncated,-data,-error", prefix=False)
    server = DNSServer(brain, address="127.0.0.1", port=0, logger=quiet)
    server.start_thread()
    try:
        yield brain, server.server.server_address[1]
    finally:
        server.stop()
        server.server.server_close()


@pytest.fixture
def zone(dns_server: tuple[FakeZone, int]) -> tuple[FakeZone, int]:
    """The module's fake DNS server, emptied for the test."""
    brain, port = dns_server
    brain.records.clear()
    brain.queries = 0
    return brain, port


def unused_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_answer_carries_the_address_and_the_servers_ttl(zone: tuple[FakeZone, int]) -> None:
    brain, port = zone
    brain.records["rag.lab.drkit.test"] = ("127.0.1.20", 7)
    answer = DnsResolver([("127.0.0.1", port)]).resolve_with_ttl("rag.lab.drkit.test")
    assert (answer.address, answer.ttl, answer.cached) == ("127.0.1.20", 7, False)
    assert answer.expires_at - answer.resolved_at == 7


def test_the_old_answer_is_kept_until_its_ttl_runs_out(zone: tuple[FakeZone, int]) -> None:
    brain, port = zone
    clock = FakeClock()
    resolver = DnsResolver([("127.0.0.1", port)], clock=clock)
    brain.records["rag.lab.drkit.test"] = ("127.0.1.20", 5)
    assert resolver.resolve("rag.lab.drkit.test") == "127.0.1.20"
    brain.records["rag.lab.drkit.test"] = ("127.0.2.20", 5)  # the DNS switch
    clock.now += 4.99
    cached = resolver.resolve_with_ttl("RAG.lab.drkit.test.")  # same name, other spelling
    assert (cached.address, cached.cached) == ("127.0.1.20", True)
    assert cached.remaining_ttl(clock.now) == pytest.approx(0.01)
    clock.now += 0.01
    assert resolver.resolve("rag.lab.drkit.test") == "127.0.2.20"
    assert brain.queries == 2


def test_a_zero_ttl_is_never_cached(zone: tuple[FakeZone, int]) -> None:
    brain, port = zone
    brain.records["a.test"] = ("10.0.0.1", 0)
    resolver = DnsResolver([("127.0.0.1", port)], clock=FakeClock())
    for _ in range(3):
        assert resolver.resolve("a.test") == "10.0.0.1"
    assert brain.queries == 3


def test_nxdomain_raises_name_not_found_and_is_not_cached(zone: tuple[FakeZone, int]) -> None:
    brain, port = zone
    resolver = DnsResolver([("127.0.0.1", port)], clock=FakeClock())
    with pytest.raises(NameNotFound, match="NXDOMAIN"):
        resolver.resolve("missing.test")
    brain.records["missing.test"] = ("10.0.0.9", 60)
    assert resolver.resolve("missing.test") == "10.0.0.9"


def test_a_silent_server_fails_after_the_timeout_naming_it() -> None:
    port = unused_udp_port()
    resolver = DnsResolver([("127.0.0.1", port)], timeout_s=0.2, attempts=1)
    with pytest.raises(DnsLookupFailed, match=rf"127\.0\.0\.1:{port}.*drkit lab status"):
        resolver.resolve("rag.lab.drkit.test")


def test_the_next_nameserver_answers_when_the_first_is_silent(
    zone: tuple[FakeZone, int],
) -> None:
    brain, port = zone
    brain.records["a.test"] = ("10.0.0.1", 30)
    resolver = DnsResolver(f"127.0.0.1:{unused_udp_port()},127.0.0.1:{port}", timeout_s=0.2)
    answer = resolver.resolve_with_ttl("a.test")
    assert (answer.address, answer.server) == ("10.0.0.1", f"127.0.0.1:{port}")


def test_threads_share_one_cache(zone: tuple[FakeZone, int]) -> None:
    brain, port = zone
    brain.records["a.test"] = ("10.0.0.1", 60)
    resolver = DnsResolver([("127.0.0.1", port)])
    resolver.resolve("a.test")
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda _: resolver.resolve("a.test"), range(200)))
    assert set(results) == {"10.0.0.1"}
    assert brain.queries == 1


def test_nameserver_lists_parse_and_bad_ones_are_refused() -> None:
    assert parse_nameservers("10.0.0.2, 10.0.0.3:5353") == [("10.0.0.2", 53), ("10.0.0.3", 5353)]
    assert parse_nameservers([("127.0.0.1", 25453)]) == [("127.0.0.1", 25453)]
    with pytest.raises(ConfigError, match="port is not a number"):
        parse_nameservers("10.0.0.2:dns")
    with pytest.raises(ConfigError, match="no nameserver"):
        parse_nameservers("")


def test_system_mode_uses_the_operating_systems_resolver() -> None:
    resolver = resolver_from_spec("system")
    assert isinstance(resolver, SystemResolver)
    answer = resolver.resolve_with_ttl("localhost")
    assert answer.address == "127.0.0.1"
    assert answer.ttl == 0
