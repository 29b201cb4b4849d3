"""Faults on the real lab, named by their effect; each reads its effect back.

Every fault is rebuildable from its ledger record (kind + params), so `drkit rollback` heals
what a killed run left. Parameters are checked before anything is injected.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from drkit.clients.toxiproxy import STREAMS, TOXIC_ATTRIBUTES, TOXIC_TYPES, Toxic
from drkit.config import LabPorts, LabSettings
from drkit.errors import ConfigError
from drkit.faults.base import register_fault
from drkit.faults.reach import Service
from drkit.lab.lab import Lab
from drkit.lab.moto_server import moto_answers, moto_url
from drkit.lab.topology import (
    PUBLIC,
    REGIONS,
    SERVICES,
    SOURCES,
    check_proxy,
    check_region,
    check_source,
    proxy_name,
)

BLACKHOLE = {"type": "timeout", "attributes": {"timeout": 0}}


def _lab(state: str, port_base: int) -> Lab:
    return Lab(Path(state), LabSettings(ports=LabPorts(port_base)))


def lab_params(lab: Lab) -> dict[str, Any]:
    return {"state": str(lab.state), "port_base": lab.settings.ports.base}


def check_service(service: str) -> str:
    if service not in SERVICES:
        raise ConfigError(f"unknown service {service!r}; the lab has {', '.join(SERVICES)}")
    return service


def check_toxic(toxic_type: str, stream: str, toxicity: float, attributes: dict[str, Any]) -> None:
    if toxic_type not in TOXIC_TYPES:
        raise ConfigError(f"unknown toxic {toxic_type!r}; Toxiproxy has {', '.join(TOXIC_TYPES)}")
    if stream not in STREAMS:
        raise ConfigError(f"unknown direction {stream!r}; use {' or '.join(STREAMS)}")
    if not 0.0 < toxicity <= 1.0:
        raise ConfigError(f"toxicity {toxicity!r} is out of range; use a share in (0, 1]")
    for key, value in attributes.items():
        if key not in TOXIC_ATTRIBUTES[toxic_type]:
            raise ConfigError(
                f"{toxic_type} has no attribute {key!r}; it takes "
                f"{', '.join(TOXIC_ATTRIBUTES[toxic_type])}"
            )
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{toxic_type} {key}={value!r} must be a whole number >= 0")


class _LabFault:
    def __init__(self, state: str, port_base: int) -> None:
        self.state, self.port_base = state, port_base
        self.lab = _lab(state, port_base)

    def _base_params(self) -> dict[str, Any]:
        return {"state": self.state, "port_base": self.port_base}

    def toxiproxy(self) -> Service:
        server = self.lab.toxiproxy
        return Service("Toxiproxy", server.url, server.healthy)

    def moto(self) -> Service:
        port = self.lab.settings.ports.moto
        return Service("moto", moto_url(port), lambda: moto_answers(port))


class _RegionFault(_LabFault):
    """A fault on one region's database, rebuilt from its region alone."""

    def __init__(self, state: str, port_base: int, region: str) -> None:
        super().__init__(state, port_base)
        self.region = check_region(region)

    def params(self) -> dict[str, Any]:
        return {**self._base_params(), "region": self.region}


