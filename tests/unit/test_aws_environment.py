"""The aws target without a lab (`data_plane = "aws"`): what the drill stands on comes from the
config. Here against a system that does not answer: the steady-state check names every part it
could not read (so a drill would be inconclusive before any fault), a lab-only step is refused
by name, and the failover's fencing phase says the old primary was not fenced."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from drkit.aws.config import load_config
from drkit.aws.environment import AwsEnvironment
from drkit.config import LAB_PROFILE, PRODUCTION_PROFILE
from drkit.drill import Drill
from drkit.errors import ConfigError
from drkit.targets.aws import AwsTarget, NotFenced
from tests.unit.test_aws_config import edited, write

pytestmark = pytest.mark.unit


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def silent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AwsEnvironment:
    """The staging example pointed at loopback ports where nothing answers."""
    port = closed_port()
    url = f"http://127.0.0.1:{port}"
    edits: list[tuple[str, object]] = [("timing_profile", "lab")]
    for region in ("us-east-1", "us-west-2"):
        edits += [
            (f"regions.{region}.service_url", url),
            (f"regions.{region}.database.host", "127.0.0.1"),
            (f"regions.{region}.database.port", port),
            (f"regions.{region}.database.password", {"env": "TEST_DB_PASSWORD"}),
            (f"regions.{region}.index.host", url),
        ]
    edits += [(f"endpoint_urls.{s}", url) for s in ("route53", "ec2", "rds", "cloudwatch", "sts")]
    config = load_config(write(tmp_path, edited(*edits)))
    monkeypatch.setenv("TEST_DB_PASSWORD", "not-a-real-password")
    monkeypatch.setenv("PINECONE_API_KEY", "not-a-real-key")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    return AwsEnvironment(config, tmp_path / "state")


def test_a_system_that_does_not_answer_is_not_in_its_steady_state(silent: AwsEnvironment) -> None:
    problems = silent.steady_state_problems()
    text = "; ".join(problems)
    assert "us-east-1's database cannot be read; the steady state has a primary" in text
    assert "us-west-2's database cannot be read; the steady state has a standby" in text
    assert "cannot read the public record in Route 53" in text
    for region in ("us-east-1", "us-west-2"):
        assert f"{region}'s service is not healthy" in text
        assert f"{region}'s index is not healthy" in text
    assert "not-a-real-password" not in text and "not-a-real-key" not in text


def test_the_state_folder_and_profile_come_from_the_config(silent: AwsEnvironment) -> None:
    assert (silent.state / "run").is_dir() and (silent.state / "logs").is_dir()
    assert silent.profile is LAB_PROFILE
    assert silent.watcher.pid() is None
    target = silent.target()
    assert target.regions() == ("us-east-1", "us-west-2")
    assert target.profile is LAB_PROFILE
    production = AwsTarget(load_config(Path("docs/examples/aws-staging.toml").resolve()))
    assert production.profile is PRODUCTION_PROFILE
    with pytest.raises(ConfigError, match="region 'eu-west-1' is not in"):
        target.promote("eu-west-1")


def test_a_lab_only_step_is_refused_by_name(silent: AwsEnvironment, tmp_path: Path) -> None:
    drill = Drill("a drill", tmp_path / "run", silent)
    with pytest.raises(ConfigError) as caught:
        drill.lab  # noqa: B018 - what a lab-only step reaches for
    message = str(caught.value)
    assert 'has none (data_plane = "aws")' in message
    assert str(silent.config.path) in message and "[fis_templates]" in message
    assert drill.profile() is LAB_PROFILE


def test_the_fencing_phase_says_the_old_primary_was_not_fenced(silent: AwsEnvironment) -> None:
    fence = silent.target().fence("us-east-1")
    assert isinstance(fence, NotFenced)
    assert fence.kind == "aws.not_fenced" and fence.phase == "fencing"
    assert fence.describe().startswith("us-east-1 NOT fenced")
    assert fence.params() == {"region": "us-east-1"}
