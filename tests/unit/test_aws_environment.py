"""The aws target without a lab (`data_plane = "aws"`): what the drill stands on comes from the
config. Here against a system that does not answer: the steady-state check names every part it
could not read (so a drill would be inconclusive before any fault), a lab-only step is refused
by name, and the failover's fencing phase says the old primary was not fenced."""

from __future__ import annotations

import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from drkit.aws.config import load_config
from drkit.aws.environment import AwsEnvironment
from drkit.config import LAB_PROFILE, PRODUCTION_PROFILE
from drkit.drill import Drill
from drkit.errors import ConfigError, OpenFaultsRemain, TargetUnreachable
from drkit.faults.rollback import rollback
from drkit.lab.lab import Lab
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
    config = silent.config
    east = config.region("us-east-1")
    bare = replace(east, network=replace(east.network, quarantine_group=None))
    unfenced = AwsTarget(replace(config, regions={**config.regions, "us-east-1": bare}))
    fence = unfenced.fence("us-east-1")
    assert isinstance(fence, NotFenced)
    assert fence.kind == "aws.not_fenced" and fence.phase == "fencing"
    assert fence.describe().startswith("us-east-1 NOT fenced: no quarantine_group in")
    assert fence.params() == {"region": "us-east-1"}


def test_a_declared_quarantine_needs_the_instance_it_fences(silent: AwsEnvironment) -> None:
    """With a quarantine group the fence reads the instance's groups first (to put them back
    at failback): an EC2 API that does not answer fails the fencing phase, clearly."""
    with pytest.raises(TargetUnreachable, match="describe_instances i-0123456789abcdef0"):
        silent.target().fence("us-east-1")


def a_watcher_left_running(state: Path) -> subprocess.Popen[bytes]:
    """A process standing for drkit's watcher that a killed drill left behind: its pid file
    where the watcher's goes, its command line naming the watcher's module."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", "drkit.lab.watcher_service"]
    )
    (state / "run" / "watcher.pid").write_text(f"{proc.pid}\n")
    return proc


def test_a_watcher_left_by_a_killed_drill_blocks_the_next_and_rollback_stops_it(
    silent: AwsEnvironment,
) -> None:
    proc = a_watcher_left_running(silent.state)
    try:
        with pytest.raises(OpenFaultsRemain, match="run `drkit rollback`"):
            silent.ensure_no_watcher_left()
        report = rollback(silent.state)
        assert report.ok, report.summary()
        assert f"stopped drkit's watcher (pid {proc.pid})" in report.summary()
        assert proc.wait(timeout=10) is not None
        silent.ensure_no_watcher_left()  # nothing left: the next drill may start
        assert rollback(silent.state).notes == ()
    finally:
        proc.kill()
        proc.wait()


def test_rollback_leaves_a_labs_own_watcher_to_the_lab(tmp_path: Path) -> None:
    state = tmp_path / "lab-state"
    (state / "run").mkdir(parents=True)
    (state / "lab.json").write_text('{"port_base": 25400}')
    proc = a_watcher_left_running(state)
    try:
        assert Lab(state).meta(), "the fixture must look like a lab's state folder"
        assert rollback(state).notes == ()
        assert proc.poll() is None  # still running: `drkit lab reset` ends the lab's watcher
    finally:
        proc.kill()
        proc.wait()


def test_a_state_folder_holding_a_lab_is_refused(silent: AwsEnvironment, tmp_path: Path) -> None:
    """The account's ledger pointer, STOP file and watcher must not be the lab's."""
    state = tmp_path / "lab-state"
    state.mkdir()
    (state / "lab.json").write_text('{"port_base": 25400}')
    with pytest.raises(ConfigError, match="holds a lab") as caught:
        AwsEnvironment(silent.config, state)
    assert "DRKIT_HOME=.drkit-aws" in str(caught.value)