@register_fault
class ProxyToxic(_LabFault):
    """A Toxiproxy toxic on one path: latency, bandwidth, timeout, reset_peer, slicer, ..."""

    kind = "lab.toxic"

    def __init__(
        self,
        state: str,
        port_base: int,
        proxy: str,
        name: str,
        toxic_type: str,
        stream: str = "downstream",
        toxicity: float = 1.0,
        attributes: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(state, port_base)
        check_proxy(proxy)
        self.attributes = dict(attributes or {})
        check_toxic(toxic_type, stream, toxicity, self.attributes)
        self.proxy, self.name, self.toxic_type = proxy, name, toxic_type
        self.stream, self.toxicity = stream, toxicity

    def params(self) -> dict[str, Any]:
        return {
            **self._base_params(),
            "proxy": self.proxy,
            "name": self.name,
            "toxic_type": self.toxic_type,
            "stream": self.stream,
            "toxicity": self.toxicity,
            "attributes": self.attributes,
        }

    def describe(self) -> str:
        attrs = ", ".join(f"{k}={v}" for k, v in self.attributes.items())
        return (
            f"{self.toxic_type} ({attrs}) on {self.proxy} {self.stream}, toxicity {self.toxicity:g}"
        )

    def _toxic(self) -> Toxic:
        return Toxic(self.name, self.toxic_type, self.stream, self.toxicity, self.attributes)

    def depends_on(self) -> list[Service]:
        return [self.toxiproxy()]

    def inject(self) -> None:
        with self.lab.toxiproxy.client() as client:
            client.add_toxic(self.proxy, self._toxic())

    def heal(self) -> None:
        with self.lab.toxiproxy.client() as client:
            client.remove_toxic(self.proxy, self.name)

    def verify_injected(self) -> bool:
        with self.lab.toxiproxy.client() as client:
            proxy = client.find_proxy(self.proxy)
        return proxy is not None and proxy.toxic(self.name) is not None

    def verify_healed(self) -> bool:
        return not self.verify_injected()


@register_fault
class LinkCut(_LabFault):
    """A blackholed path (both directions): connections open, no byte passes, as on a lost
    link. On the replication link this is a cross-region cut."""

    kind = "lab.link_cut"

    def __init__(self, state: str, port_base: int, proxy: str) -> None:
        super().__init__(state, port_base)
        self.proxy = check_proxy(proxy)
        self.toxics = [
            Toxic(f"drill-cut-{stream}", "timeout", stream, 1.0, {"timeout": 0})
            for stream in STREAMS
        ]

    def params(self) -> dict[str, Any]:
        return {**self._base_params(), "proxy": self.proxy}

    def describe(self) -> str:
        return f"path {self.proxy} blackholed (both directions)"

    def depends_on(self) -> list[Service]:
        return [self.toxiproxy()]

    def inject(self) -> None:
        with self.lab.toxiproxy.client() as client:
            for toxic in self.toxics:
                client.add_toxic(self.proxy, toxic)

    def heal(self) -> None:
        with self.lab.toxiproxy.client() as client:
            for toxic in self.toxics:
                client.remove_toxic(self.proxy, toxic.name)

    def _present(self) -> list[bool]:
        with self.lab.toxiproxy.client() as client:
            proxy = client.find_proxy(self.proxy)
        return [proxy is not None and proxy.toxic(t.name) is not None for t in self.toxics]

    def verify_injected(self) -> bool:
        return all(self._present())

    def verify_healed(self) -> bool:
        return not any(self._present())


@register_fault
class SecurityGroupBlock(_LabFault):
    """Revoke a region's security-group ingress for some services from some sources; the lab
    enforces it as a blackhole. `services` and `sources` default to all: a region outage."""

    kind = "lab.security_group_block"

    def __init__(
        self,
        state: str,
        port_base: int,
        region: str,
        services: list[str] | None = None,
        sources: list[str] | None = None,
    ) -> None:
        super().__init__(state, port_base)
        self.region = check_region(region)
        self.services = [check_service(s) for s in (services or list(SERVICES))]
        self.sources = [check_source(s) for s in (sources or list(SOURCES))]

    def params(self) -> dict[str, Any]:
        return {
            **self._base_params(),
            "region": self.region,
            "services": self.services,
            "sources": self.sources,
        }

    def describe(self) -> str:
        return (
            f"{self.region} security group: ingress to {', '.join(self.services)} from "
            f"{', '.join(self.sources)} revoked"
        )

    def depends_on(self) -> list[Service]:
        """The rule lives in moto; the reconciler enforces it on Toxiproxy."""
        return [self.moto(), self.toxiproxy()]

    def _control(self) -> Any:
        from drkit.lab.control_plane import LabControlPlane

        return LabControlPlane.of(self.lab)

    def inject(self) -> None:
        control = self._control()
        for service in self.services:
            control.revoke_service(self.region, service, self.sources)
        self._wait("blackholed")

    def heal(self) -> None:
        control = self._control()
        for service in self.services:
            control.authorize_service(self.region, service, self.sources)
        self._wait("allowed")

    def _wait(self, state: str) -> None:
        control = self._control()
        for service in self.services:
            for source in self.sources:
                control.wait_enforced(self.region, service, source, state, budget_s=5)

    def _all(self, state: str) -> bool:
        control = self._control()
        return all(
            control.enforcement(self.region, service, source) == state
            for service in self.services
            for source in self.sources
        )

    def verify_injected(self) -> bool:
        return self._all("blackholed")

    def verify_healed(self) -> bool:
        return self._all("allowed")


@register_fault
class PrimaryCrash(_RegionFault):
    """The region's PostgreSQL is killed (SIGKILL to the postmaster and its children: no
    checkpoint, no goodbye); the heal starts it again through crash recovery (fencing, if any,
    still holds)."""

    kind = "lab.primary_crash"

    def describe(self) -> str:
        return f"{self.region} database crashed (SIGKILL)"

    def inject(self) -> None:
        self.lab.database.clusters[self.region].crash()

    def heal(self) -> None:
        self.lab.database.clusters[self.region].start()

    def verify_injected(self) -> bool:
        return self.lab.database.clusters[self.region].pid() is None

    def verify_healed(self) -> bool:
        return self.lab.database.clusters[self.region].is_ready()


@register_fault
class ReplayPause(_RegionFault):
    """WAL replay paused on a standby: it keeps receiving, and applies nothing."""

    kind = "lab.replay_pause"

    def describe(self) -> str:
        return f"WAL replay paused on {self.region}"

    def _paused(self) -> bool:
        cluster = self.lab.database.clusters[self.region]
        if not cluster.in_recovery():
            return False
        return bool(cluster.query("SELECT pg_is_wal_replay_paused()")[0][0])

    def inject(self) -> None:
        cluster = self.lab.database.clusters[self.region]
        if not cluster.in_recovery():
            raise ConfigError(f"{self.region} is not a standby: there is no replay to pause")
        cluster.query("SELECT pg_wal_replay_pause()")

    def heal(self) -> None:
        cluster = self.lab.database.clusters[self.region]
        if cluster.pid() is not None and cluster.in_recovery():
            cluster.query("SELECT pg_wal_replay_resume()")

    def verify_injected(self) -> bool:
        return self._paused()

    def verify_healed(self) -> bool:
        return not self._paused()


@register_fault
class IndexDrift(_LabFault):
    """A share of a region's index vectors missing or stale (content hash changed); the heal
    reconciles the index to the region's own database."""

    kind = "lab.index_drift"

    def __init__(
        self,
        state: str,
        port_base: int,
        region: str,
        share: float,
        mode: str = "missing",
        seed: int = 4370,
    ) -> None:
        super().__init__(state, port_base)
        if mode not in ("missing", "stale"):
            raise ConfigError(f"index drift mode {mode!r}: use missing or stale")
        if not 0.0 < share <= 1.0:
            raise ConfigError(f"index drift share {share!r} is out of range; use (0, 1], e.g. 0.05")
        self.region, self.share, self.mode, self.seed = check_region(region), share, mode, seed

    def params(self) -> dict[str, Any]:
        return {
            **self._base_params(),
            "region": self.region,
            "share": self.share,
            "mode": self.mode,
            "seed": self.seed,
        }

    def describe(self) -> str:
        return f"{self.share:.1%} of {self.region}'s index vectors {self.mode}"

    def _victims(self) -> list[str]:
        from drkit.lab.sut import database_hashes

        ids = sorted(database_hashes(self.lab, self.region))
        count = max(1, round(len(ids) * self.share))
        return sorted(random.Random(self.seed).sample(ids, min(count, len(ids))))

    def inject(self) -> None:
        from pinecone import Pinecone

        from drkit.lab.sut import index_url

        victims = self._victims()
        with Pinecone(api_key="lab").index(host=index_url(self.lab.settings, self.region)) as index:
            if self.mode == "missing":
                for start in range(0, len(victims), 100):
                    index.delete(ids=victims[start : start + 100])
                return
            for start in range(0, len(victims), 100):
                batch = victims[start : start + 100]
                fetched = index.fetch(ids=batch).vectors
                index.upsert(
                    vectors=[
                        {
                            "id": i,
                            "values": list(fetched[i].values),
                            "metadata": {
                                **(fetched[i].metadata or {}),
                                "content_hash": "sha256:drifted",
                            },
                        }
                        for i in batch
                        if i in fetched
                    ]
                )

    def heal(self) -> None:
        from drkit.lab.sut import reconcile_index

        reconcile_index(self.lab, self.region)

    def _drifted(self) -> int:
        from drkit.lab.sut import database_hashes, index_hashes

        rows, vectors = database_hashes(self.lab, self.region), index_hashes(self.lab, self.region)
        return sum(1 for i, h in rows.items() if vectors.get(i) != h)

    def verify_injected(self) -> bool:
        return self._drifted() >= len(self._victims())

    def verify_healed(self) -> bool:
        return self._drifted() == 0


def replication_link_name(lab: Lab, primary: str = REGIONS[0], standby: str = REGIONS[1]) -> str:
    return proxy_name(check_region(primary), "db", check_region(standby))


def public_api_proxy(region: str) -> str:
    return proxy_name(check_region(region), "api", PUBLIC)
