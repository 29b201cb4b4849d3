"""The lab's DNS server: answers A queries for the hosted zone straight from moto's Route 53.

Every query reads the zone's record sets from moto (one `list_resource_record_sets`, a few
milliseconds), so an UPSERT through boto3 is served at once, with the record's own TTL.
Names in the zone that do not exist get NXDOMAIN; names outside it are REFUSED. Failover,
weighted and multivalue record sets honour the lab's health-check status (the evaluator's
status file); alias records are not served.

Run as a lab component:
`python -m drkit.lab.dns_server --port P --moto-port M --zone lab.drkit.test. --health FILE`.
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dnslib import QTYPE, RCODE, RR, A, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSLogger, DNSServer

from drkit.clients.aws import AwsClients, AwsEndpoint, aws_errors
from drkit.clients.resolver import exchange
from drkit.errors import DrillError, LabError
from drkit.lab.sg_reconciler import log, read_status

HOST = "127.0.0.1"
HealthOf = Callable[[str], bool]


@dataclass(frozen=True)
class RecordSet:
    """A Route 53 resource record set, reduced to what answering needs."""

    name: str  # lower case, with the trailing dot
    type: str
    ttl: int
    values: tuple[str, ...]
    set_identifier: str | None = None
    failover: str | None = None  # PRIMARY / SECONDARY
    weight: int | None = None
    multivalue: bool = False
    health_check_id: str | None = None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> RecordSet:
        return cls(
            name=fqdn(str(data["Name"])),
            type=str(data["Type"]),
            ttl=int(data.get("TTL") or 0),
            values=tuple(str(r["Value"]) for r in data.get("ResourceRecords") or ()),
            set_identifier=data.get("SetIdentifier"),
            failover=data.get("Failover"),
            weight=data.get("Weight"),
            multivalue=bool(data.get("MultiValueAnswer")),
            health_check_id=data.get("HealthCheckId"),
        )


def fqdn(name: str) -> str:
    return name.lower().rstrip(".") + "."


# -- choosing the answer (pure) ---------------------------------------------------------------
def select(
    record_sets: Sequence[RecordSet],
    health: HealthOf,
    choose: Callable[[Sequence[RecordSet], Sequence[float]], RecordSet] | None = None,
) -> list[RecordSet]:
    """The record sets Route 53 would answer with, among those of one name and type."""
    if not record_sets or all(r.set_identifier is None for r in record_sets):
        return list(record_sets)
    usable = [r for r in record_sets if _healthy(r, health)]
    failover = [r for r in record_sets if r.failover]
    if failover:
        primary = next((r for r in failover if r.failover == "PRIMARY"), None)
        secondary = next((r for r in failover if r.failover == "SECONDARY"), None)
        # both unhealthy: Route 53 answers with the primary
        preferred = [r for r in (primary, secondary) if r is not None and r in usable]
        return preferred[:1] or [primary or failover[0]]
    weighted = [r for r in usable if (r.weight or 0) > 0]
    if weighted and all(r.weight is not None for r in record_sets):
        pick = choose or (lambda rs, ws: random.choices(list(rs), weights=ws)[0])
        return [pick(weighted, [float(r.weight or 0) for r in weighted])]
    return usable or list(record_sets)


def _healthy(record: RecordSet, health: HealthOf) -> bool:
    return record.health_check_id is None or health(record.health_check_id)


def answer(
    request: DNSRecord, zone: str, record_sets: Sequence[RecordSet], health: HealthOf
) -> DNSRecord:
    """The reply to one query, given every record set of the zone."""
    reply = request.reply()
    qname, qtype = fqdn(str(request.q.qname)), QTYPE.get(request.q.qtype)
    if not (qname == zone or qname.endswith("." + zone)):
        reply.header.rcode = RCODE.REFUSED
        return reply
    named = [r for r in record_sets if r.name == qname]
    if not named:
        reply.header.rcode = RCODE.NXDOMAIN
        return reply
    if qtype == "A":  # other types exist only as NODATA: the lab serves A records
        for record in select([r for r in named if r.type == "A"], health):
            for value in record.values:
                reply.add_answer(RR(qname, QTYPE.A, rdata=A(value), ttl=record.ttl))
    return reply


# -- reading moto -----------------------------------------------------------------------------
class Route53Zone:
    """The hosted zone's record sets, read from moto on every call (zone id cached)."""

    def __init__(self, clients: AwsClients, zone: str) -> None:
        self.clients = clients
        self.zone = fqdn(zone)
        self._zone_id: str | None = None
        self._lock = threading.Lock()

    def zone_id(self) -> str:
        with self._lock:
            if self._zone_id is None:
                self._zone_id = find_zone_id(self.clients, self.zone)
            return self._zone_id

    def record_sets(self) -> list[RecordSet]:
        zone_id = self.zone_id()
        try:
            return list_record_sets(self.clients, zone_id)
        except DrillError:
            with self._lock:  # moto restarted and was re-seeded: the zone has a new id
                self._zone_id = None
            raise


