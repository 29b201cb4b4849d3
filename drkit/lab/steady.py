"""The lab's steady state, read back: what a drill must find before and leave after."""

from __future__ import annotations

from drkit.lab.fence import FENCE_FILE, read_fences
from drkit.lab.lab import Lab

RECONCILER_TOXICS = ("sg-blackhole-up", "sg-blackhole-down")


def topology_drift(lab: Lab) -> list[str]:
    """Differences from the initial topology (recovery actions a failover leaves are here)."""
    problems = []
    status = lab.database.status()
    roles = {r: n["role"] for r, n in status["regions"].items()}
    if roles != {"us-east-1": "primary", "us-west-2": "standby"}:
        problems.append(f"database roles are {roles}")
    if status["replication"].get("state") != "streaming":
        problems.append(f"replication is {status['replication'].get('state')}")
    fences = read_fences(lab.state / FENCE_FILE)
    if fences:
        problems.append(f"fenced regions: {sorted(fences)}")
    problems += quarantined(lab)
    if lab.watcher.pid() is not None:
        problems.append("the watcher is on")
    from drkit.lab.sut import RagService

    for component in lab.services():
        if isinstance(component, RagService) and (problem := component.serving_problem()):
            problems.append(problem)
    return problems


def security_group_drift(lab: Lab) -> list[str]:
    """Ingress rules missing from (or added to) a region's group, and a database instance
    stopped, against the lab's seed."""
    from drkit.lab.control_plane import (
        LabControlPlane,
        current_rules,
        db_instance_stopped,
        seeded_rules,
    )
    from drkit.lab.topology import REGIONS

    control = LabControlPlane.of(lab)
    wanted = seeded_rules(control.service_ports())
    problems = []
    for region in REGIONS:
        current = current_rules(control.clients, region)
        problems += [
            f"{region} security group lacks {r.describe()}" for r in wanted if r not in current
        ]
        problems += [
            f"{region} security group has extra {r.describe()}" for r in current if r not in wanted
        ]
        problems += db_instance_stopped(control.clients, region)
    return problems


def quarantined(lab: Lab) -> list[str]:
    """Database instances a fence moved into other groups (the aws target's fence)."""
    return [problem for problems in _moved(lab).values() for problem in problems]


def _moved(lab: Lab) -> dict[str, list[str]]:
    """Region -> how its database instance left its seeded groups (regions that did)."""
    from drkit.lab.control_plane import LabControlPlane, db_instance_moved
    from drkit.lab.topology import REGIONS

    clients = LabControlPlane.of(lab).clients
    return {r: moved for r in REGIONS if (moved := db_instance_moved(clients, r))}


def fault_traces(lab: Lab) -> list[str]:
    """Traces a fault would leave: a toxic, a disabled proxy, a blackholed path, a revoked
    security-group rule, a stopped database, a paused replay."""
    problems = security_group_drift(lab)
    # a fenced region's database paths are cut by its quarantine (a recovery action, which
    # topology_drift names), not by a fault
    fenced = tuple(f"{region}.db." for region in _moved(lab))
    with lab.toxiproxy.client() as client:
        for proxy in client.proxies().values():
            if not proxy.enabled:
                problems.append(f"proxy {proxy.name} disabled")
            for toxic in proxy.toxics:
                if toxic.name in RECONCILER_TOXICS and proxy.name.startswith(fenced):
                    continue
                kind = (
                    "blackholed by a security group" if toxic.name in RECONCILER_TOXICS else "toxic"
                )
                problems.append(f"proxy {proxy.name}: {kind} {toxic.name}")
    for region, cluster in lab.database.clusters.items():
        if cluster.pid() is None:
            problems.append(f"{region}'s database is stopped")
        elif cluster.in_recovery() and cluster.query("SELECT pg_is_wal_replay_paused()")[0][0]:
            problems.append(f"{region}'s WAL replay is paused")
    return problems
