"""The aws target on a hybrid set-up: control plane = the lab's moto server, reached through
the config's endpoint_urls as AWS would be; data plane = the lab.

The catalog's region-outage drill runs with `--dr-target aws`: its fault goes through the EC2
API (the whole group snapshotted, every rule revoked, restored by difference), after the
interlocks; the lab's enforcement makes the cut real, so RTO and RPO are measured as on the
lab. The interlocks refuse without `--dr-allow-destructive`, and in a production blackout
window without an override; plan mode lists the AWS resources; credentials appear nowhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from drkit.aws.hybrid import INDEX_KEY_ENV, PASSWORD_ENV, lab_aws_config
from drkit.evidence.secrets import scan_folder
from drkit.lab.control_plane import (
    LabControlPlane,
    db_instance_id,
    group_id_of,
    quarantine_group_id,
)
from drkit.lab.lab import Lab
from drkit.lab.moto_server import moto_url
from drkit.lab.sg_reconciler import ALLOWED, BLACKHOLED
from drkit.lab.steady import fault_traces, quarantined, security_group_drift, topology_drift
from drkit.measure.chain import read_chain
from drkit.paths import PROJECT_ROOT
from drkit.project import write_drill_project

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OUTAGE = "security_group_and_the_watcher"
SECRET_KEY = "hybrid-secret-access-key-4370"  # a planted credential: must appear nowhere


def lab_password() -> str:
    """The lab's operator password: what the config's password reference resolves to."""
    secrets = json.loads((Path(os.environ["DRKIT_HOME"]) / "secrets.json").read_text())
    return str(secrets["operator"])


def run_drills(
    tmp: Path, config: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    overrides = env or {}
    env = {
        **os.environ,
        PASSWORD_ENV: lab_password(),  # the config's password reference, resolved
        INDEX_KEY_ENV: "lab",  # the config's index key reference (the lab's index takes any)
        "DRKIT_RUNS_DIR": str(tmp / "runs"),
        "AWS_ACCESS_KEY_ID": "AKIAHYBRIDTEST00001",
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
        **overrides,
    }
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(PROJECT_ROOT / "drills"),
            "-q",
            "-p",
            "no:cacheprovider",
            "--alluredir",
            str(tmp / "allure"),
            "--dr-target",
            "aws",
            "--dr-config",
            str(config),
            *args,
        ],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def hybrid(fresh_lab: Lab, tmp_path: Path) -> Path:
    path = tmp_path / "lab-aws.toml"
    path.write_text(lab_aws_config(fresh_lab))
    return path


def ledger_kinds(tmp: Path) -> list[str]:
    kinds = []
    for ledger in (tmp / "runs").glob("*/ledger.jsonl"):
        kinds += [r["record"]["kind"] for r in read_chain(ledger).records if r["event"] == "intent"]
    return kinds


def test_the_region_outage_drill_runs_through_the_aws_target(
    fresh_lab: Lab, hybrid: Path, tmp_path: Path
) -> None:
    """With the replication-lag drill beside it: on the hybrid set-up its toxics are the lab's
    data plane (the aws target has no latency fault of its own), the rest is the same run."""
    group = group_id_of(LabControlPlane.of(fresh_lab).clients, "us-east-1")
    done = run_drills(tmp_path, hybrid, "-k", f"{OUTAGE} or 512", "--dr-allow-destructive")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "2 passed" in output
    assert ledger_kinds(tmp_path) == ["aws.security_group_block", "lab.toxic", "lab.toxic"]
    (summary,) = (tmp_path / "runs").glob("*/verdicts/*security-group*.json")
    verdicts = {v["checker"]: v for v in json.loads(summary.read_text())["verdicts"]}
    assert verdicts["rto"]["valid"] is True and verdicts["rto"]["value"] > 0
    assert verdicts["rpo"]["valid"] is True
    (history,) = (tmp_path / "runs").glob("*/histories/*security-group*.jsonl")
    ops = [r["op"] for r in read_chain(history).records if "op" in r]
    interlocks = [o["value"] for o in ops if o["value"].get("check") == "interlocks"]
    assert [i["resource"] for i in interlocks] == [group]
    assert interlocks[0]["market_hours"]["allowed"] is True
    # drkit's watcher failed over through the AWS APIs: pg_promote over the config's
    # connection (its password from the reference) and a Route 53 UPSERT waited to INSYNC
    watcher = max((fresh_lab.state / "watcher").glob("watcher-*/ledger.jsonl"))
    kinds = [r["record"]["kind"] for r in read_chain(watcher).records if r["event"] == "intent"]
    assert {"aws.promote", "aws.route53_upsert"} <= set(kinds), kinds
    (lag,) = (tmp_path / "runs").glob("*/verdicts/*replication-link*.json")
    assert all(v["valid"] is True for v in json.loads(lag.read_text())["verdicts"])
    clocks = json.loads(next((tmp_path / "runs").glob("*/clock.json")).read_text())
    assert any(o["source"].startswith("AWS API Date header") for o in clocks["start"])
    # healed by difference: the group is the seed again, and nothing is left on the lab
    assert security_group_drift(fresh_lab) == []
    assert fault_traces(fresh_lab) == []
    # the planted credential is nowhere: output, Allure results, run folder
    assert SECRET_KEY not in output
    for folder in (tmp_path / "runs", tmp_path / "allure"):
        assert scan_folder(folder, {"AWS_SECRET_ACCESS_KEY": SECRET_KEY}) == []


def test_without_allow_destructive_the_interlock_refuses_before_any_fault(
    fresh_lab: Lab, hybrid: Path, tmp_path: Path
) -> None:
    done = run_drills(tmp_path, hybrid, "-k", OUTAGE)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "inconclusive: When step '{region} is cut off by its security group' failed:" in output
    assert "InterlockRefused" in output and "--dr-allow-destructive was not given" in output
    assert ledger_kinds(tmp_path) == []
    assert security_group_drift(fresh_lab) == []


def test_production_in_a_blackout_window_is_refused_without_an_override(
    fresh_lab: Lab, hybrid: Path, tmp_path: Path
) -> None:
    text = hybrid.read_text().replace('environment = "staging"', 'environment = "production"')
    text += (
        "\n[[blackout_windows]]\n"
        'start = "00:00"\nend = "23:59"\ntimezone = "UTC"\n'
        'weekdays = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]\n'
        "exchange_holidays = false\n"
    )
    hybrid.write_text(text)
    done = run_drills(tmp_path, hybrid, "-k", OUTAGE, "--dr-allow-destructive")
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "InterlockRefused" in output and "--dr-override-market-hours" in output
    assert ledger_kinds(tmp_path) == []


def test_plan_mode_lists_the_aws_resources_and_changes_nothing(
    fresh_lab: Lab, hybrid: Path, tmp_path: Path
) -> None:
    clients = LabControlPlane.of(fresh_lab).clients
    group = group_id_of(clients, "us-east-1")
    done = run_drills(tmp_path, hybrid, "-k", OUTAGE, "--dr-plan")
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"EC2 security group {group} in us-east-1" in done.stdout
    assert "Route 53 zone" in done.stdout
    instance = db_instance_id(clients, "us-east-1")
    quarantine = quarantine_group_id(clients, "us-east-1")
    fence = f"fence of us-east-1: EC2 instance {instance} moved into quarantine group {quarantine}"
    assert fence in done.stdout
    assert ledger_kinds(tmp_path) == []
    assert security_group_drift(fresh_lab) == [] and quarantined(fresh_lab) == []


class Guard:
    """A guard probe the stop condition watches: 200 until `trip()`, then 503."""

    def __init__(self) -> None:
        import http.server
        import threading

        guard = self
        self.healthy = True

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200 if guard.healthy else 503)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/guard"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


HELD = """\
Feature: A drill held open under a stop condition
  Scenario: a fault held while the desk is watched
    Given a writer and a probe run through the public name
    When us-west-2's security group stops admitting api traffic from public
    And writes continue for 120 seconds
    Then the pre-flight was ready
