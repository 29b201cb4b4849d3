"""The reconciler's rule matching: ingress rules + proxies -> allowed / blackholed / unknown,
and rules the lab cannot enforce are named with the reason."""

from __future__ import annotations

from dataclasses import replace

import pytest

from drkit.clients.toxiproxy import Proxy, Toxic
from drkit.lab.sg_reconciler import (
    ALLOWED,
    BLACKHOLE_TOXICS,
    BLACKHOLED,
    SOURCE_CIDRS,
    UNKNOWN,
    DbInstance,
    IngressRule,
    apply_plan,
    plan_enforcement,
    rules_from_permissions,
    unenforceable_reason,
)
from drkit.lab.topology import REGIONS, SERVICES, SOURCES, proxy_spec

pytestmark = pytest.mark.unit

PORTS = {"db": 25432, "index": 25481, "api": 25480}
PROXIES = [proxy_spec(r, s, src, PORTS[s]) for s in SERVICES for r in REGIONS for src in SOURCES]
SEEDED = [IngressRule("tcp", p, p, SOURCE_CIDRS[src]) for p in PORTS.values() for src in SOURCES]


def states(plan: object) -> dict[str, str]:
    return {v.proxy: v.state for v in plan.proxies}  # type: ignore[attr-defined]


def test_the_seeded_rules_allow_every_path() -> None:
    plan = plan_enforcement({r: SEEDED for r in REGIONS}, PROXIES)
    assert set(states(plan).values()) == {ALLOWED}
    assert len(plan.proxies) == 18
    assert plan.unenforceable == ()


def test_revoking_one_rule_blackholes_exactly_that_path() -> None:
    rule = IngressRule("tcp", 25432, 25432, "10.2.0.0/16")
    east = [r for r in SEEDED if r != rule]
    plan = plan_enforcement({"us-east-1": east, "us-west-2": SEEDED}, PROXIES)
    blackholed = [p for p, s in states(plan).items() if s == BLACKHOLED]
    assert blackholed == ["us-east-1.db.from-us-west-2"]
    verdict = next(v for v in plan.proxies if v.proxy == "us-east-1.db.from-us-west-2")
    assert "tcp port 25432 from 10.2.0.0/16" in verdict.reason


def test_a_group_with_no_rules_blackholes_its_region_only() -> None:
    plan = plan_enforcement({"us-east-1": [], "us-west-2": SEEDED}, PROXIES)
    for proxy, state in states(plan).items():
        assert state == (BLACKHOLED if proxy.startswith("us-east-1.") else ALLOWED)


def instance(state: str = "running", rules: tuple[IngressRule, ...] | None = None) -> DbInstance:
    return DbInstance("i-0db1", state, ("sg-services",), tuple(SEEDED) if rules is None else rules)


def test_database_paths_follow_their_instance_in_the_services_group_as_before() -> None:
    plain = plan_enforcement({r: SEEDED for r in REGIONS}, PROXIES)
    with_instance = plan_enforcement(
        {r: SEEDED for r in REGIONS}, PROXIES, db_instances={"us-east-1": instance()}
    )
    assert states(with_instance) == states(plain)
    verdict = next(v for v in with_instance.proxies if v.proxy == "us-east-1.db.from-us-west-2")
    assert "(instance i-0db1: sg-services)" in verdict.reason


def test_a_quarantined_instance_cuts_every_path_to_its_database_and_nothing_else() -> None:
    plan = plan_enforcement(
        {r: SEEDED for r in REGIONS}, PROXIES, db_instances={"us-east-1": instance(rules=())}
    )
    blackholed = sorted(p for p, s in states(plan).items() if s == BLACKHOLED)
    assert blackholed == [f"us-east-1.db.from-{src}" for src in sorted(SOURCES)]


def test_a_stopped_instance_answers_nothing_whatever_its_groups_allow() -> None:
    plan = plan_enforcement(
        {r: SEEDED for r in REGIONS}, PROXIES, db_instances={"us-west-2": instance("stopped")}
    )
    blackholed = sorted(p for p, s in states(plan).items() if s == BLACKHOLED)
    assert blackholed == [f"us-west-2.db.from-{src}" for src in sorted(SOURCES)]
    verdict = next(v for v in plan.proxies if v.proxy == "us-west-2.db.from-public")
    assert verdict.reason == "instance i-0db1 is stopped: it answers nothing"


def test_an_unreadable_group_leaves_its_proxies_unknown() -> None:
    plan = plan_enforcement({"us-east-1": None, "us-west-2": []}, PROXIES)
    for proxy, state in states(plan).items():
        assert state == (UNKNOWN if proxy.startswith("us-east-1.") else BLACKHOLED)


@pytest.mark.parametrize(
    ("rule", "allowed"),
    [
        (IngressRule("tcp", 25432, 25432, "0.0.0.0/0"), {"db"}),
        (IngressRule("tcp", 25400, 25499, "10.0.0.0/8"), {"db", "index", "api"}),
        (IngressRule("tcp", 25480, 25481, "203.0.113.0/24"), {"index", "api"}),
        (IngressRule("-1", -1, -1, "0.0.0.0/0"), {"db", "index", "api"}),
        (IngressRule("udp", 25432, 25432, "0.0.0.0/0"), set()),
        (IngressRule("tcp", 25433, 25479, "0.0.0.0/0"), set()),
    ],
)
def test_port_ranges_protocols_and_wider_cidrs(rule: IngressRule, allowed: set[str]) -> None:
    plan = plan_enforcement({"us-east-1": [rule], "us-west-2": []}, PROXIES)
    east_sources = {
        v.service for v in plan.proxies if v.region == "us-east-1" and v.state == ALLOWED
    }
    assert east_sources == allowed


