"""Where each region's parts live on loopback, and the Toxiproxy proxies between them.

Region `us-east-1` owns 127.0.1.0/24 and `us-west-2` owns 127.0.2.0/24. In each block:

* `.1`  the region's real processes (PostgreSQL, index, API): reached only through proxies;
* `.11` the region's services as reached from us-east-1 (a Toxiproxy listener);
* `.12` the region's services as reached from us-west-2;
* `.20` the region's services as reached from the public (clients, the harness, DNS answers).

So every (source, destination service) pair is its own proxy, which is what lets a security
group rule or a network fault cut one path and leave the others.
"""

from __future__ import annotations

from dataclasses import dataclass

from drkit.errors import ConfigError

REGIONS: tuple[str, ...] = ("us-east-1", "us-west-2")
PUBLIC = "public"
SOURCES: tuple[str, ...] = (*REGIONS, PUBLIC)
SERVICES: tuple[str, ...] = ("db", "index", "api")

_REGION_OCTET = {"us-east-1": 1, "us-west-2": 2}
_SOURCE_HOST = {"us-east-1": 11, "us-west-2": 12, PUBLIC: 20}


def check_region(region: str) -> str:
    if region not in _REGION_OCTET:
        raise ConfigError(f"unknown region {region!r}; the lab has {', '.join(REGIONS)}")
    return region


def check_source(source: str) -> str:
    if source not in _SOURCE_HOST:
        raise ConfigError(f"unknown traffic source {source!r}; the lab has {', '.join(SOURCES)}")
    return source


def other_region(region: str) -> str:
    check_region(region)
    return next(r for r in REGIONS if r != region)


def backend_address(region: str) -> str:
    """The address the region's real processes listen on."""
    return f"127.0.{_REGION_OCTET[check_region(region)]}.1"


def ingress_address(region: str, source: str) -> str:
    """The address at which `source` reaches `region`'s services (a Toxiproxy listener)."""
    return f"127.0.{_REGION_OCTET[check_region(region)]}.{_SOURCE_HOST[check_source(source)]}"


def proxy_name(region: str, service: str, source: str) -> str:
    return f"{check_region(region)}.{service}.from-{check_source(source)}"


def proxy_names() -> tuple[str, ...]:
    """Every path's proxy name, `<region>.<service>.from-<source>`."""
    return tuple(
        proxy_name(region, service, source)
        for region in REGIONS
        for service in SERVICES
        for source in SOURCES
    )


def check_proxy(name: str) -> str:
    if name not in proxy_names():
        raise ConfigError(
            f"unknown path {name!r}; paths are named <region>.<service>.from-<source> with "
            f"region {' or '.join(REGIONS)}, service {', '.join(SERVICES)} and source "
            f"{', '.join(SOURCES)}, e.g. us-east-1.db.from-us-west-2 (the replication link)"
        )
    return name


@dataclass(frozen=True)
class ProxySpec:
    name: str
    region: str
    service: str
    source: str
    listen: str
    upstream: str


def proxy_spec(region: str, service: str, source: str, port: int) -> ProxySpec:
    return ProxySpec(
        name=proxy_name(region, service, source),
        region=region,
        service=service,
        source=source,
        listen=f"{ingress_address(region, source)}:{port}",
        upstream=f"{backend_address(region)}:{port}",
    )


def replication_link(primary: str, standby: str, db_port: int) -> ProxySpec:
    """The cross-region link the standby's WAL receiver uses to reach the primary."""
    return proxy_spec(primary, "db", standby, db_port)