"""


def test_a_tripped_stop_condition_aborts_the_drill_and_heals(
    fresh_lab: Lab, hybrid: Path, tmp_path: Path
) -> None:
    import time

    guard = Guard()
    try:
        hybrid.write_text(
            hybrid.read_text()
            + f'\n[[stop_conditions]]\nname = "desk guard"\nprobe_url = "{guard.url}"\n'
        )
        write_drill_project(tmp_path, HELD)
        env = {
            **os.environ,
            "DRKIT_RUNS_DIR": str(tmp_path / "runs"),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }
        drill = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", "--alluredir", str(tmp_path / "allure"),
             "--dr-target", "aws", "--dr-config", str(hybrid)],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 90
        while not any("lacks" in t for t in fault_traces(fresh_lab)):
            assert drill.poll() is None, drill.communicate()[0][-3000:]
            assert time.monotonic() < deadline, "the fault never showed on the lab"
            time.sleep(0.2)
        tripped = time.monotonic()
        guard.healthy = False
        output, _ = drill.communicate(timeout=90)
        stopped_s = time.monotonic() - tripped
    finally:
        guard.close()
    assert drill.returncode != 0, output[-3000:]
    assert fault_traces(fresh_lab) == [], output[-3000:]
    (history,) = (tmp_path / "runs").glob("*/histories/*.jsonl")
    ops = [r["op"] for r in read_chain(history).records if "op" in r]
    assert ops[-1]["value"]["check"] == "aborted", ops[-1]
    assert "desk guard" in ops[-1]["value"]["reason"], ops[-1]
    assert stopped_s < 60, f"{stopped_s:.1f}s from the trip to the drill's end"


def test_archive_uses_the_configs_evidence_bucket(
    fresh_lab: Lab,
    hybrid: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from drkit.cli import main
    from drkit.evidence.seal import generate_keypair, load_signing_key, seal

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    package = tmp_path / "drkit-evidence-2026-Q4-hybrid"
    package.mkdir()
    (package / "report.md").write_text("# a drill report\n")
    generate_keypair(tmp_path / "key.pem", tmp_path / "key.pub.pem")
    meta = {"run_id": "hybrid", "git_commit": "unknown", "tool_versions": {}}
    zip_path = seal(package, meta=meta, key=load_signing_key(tmp_path / "key.pem"))
    code = main(["evidence", "archive", str(zip_path), "--dr-config", str(hybrid), "--json"])
    assert code == 0
    receipt = json.loads(capsys.readouterr().out)
    assert (receipt["bucket"], receipt["mode"]) == ("drkit-lab-evidence", "COMPLIANCE")
    assert main(["evidence", "archive", str(zip_path), "--dr-config", str(hybrid),
                 "--bucket", "other"]) == 2  # fmt: skip


def test_external_automation_is_observed_not_driven(
    fresh_lab: Lab, hybrid: Path, tmp_path: Path
) -> None:
    """`automation = "external"`: the organisation's own automation (here a stand-in Lambda
    that shares no code with drkit's watcher) fails the region over; the drill injects the
    disaster, starts no watcher, takes no recovery action, and measures RTO and RPO from what
    it observes: the DR database turning primary, the record changing, writes acknowledged."""
    hybrid.write_text(
        hybrid.read_text().replace('automation = "drkit-watcher"', 'automation = "external"')
    )
    watchers_before = set((fresh_lab.state / "watcher").glob("watcher-*"))
    actions = tmp_path / "org-automation.json"
    lambda_ = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("org_automation.py")), str(hybrid),
         str(actions)],
        env={**os.environ, PASSWORD_ENV: lab_password(),
             "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
    )  # fmt: skip
    try:
        done = run_drills(tmp_path, hybrid, "-k", OUTAGE, "--dr-allow-destructive")
    finally:
        lambda_.kill()
        lambda_.wait()
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    acted = json.loads(actions.read_text())
    assert acted["detected_at"] < acted["promoted_at"] < acted["switched_at"]
    # drkit took no recovery action: its ledger holds the fault only, and no watcher ran
    assert ledger_kinds(tmp_path) == ["aws.security_group_block"]
    assert set((fresh_lab.state / "watcher").glob("watcher-*")) == watchers_before
    (history,) = (tmp_path / "runs").glob("*/histories/*security-group*.jsonl")
    ops = [r["op"] for r in read_chain(history).records if "op" in r]
    assert any(o["value"].get("automation") == "external" for o in ops if o["kind"] != "write")
    marks = {o["value"]["phase"]: o["wall"] for o in ops if o["process"] == "recovery"}
    # each change was seen while or after the stand-in made it (pg_promote returns once the
    # server is out of recovery, so the promotion may be seen before the call returns), and
    # within the 0.2 s polling period plus one read (2 s at most) after
    assert acted["detected_at"] <= marks["promotion"] < acted["promoted_at"] + 2.5, marks
    assert acted["promoted_at"] <= marks["dns_switch"] < acted["switched_at"] + 2.5, marks
    (summary,) = (tmp_path / "runs").glob("*/verdicts/*security-group*.json")
    verdicts = {v["checker"]: v for v in json.loads(summary.read_text())["verdicts"]}
    assert verdicts["rto"]["valid"] is True, verdicts["rto"]
    # the RTO spans the stand-in's detection, promotion and record change
    assert verdicts["rto"]["value"] >= acted["switched_at"] - acted["detected_at"]
    assert verdicts["rpo"]["valid"] is True
    assert fault_traces(fresh_lab) == []
    print(f"\nexternal automation: RTO {verdicts['rto']['value']:.3f}s, RPO "
          f"{verdicts['rpo']['value']:.3f}s; stand-in detected->promoted "
          f"{acted['promoted_at'] - acted['detected_at']:.3f}s, promoted->switched "
          f"{acted['switched_at'] - acted['promoted_at']:.3f}s; promotion seen "
          f"{marks['promotion'] - acted['promoted_at']:+.3f}s, switch seen "
          f"{marks['dns_switch'] - acted['switched_at']:+.3f}s after its stamps")  # fmt: skip


def test_the_aws_targets_reads_go_through_the_configs_connections(
    fresh_lab: Lab, hybrid: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The final read (the RPO's lost-write check) and the replication monitor's connections
    come from the config, its password from the reference: the same rows as the lab's own
    read with the right password, a clear refusal with a wrong one."""
    from drkit.aws.config import load_config
    from drkit.errors import TargetUnreachable
    from drkit.targets.aws import HybridAwsTarget
    from drkit.targets.lab import LabTarget

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv(PASSWORD_ENV, lab_password())
    target = HybridAwsTarget(fresh_lab, load_config(hybrid))
    rows = target.final_read("us-west-2")
    assert len(rows) >= 100 and rows == LabTarget(fresh_lab).final_read("us-west-2")
    assert target.region_of_db(target.db_config("us-east-1")) == "us-east-1"
    # the services' and the index's health at the config's URLs (the index through the
    # Pinecone SDK, its key from the reference): a config pointing elsewhere reads unhealthy
    monkeypatch.setenv(INDEX_KEY_ENV, "lab")
    assert target.service_health("us-west-2").ok and target.index_health("us-west-2").ok
    config = load_config(hybrid)
    elsewhere = hybrid.with_name("elsewhere.toml")
    elsewhere.write_text(
        hybrid.read_text()
        .replace(config.region("us-west-2").service_url, "http://127.0.0.1:9")
        .replace(str(config.region("us-west-2").index.host), "http://127.0.0.1:9")  # type: ignore[union-attr]
    )
    moved = HybridAwsTarget(fresh_lab, load_config(elsewhere))
    assert not moved.service_health("us-west-2").ok
    assert not moved.index_health("us-west-2").ok
    monkeypatch.setenv(PASSWORD_ENV, "not-the-password")
    with pytest.raises(TargetUnreachable, match="password authentication failed"):
        HybridAwsTarget(fresh_lab, load_config(hybrid)).final_read("us-west-2")


