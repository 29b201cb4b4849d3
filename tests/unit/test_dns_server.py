"""The lab DNS server's answers from a zone's record sets: TTLs, NXDOMAIN, routing policies."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
from dnslib import RCODE, DNSRecord

from drkit.lab.dns_server import RecordSet, answer, select

pytestmark = pytest.mark.unit

ZONE = "lab.drkit.test."
PUBLIC = RecordSet("rag.lab.drkit.test.", "A", 1, ("127.0.1.20",))


def ask(
    name: str,
    records: Sequence[RecordSet],
    qtype: str = "A",
    health: Callable[[str], bool] = lambda check: True,
) -> DNSRecord:
    return answer(DNSRecord.question(name, qtype), ZONE, records, health)


def test_an_a_record_is_answered_with_its_ttl() -> None:
    reply = ask("RAG.lab.drkit.test", [PUBLIC])
    assert reply.header.rcode == RCODE.NOERROR
    assert [(str(rr.rdata), rr.ttl) for rr in reply.rr] == [("127.0.1.20", 1)]


def test_unknown_names_are_nxdomain_and_other_zones_refused() -> None:
    assert ask("nope.lab.drkit.test", [PUBLIC]).header.rcode == RCODE.NXDOMAIN
    assert ask("example.com", [PUBLIC]).header.rcode == RCODE.REFUSED
    assert ask("drkit.test", [PUBLIC]).header.rcode == RCODE.REFUSED


def test_other_types_of_an_existing_name_get_an_empty_answer() -> None:
    reply = ask("rag.lab.drkit.test", [PUBLIC], qtype="AAAA")
    assert (reply.header.rcode, reply.rr) == (RCODE.NOERROR, [])


def failover(primary_check: str = "hc-east") -> list[RecordSet]:
    return [
        RecordSet(
            "rag.lab.drkit.test.",
            "A",
            5,
            ("127.0.1.20",),
            "east",
            "PRIMARY",
            None,
            False,
            primary_check,
        ),
        RecordSet(
            "rag.lab.drkit.test.",
            "A",
            5,
            ("127.0.2.20",),
            "west",
            "SECONDARY",
            None,
            False,
            "hc-west",
        ),
    ]


@pytest.mark.parametrize(
    ("health", "address"),
    [
        ({"hc-east": True, "hc-west": True}, "127.0.1.20"),
        ({"hc-east": False, "hc-west": True}, "127.0.2.20"),
        ({"hc-east": False, "hc-west": False}, "127.0.1.20"),  # Route 53 falls back to primary
    ],
)
def test_failover_records_follow_the_labs_health_checks(
    health: dict[str, bool], address: str
) -> None:
    reply = ask("rag.lab.drkit.test", failover(), health=health.__getitem__)
    assert [(str(rr.rdata), rr.ttl) for rr in reply.rr] == [(address, 5)]


def test_weighted_records_choose_among_healthy_ones_by_weight() -> None:
    records = [
        RecordSet("w.lab.drkit.test.", "A", 5, ("10.0.0.1",), "a", None, 1, False, "hc-east"),
        RecordSet("w.lab.drkit.test.", "A", 5, ("10.0.0.2",), "b", None, 3, False, "hc-west"),
        RecordSet("w.lab.drkit.test.", "A", 5, ("10.0.0.3",), "c", None, 0, False, None),
    ]
    seen: list[tuple[list[str], list[float]]] = []

    def choose(candidates: Sequence[RecordSet], weights: Sequence[float]) -> RecordSet:
        seen.append(([c.set_identifier or "" for c in candidates], list(weights)))
        return candidates[-1]

    picked = select(records, {"hc-east": False, "hc-west": True}.__getitem__, choose)
    assert [r.set_identifier for r in picked] == ["b"]
    assert seen == [(["b"], [3.0])]


def test_multivalue_answers_drop_unhealthy_values() -> None:
    records = [
        RecordSet("m.lab.drkit.test.", "A", 5, ("10.0.0.1",), "a", None, None, True, "hc-east"),
        RecordSet("m.lab.drkit.test.", "A", 5, ("10.0.0.2",), "b", None, None, True, "hc-west"),
    ]
    reply = ask("m.lab.drkit.test", records, health={"hc-east": False, "hc-west": True}.__getitem__)
    assert [str(rr.rdata) for rr in reply.rr] == ["10.0.0.2"]


def test_record_sets_parse_from_route53() -> None:
    record = RecordSet.from_api(
        {
            "Name": "Rag.lab.drkit.test.",
            "Type": "A",
            "TTL": 5,
            "SetIdentifier": "east",
            "Failover": "PRIMARY",
            "HealthCheckId": "hc-east",
            "ResourceRecords": [{"Value": "127.0.1.20"}],
        }
    )
    assert record == failover()[0]