def find_zone_id(clients: AwsClients, zone: str) -> str:
    with aws_errors(f"find hosted zone {zone}", "moto"):
        zones = clients.route53().list_hosted_zones_by_name(DNSName=zone)["HostedZones"]
    for hosted in zones:
        if fqdn(hosted["Name"]) == fqdn(zone):
            return str(hosted["Id"])
    raise LabError(f"no hosted zone {zone} in moto; run `drkit lab reset` to seed it again")


def list_record_sets(clients: AwsClients, zone_id: str) -> list[RecordSet]:
    with aws_errors(f"list record sets of {zone_id}", "moto"):
        pages = clients.route53().get_paginator("list_resource_record_sets")
        return [
            RecordSet.from_api(r)
            for page in pages.paginate(HostedZoneId=zone_id)
            for r in page["ResourceRecordSets"]
        ]


def health_from_file(path: Path) -> HealthOf:
    """Health-check status as the evaluator last wrote it; an unknown check counts healthy."""

    def healthy(check_id: str) -> bool:
        status = read_status(path) or {}
        check = status.get("health_checks", {}).get(check_id)
        return True if check is None else bool(check.get("healthy", True))

    return healthy


class ZoneResolver(BaseResolver):
    def __init__(self, zone: Route53Zone, health: HealthOf) -> None:
        self.zone = zone
        self.health = health

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        try:
            return answer(request, self.zone.zone, self.zone.record_sets(), self.health)
        except DrillError as exc:
            log(f"SERVFAIL {request.q.qname}: {exc}")
            reply = request.reply()
            reply.header.rcode = RCODE.SERVFAIL
            return reply


def dns_answers(port: int, name: str, timeout_s: float = 0.3) -> bool:
    """The server answers a query (with any rcode): what the component's health means."""
    try:
        exchange((HOST, port), name, timeout_s)
    except Exception:  # no answer, or garbage dnslib cannot parse: not healthy either way
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="DNS for the drkit lab's hosted zone")
    parser.add_argument("--listen", default=HOST)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--moto-port", type=int, required=True)
    parser.add_argument("--zone", required=True)
    parser.add_argument("--health", type=Path, required=True, help="evaluator status file")
    args = parser.parse_args(argv)
    zone = Route53Zone(AwsClients(AwsEndpoint.lab(args.moto_port, max_attempts=1)), args.zone)
    resolver = ZoneResolver(zone, health_from_file(args.health))
    quiet = DNSLogger(log="-recv,-send,-request,-reply,-truncated,-data", prefix=False)
    server = DNSServer(resolver, address=args.listen, port=args.port, logger=quiet)
    log(f"lab-dns: zone {zone.zone} on udp://{args.listen}:{args.port}")
    server.start()
    return 0


if __name__ == "__main__":
    sys.exit(main())