FIS_LAG = (
    "Feature: Replication latency through AWS FIS\n"
    "  Scenario: the link slowed by the organisation's FIS template\n"
    "    When the replication link from us-east-1 to us-west-2 gets 300 ms of latency "
    "with 50 ms of jitter\n"
    "    And the faults heal\n"
    "    And the planned pre-flight runs\n"
    "    Then the pre-flight was ready\n"
)


def test_the_replication_latency_step_runs_the_configs_fis_template(
    fresh_lab: Lab, hybrid: Path, tmp_path: Path
) -> None:
    """With `fis_templates.replication_latency`, the latency step starts that FIS experiment
    (not a lab toxic), its figures kept beside the template as what the drill expects, and
    the heal stops it. moto's FIS changes nothing on the data plane: this proves the
    experiment's life cycle, not its effect."""
    import boto3
    import httpx

    moto = moto_url(fresh_lab.settings.ports.moto)
    fis = boto3.client("fis", endpoint_url=moto, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    template = fis.create_experiment_template(
        clientToken="drkit-hybrid-fis", description="latency on the primary's WAL stream",
        roleArn="arn:aws:iam::123456789012:role/drkit-fis", stopConditions=[{"source": "none"}],
        actions={"latency": {"actionId": "aws:ssm:send-command", "targets": {"Instances": "db"}}},
        targets={"db": {"resourceType": "aws:ec2:instance", "selectionMode": "ALL",
                        "resourceArns": ["arn:aws:ec2:us-east-1:123456789012:instance/i-0db"]}},
    )["experimentTemplate"]["id"]  # fmt: skip
    hybrid.write_text(
        hybrid.read_text() + f'\n[fis_templates]\nreplication_latency = "{template}"\n'
    )
    write_drill_project(tmp_path, FIS_LAG)
    states = f"{moto}/moto-api/state-manager"
    httpx.post(f"{states}/set-transition", json={
        "model_name": "fis::experiment", "transition": {"progression": "time", "seconds": 2}
    }).raise_for_status()  # fmt: skip
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "--dr-target", "aws", "--dr-config",
             str(hybrid), "--dr-allow-destructive"],
            cwd=tmp_path, capture_output=True, text=True, timeout=180,
            env={**os.environ, "DRKIT_RUNS_DIR": str(tmp_path / "runs"),
                 "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 PASSWORD_ENV: lab_password(), INDEX_KEY_ENV: "lab"},
        )  # fmt: skip
    finally:
        httpx.post(f"{states}/unset-transition", json={"model_name": "fis::experiment"})
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert ledger_kinds(tmp_path) == ["aws.fis_experiment"]
    experiments = fis.list_experiments(experimentTemplateId=template)["experiments"]
    assert [e["state"]["status"] for e in experiments] == ["stopped"]
    (history,) = (tmp_path / "runs").glob("*/histories/*.jsonl")
    ops = [r["op"] for r in read_chain(history).records if "op" in r]
    (expects,) = [o["value"] for o in ops if o["value"].get("check") == "fis template"]
    assert expects["step_expects"] == {"latency_ms": 300, "jitter_ms": 50}
    assert fault_traces(fresh_lab) == []  # no lab toxic was used