def test_a_wide_cidr_admits_only_the_sources_it_contains() -> None:
    plan = plan_enforcement(
        {"us-east-1": [IngressRule("tcp", 25432, 25432, "10.0.0.0/8")]}, PROXIES
    )
    assert states(plan)["us-east-1.db.from-us-west-2"] == ALLOWED
    assert states(plan)["us-east-1.db.from-public"] == BLACKHOLED


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        (IngressRule("tcp", 25432, 25432, "192.0.2.0/24"), "matches no modelled source"),
        (IngressRule("tcp", 25432, 25432, "10.2.5.0/24"), "only part of us-west-2"),
        (IngressRule("tcp", 25432, 25432, "sg-0123", "group"), "security group"),
        (IngressRule("tcp", 25432, 25432, "::/0", "cidr6"), "IPv6 range"),
        (IngressRule("tcp", 25432, 25432, "pl-42", "prefix-list"), "prefix list"),
        (IngressRule("tcp", 25432, 25432, "not-a-cidr"), "not a CIDR"),
    ],
)
def test_rules_the_lab_cannot_enforce_are_named_with_the_reason(
    rule: IngressRule, reason: str
) -> None:
    assert reason in (unenforceable_reason(rule, SOURCE_CIDRS) or "")
    plan = plan_enforcement({"us-east-1": [rule], "us-west-2": SEEDED}, PROXIES)
    assert [(u.region, u.rule) for u in plan.unenforceable] == [("us-east-1", rule.describe())]
    assert states(plan)["us-east-1.db.from-us-west-2"] == BLACKHOLED  # it admits nothing


@pytest.mark.parametrize("cidr", ["0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/16", "203.0.113.0/24"])
def test_rules_covering_whole_sources_are_enforceable(cidr: str) -> None:
    assert unenforceable_reason(IngressRule("tcp", 1, 1, cidr), SOURCE_CIDRS) is None


def test_permissions_flatten_to_one_rule_per_source_and_back() -> None:
    permissions = [
        {
            "IpProtocol": "tcp",
            "FromPort": 25432,
            "ToPort": 25432,
            "IpRanges": [{"CidrIp": "10.1.0.0/16", "Description": "x"}, {"CidrIp": "10.2.0.0/16"}],
            "UserIdGroupPairs": [{"GroupId": "sg-1"}],
            "Ipv6Ranges": [],
            "PrefixListIds": [],
        },
        {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
    ]
    rules = rules_from_permissions(permissions)
    assert rules == [
        IngressRule("tcp", 25432, 25432, "10.1.0.0/16"),
        IngressRule("tcp", 25432, 25432, "10.2.0.0/16"),
        IngressRule("tcp", 25432, 25432, "sg-1", "group"),
        IngressRule("-1", -1, -1, "0.0.0.0/0"),
    ]
    assert [r2 for r in rules for r2 in rules_from_permissions([r.to_permission()])] == rules
    assert rules[3].describe() == "all traffic from 0.0.0.0/0"


class FakeToxiproxy:
    """An in-memory twin of the three calls the reconciler makes."""

    def __init__(self, proxies: list[Proxy]) -> None:
        self._proxies = {p.name: p for p in proxies}
        self.calls = 0

    def proxies(self) -> dict[str, Proxy]:
        return dict(self._proxies)

    def add_toxic(self, proxy: str, toxic: Toxic) -> Toxic:
        self.calls += 1
        current = self._proxies[proxy]
        kept = tuple(t for t in current.toxics if t.name != toxic.name)
        self._proxies[proxy] = replace(current, toxics=(*kept, toxic))
        return toxic

    def remove_toxic(self, proxy: str, name: str) -> None:
        self.calls += 1
        current = self._proxies[proxy]
        self._proxies[proxy] = replace(
            current, toxics=tuple(t for t in current.toxics if t.name != name)
        )


def test_applying_touches_only_the_reconcilers_own_toxics() -> None:
    drill_toxic = Toxic("latency-200ms", "latency", attributes={"latency": 200})
    fake = FakeToxiproxy(
        [Proxy(p.name, p.listen, p.upstream, True, (drill_toxic,)) for p in PROXIES]
    )
    east = [r for r in SEEDED if r.source != "10.2.0.0/16" or r.from_port != 25432]
    cut = plan_enforcement({"us-east-1": east, "us-west-2": SEEDED}, PROXIES)
    assert apply_plan(fake, cut) == [  # type: ignore[arg-type]
        "us-east-1.db.from-us-west-2: blackholed (no ingress rule admits tcp port 25432 "
        "from 10.2.0.0/16)"
    ]
    cut_proxy = fake.proxies()["us-east-1.db.from-us-west-2"]
    assert {t.name for t in cut_proxy.toxics} == {
        "latency-200ms",
        *(t.name for t in BLACKHOLE_TOXICS),
    }
    assert apply_plan(fake, cut) == []  # type: ignore[arg-type]  # idempotent
    healed = plan_enforcement({r: SEEDED for r in REGIONS}, PROXIES)
    apply_plan(fake, healed)  # type: ignore[arg-type]
    assert all(p.toxics == (drill_toxic,) for p in fake.proxies().values())
