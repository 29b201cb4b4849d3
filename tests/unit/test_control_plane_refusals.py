"""The control plane's seed and its refusal of rules the lab cannot enforce (no lab needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from drkit.config import LabPorts, LabSettings
from drkit.errors import ConfigError
from drkit.lab.control_plane import LabControlPlane, region_of, seeded_rules
from drkit.lab.sg_reconciler import IngressRule

pytestmark = pytest.mark.unit

SETTINGS = LabSettings(ports=LabPorts(27400))


def plane() -> LabControlPlane:
    # nothing listens on these ports: a refused rule must be refused before any AWS call
    return LabControlPlane(Path("/nonexistent"), SETTINGS)


def test_the_seed_admits_every_service_from_every_source() -> None:
    rules = seeded_rules({"db": 27432, "index": 27481, "api": 27480})
    assert len(rules) == 9
    assert IngressRule("tcp", 27432, 27432, "203.0.113.0/24") in rules


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("192.0.2.0/24", r"tcp port 27432 from 192\.0\.2\.0/24 .*matches no modelled source"),
        ("10.1.7.0/24", r"only part of us-east-1's modelled 10\.1\.0\.0/16"),
    ],
)
def test_a_rule_the_lab_cannot_enforce_is_refused_naming_it(source: str, message: str) -> None:
    rule = IngressRule("tcp", 27432, 27432, source)
    with pytest.raises(ConfigError, match=message):
        plane().authorize_ingress("us-east-1", [rule])


def test_a_group_source_is_refused() -> None:
    rule = IngressRule("tcp", 27432, 27432, "sg-0abc", "group")
    with pytest.raises(ConfigError, match="another security group"):
        plane().authorize_ingress("us-west-2", [rule])


def test_service_rules_use_the_lab_ports_and_modelled_cidrs() -> None:
    assert plane().service_rule("db", "us-west-2") == IngressRule(
        "tcp", 27432, 27432, "10.2.0.0/16"
    )
    with pytest.raises(ConfigError, match="unknown service 'cache'"):
        plane().service_rule("cache", "public")
    with pytest.raises(ConfigError, match="unknown source 'eu-west-1'"):
        plane().service_rule("db", "eu-west-1")


def test_public_addresses_map_back_to_their_region() -> None:
    assert region_of("127.0.2.20") == "us-west-2"
    assert region_of("127.0.2.1") is None