def test_with_data_plane_aws_the_drill_reaches_the_system_through_the_config_alone(
    fresh_lab: Lab, hybrid: Path, tmp_path: Path
) -> None:
    """The quarterly drill's path against an AWS account: the hybrid config without
    `data_plane = "lab"`, run from a state folder of its own, so the drill cannot find the lab
    at all. The lab is only the world it acts on: moto's security groups and instances,
    enforced on Toxiproxy, and the services, databases and indexes at the config's addresses.
    drkit's watcher runs from the harness's state folder with the config and fences the old
    primary by moving its instance into the quarantine group; nothing is reset afterwards, so
    the next drill refuses to start. Then the primary crash, as an EC2 instance stop."""
    config = tmp_path / "account.toml"
    text = hybrid.read_text()
    assert 'data_plane = "lab"\n' in text
    config.write_text(text.replace('data_plane = "lab"\n', ""))
    home = tmp_path / "drkit-home"  # drkit's own state folder: no lab in it
    own = {"DRKIT_HOME": str(home)}
    lab_watchers = sorted((fresh_lab.state / "watcher").glob("watcher-*"))
    control = LabControlPlane.of(fresh_lab)

    # a step that acts on the lab's data plane is refused by name, before any fault
    lag = run_drills(tmp_path / "lag", config, "-k", "512", "--dr-allow-destructive", env=own)
    output = lag.stdout + lag.stderr
    assert lag.returncode != 0, output[-3000:]
    assert 'has none (data_plane = "aws")' in output, output[-3000:]
    assert ledger_kinds(tmp_path / "lag") == []

    done = run_drills(tmp_path, config, "-k", OUTAGE, "--dr-allow-destructive", env=own)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "1 passed" in output
    assert ledger_kinds(tmp_path) == ["aws.security_group_block"]
    outage = verdicts_of(tmp_path, "security-group")
    print(f"config alone, outage: RTO {outage['rto']['value']} s, RPO {outage['rpo']['value']} s")
    # the harness ran drkit's watcher from its own state folder, and stopped it at the end
    (watcher,) = (home / "watcher").glob("watcher-*/ledger.jsonl")
    kinds = [r["record"]["kind"] for r in read_chain(watcher).records if r["event"] == "intent"]
    assert kinds == ["aws.quarantine", "aws.promote", "aws.route53_upsert"]
    assert not (home / "run" / "watcher.pid").exists()
    # fenced: the old primary's instance is in the quarantine group, so with its security
    # group healed every path to its database stays cut, and nothing else is
    quarantine = quarantine_group_id(control.clients, "us-east-1")
    assert quarantined(fresh_lab) == [
        f"us-east-1 database instance is in groups ['{quarantine}'], not drkit-lab-services"
    ]
    assert security_group_drift(fresh_lab) == []  # the fault healed by difference
    assert "us-east-1 database instance" in " ".join(topology_drift(fresh_lab))
    assert fault_traces(fresh_lab) == []  # the quarantine is a recovery action, not a fault
    assert control.enforcement("us-east-1", "db", "public") == BLACKHOLED
    assert control.enforcement("us-east-1", "api", "public") == ALLOWED
    # the lab itself was never used: no watcher or fence of its own
    assert sorted((fresh_lab.state / "watcher").glob("watcher-*")) == lab_watchers
    assert fresh_lab.watcher.pid() is None
    clocks = json.loads(next((tmp_path / "runs").glob("*/clock.json")).read_text())
    assert [o["source"] for o in clocks["start"]][:2] == [
        "PostgreSQL us-east-1",
        "PostgreSQL us-west-2",
    ]
    assert all(o["offset_s"] is not None for o in clocks["start"][:2])

    # the system is failed over and drkit resets nothing: the next drill refuses to start
    again = run_drills(tmp_path / "again", config, "-k", OUTAGE, "--dr-allow-destructive", env=own)
    output = again.stdout + again.stderr
    assert again.returncode != 0
    assert "not in its steady state" in output, output[-3000:]
    assert "us-west-2's database is a primary" in output
    assert ledger_kinds(tmp_path / "again") == []

    # failed back (here: the lab's reset), the primary crash: its EC2 instance stopped
    fresh_lab.reset()
    crash = run_drills(
        tmp_path / "crash", config, "-k", "primary_database", "--dr-allow-destructive", env=own
    )
    output = crash.stdout + crash.stderr
    assert crash.returncode == 0, output[-3000:]
    assert ledger_kinds(tmp_path / "crash") == ["aws.instance_stop"]
    crashed = verdicts_of(tmp_path / "crash", "primary-database")
    assert crashed["rto"]["valid"] is True and crashed["rpo"]["valid"] is True
    print(f"config alone, crash: RTO {crashed['rto']['value']} s, RPO {crashed['rpo']['value']} s")


def verdicts_of(tmp: Path, name: str) -> dict[str, dict[str, Any]]:
    (summary,) = (tmp / "runs").glob(f"*/verdicts/*{name}*.json")
    verdicts = {v["checker"]: v for v in json.loads(summary.read_text())["verdicts"]}
    assert verdicts["rto"]["valid"] is True and verdicts["rto"]["value"] > 0
    assert verdicts["rpo"]["valid"] is True
    return verdicts
