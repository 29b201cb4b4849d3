"""Lab faults refuse nonsense parameters with the allowed values, before anything is injected
(constructing a fault touches no process: these run without a lab)."""

from __future__ import annotations

import pytest

from drkit.errors import ConfigError
from drkit.faults.lab import IndexDrift, LinkCut, ProxyToxic

pytestmark = pytest.mark.unit

LAB = {"state": "/nonexistent/drkit-lab", "port_base": 25400}
LINK = "us-east-1.db.from-us-west-2"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"proxy": "us-east-9.db.from-us-west-2"}, "unknown path 'us-east-9.db.from-us-west-2'"),
        ({"toxic_type": "lag"}, "unknown toxic 'lag'; Toxiproxy has latency, bandwidth"),
        ({"stream": "sideways"}, "unknown direction 'sideways'; use upstream or downstream"),
        ({"toxicity": 1.5}, "toxicity 1.5 is out of range"),
        ({"attributes": {"latency": -300}}, "latency latency=-300 must be a whole number >= 0"),
        ({"attributes": {"rate": 10}}, "latency has no attribute 'rate'; it takes latency, jitter"),
        ({"attributes": {"latency": True}}, "must be a whole number"),
    ],
)
def test_a_toxic_with_a_nonsense_parameter_is_refused(kwargs: dict, message: str) -> None:
    params = {"proxy": LINK, "name": "t", "toxic_type": "latency", **kwargs}
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ProxyToxic(**LAB, **params)


def test_a_link_cut_on_an_unknown_path_names_the_pattern() -> None:
    with pytest.raises(ConfigError, match=r"<region>\.<service>\.from-<source>"):
        LinkCut(**LAB, proxy="replication")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"share": 0.0}, "share 0.0 is out of range"),
        ({"share": 0.05, "mode": "rotten"}, "mode 'rotten': use missing or stale"),
        ({"share": 0.05, "region": "eu-west-1"}, "eu-west-1"),
    ],
)
def test_index_drift_refuses_a_nonsense_share_mode_or_region(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        IndexDrift(**LAB, **{"region": "us-west-2", **kwargs})
