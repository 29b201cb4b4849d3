"""The bad-input corpus: malformed and hostile inputs, each run the way a user runs drkit.

Every case must end with a non-zero exit and one clear message (copied from what drkit
prints), no Python traceback, no fault injected, and nothing written outside the state
folder (DRKIT_HOME), the run folders (DRKIT_RUNS_DIR) and the output folder. None needs a
running lab: Gherkin, step and option cases go through `pytest --dr-plan` (collection and
the registered plan only); step parameters that are checked when the step runs go through
a run whose `drill` fixture refuses to be touched, so a step that checks its input before it
acts fails with the check's message and nothing else.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from drkit.evidence import seal as sealing
from drkit.faults.journal import pointer_path
from tests.unit.test_aws_config import DELETE, STAGING, edited, to_toml
from tests.unit.test_seal import build_package, meta_for

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
PYTHON_TRACEBACK = "Traceback (most recent call last)"
PYTEST_TRACEBACK = re.compile(r"^> |\.py:\d+: in \w+$", re.MULTILINE)  # pytest's long form
CACHES = re.compile(r"__pycache__|\.pytest_cache|\.ruff_cache|\.mypy_cache|\.egg-info")
UNSET = ("DRKIT_RUN_ID", "DRKIT_LAB_PORT_BASE", sealing.KEY_ENV, sealing.KEY_FILE_ENV)
WRITABLE = ("state", "runs", "out")  # the state folder, the run folders, the output folder

PLAN_CONFTEST = (
    "from steps import STEP_MODULES\n"
    'pytest_plugins = ["fixtures.plugin", "fixtures.drill", *STEP_MODULES]\n'
)
RUN_CONFTEST = '''
import pytest
from steps import STEP_MODULES

pytest_plugins = ["fixtures.plugin", *STEP_MODULES]


class UntouchableDrill:
    """A step that checks its input first never reaches the drill."""

    def __getattr__(self, name):
        raise AssertionError(f"the step used drill.{name} before checking its input")


@pytest.fixture
def drill():
    return UntouchableDrill()
'''
SCENARIO = 'from pytest_bdd import scenarios\nscenarios("drill.feature")\n'


def feature(*steps: str, judged: bool = True) -> str:
    """A one-scenario feature; a Then step is added at the end unless one is given (a drill
    without one is refused before anything runs, which would hide the case's own error)."""
    if judged and not any(step.startswith("Then ") for step in steps):
        steps = (*steps, "Then the RTO is within its objective")
    lines = "".join(f"    {step}\n" for step in steps)
    return f"Feature: bad input\n  Scenario: a drill\n{lines}"


# -- what each case puts in its work folder ----------------------------------------------------


Setup = Callable[[Path], None]


def nothing(work: Path) -> None:
    pass


def project(text: str | bytes, conftest: str = PLAN_CONFTEST) -> Setup:
    """A drill project: the conftest, one feature file, the module that collects it."""

    def write(work: Path) -> None:
        (work / "conftest.py").write_text(conftest)
        (work / "test_drill.py").write_text(SCENARIO)
        (work / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
        path = work / "drill.feature"
        path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)

    return write


def running(*steps: str) -> Setup:
    return project(feature(*steps), RUN_CONFTEST)


def padded_feature(megabytes: int) -> Setup:
    """A feature with one unknown step, padded with comments to `megabytes` MB."""
    comments = "# padding\n" * (100_000 * megabytes)
    return project(feature("When the moon falls") + comments)


def config(data: Mapping[str, object] | str | bytes) -> Setup:
    """A planning project plus `bad.toml` (a dict is written as TOML, text and bytes as-is)."""

    def write(work: Path) -> None:
        project(feature("Given the watcher is off"))(work)
        body = to_toml(dict(data)) if isinstance(data, Mapping) else data
        path = work / "bad.toml"
        path.write_bytes(body) if isinstance(body, bytes) else path.write_text(body)

    return write


def with_unreachable_s3(work: Path) -> None:
    """A sealed package, and a config whose S3 endpoint is a closed loopback port."""
    sealed(work)
    data = tomllib.loads(STAGING.read_text())
    data["endpoint_urls"] = {"s3": "http://127.0.0.1:9"}
    (work / "bad.toml").write_text(to_toml(data))


def corrupt_pointer(work: Path) -> None:
    """The open-faults pointer of a killed run, cut off mid-write."""
    path = pointer_path(work.parent / "state")
    path.parent.mkdir()
    path.write_text('{"run_id": "20261126T051729Z-3f9a", "ledg')


def sealed(work: Path) -> Path:
    """A small sealed package `evidence/` (and its zip), signed by `signer.pem`."""
    sealing.generate_keypair(work / "signer.pem", work / "signer.pub.pem")
    folder = build_package(work, "evidence")
    sealing.seal(folder, meta=meta_for(folder), key=sealing.load_signing_key(work / "signer.pem"))
    return folder


def tampered(work: Path) -> None:
    folder = sealed(work)
    (folder / "plan.json").write_text(json.dumps({"drills": ["nothing at all"]}))


def escaping_manifest(work: Path) -> None:
    """The manifest names ../etc/passwd and is signed again with the signer's own key."""
    folder = sealed(work)
    manifest = json.loads((folder / sealing.MANIFEST).read_text())
    manifest["files"].append({**manifest["files"][0], "path": "../etc/passwd"})
    (folder / sealing.MANIFEST).write_text(json.dumps(manifest, indent=2))
    (folder / sealing.SIGNATURE).unlink()
    sealing.sign_manifest(folder, sealing.load_signing_key(work / "signer.pem"))


def other_key(work: Path) -> None:
    sealed(work)
    sealing.generate_keypair(work / "other.pem", work / "other.pub.pem")


def not_pem_key(work: Path) -> None:
    sealed(work)
    (work / "key.pub.pem").write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI not a PEM\n")


def results_without_allure(work: Path) -> None:
    (work / "run").mkdir()
    (work / "run" / "run.json").write_text("{}\n")


def results(work: Path) -> None:
    (work / "run" / "allure-results").mkdir(parents=True)


# -- the corpus --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """`python -m ARGV` in the work folder (`{work}` is replaced by its path)."""

    argv: tuple[str, ...]
    message: str
    setup: Setup = nothing
    env: Mapping[str, str] = field(default_factory=dict)


def drkit(*args: str, message: str, setup: Setup = nothing, **env: str) -> Case:
    return Case(("drkit.cli", *args), message, setup, env)


def plan(*args: str, message: str, setup: Setup, **env: str) -> Case:
    return Case(("pytest", "--dr-plan", "-q", *args), message, setup, env)


def run(*steps: str, message: str) -> Case:
    argv = ("pytest", "-q", "-p", "no:allure_pytest_bdd")
    return Case(argv, message, running(*steps))


AWS = ("--dr-target", "aws", "--dr-config", "{work}/bad.toml")
BLIPS = "When the path {} is blackholed for {} milliseconds, 3 times, 2 seconds apart"
DEFAULT_HINT = "; pass --dr-config PATH to the aws target's TOML config"
BUILD = ("evidence", "build", "--results", "{work}/run", "--out", "{work}/out")
VERIFY = ("evidence", "verify", "{work}/evidence.zip", "--public-key")
ARCHIVE = ("evidence", "archive", "{work}/evidence.zip")
CASES: dict[str, Case] = {
    # -- Gherkin and feature files
    "broken Gherkin": plan(
        message="drill.feature line 5: not valid Gherkin: (5:7): inconsistent cell count "
        "within the table (the line reads '| 1 |'); fix the feature file there",
        setup=project(feature("When the faults heal", "  | a | b |", "  | 1 |")),
    ),
    "binary feature file": plan(
        message="drill.feature: not a text feature file (NUL byte at offset 0); check that the "
        "path names a Gherkin .feature file",
        setup=project(b"\x00\xff\xfeFeature\x00\x89PNG\r\n"),
    ),
    "feature file not UTF-8": plan(
        message="drill.feature line 3: not UTF-8 text (byte 0xe9 at offset 60); save the "
        "feature file as UTF-8",
        setup=project(feature("When the faults heal").replace("heal", "h\xe9al").encode("latin-1")),
    ),
    "huge feature file": plan(  # refused by its size, unread: parsing 20 MB took ~35-70 s
        message="drill.feature: 20.0 MB, above the 2 MB limit for a feature file (refused "
        "unread); a drill's feature is a few KB: check that this is the file you meant, or "
        "split it into feature files under the limit",
        setup=padded_feature(20),
    ),
    "large feature file under the limit": plan(
        message="ERROR: the plan has steps drkit does not know: drill.feature line 3: "
        "unknown step 'When the moon falls'",
        setup=padded_feature(1),
    ),
    # -- steps and their parameters
    "a drill without a Then step": plan(
        message="ERROR: drill.feature: scenario 'a drill' has no Then step: a drill that "
        "judges nothing could only pass; end it with Then steps (docs/steps.md lists them)",
        setup=project(feature("Given the watcher is off", judged=False)),
    ),
    "unknown step at plan time": plan(
        message="ERROR: the plan has steps drkit does not know: drill.feature line 3: unknown "
        "step 'Then the RTO is within its objectve' (closest known steps: Then the RTO is "
        "within its objective | ",
        setup=project(feature("Then the RTO is within its objectve")),
    ),
    "unknown step when run": run(
        "Then the RTO is within its objectve",
        message="drill.feature line 3); closest known steps: Then the RTO is within its "
        "objective | ",
    ),
    "a word for a number": plan(
        message="drill.feature line 3: unknown step 'When writes continue for three seconds'",
        setup=project(feature("When writes continue for three seconds")),
    ),
    "zero seconds of writes": run(
        "When writes continue for 0 seconds",
        message="inconclusive: When step 'writes continue for {seconds:d} seconds' failed: "
        "ConfigError: seconds of writes 0: out of range; use 1 to 600",
    ),
    "zero-millisecond blips": run(
        BLIPS.format("us-east-1.api.from-public", 0),
        message="ConfigError: blip length (milliseconds) 0: out of range; use 1 to 60000",
    ),
    "unknown region": run(
        "When us-east-9 is cut off by its security group",
        message="ConfigError: unknown region 'us-east-9'; the lab has us-east-1, us-west-2",
    ),
    "unknown path": run(
        BLIPS.format("us-east-1.api.from-mars", 300),
        message="ConfigError: unknown path 'us-east-1.api.from-mars'; paths are named "
        "<region>.<service>.from-<source>",
    ),
    # -- pytest options and environment
    "unknown target": plan(
        "--dr-target",
        "nowhere",
        message="ERROR: --dr-target=nowhere: unknown target; the targets are lab, aws",
        setup=project(feature()),
    ),
    "aws without a config": plan(
        "--dr-target",
        "aws",
        message="ERROR: --dr-target=aws needs --dr-config PATH (a TOML file; see "
        "docs/examples/aws-staging.toml, or `drkit lab aws-config` for the lab)",
        setup=project(feature()),
    ),
    "a quarter that does not exist": plan(
        "--dr-quarter",
        "2026-Q5",
        message="ERROR: --dr-quarter=2026-Q5: not a quarter; write it as YYYY-Qn, e.g. 2026-Q4",
        setup=project(feature()),
    ),
    "a malformed run id": plan(
        message="ERROR: DRKIT_RUN_ID='bad': not a run id; use UTC time and a suffix, "
        "e.g. 20261126T051729Z-3f9a, or unset it",
        setup=project(feature()),
        DRKIT_RUN_ID="bad",
    ),
    # -- the aws target's config, through pytest's usage error
    "config file missing": plan(
        *AWS, message="work/bad.toml: no such file" + DEFAULT_HINT, setup=project(feature())
    ),
    "config is a directory": plan(
        *AWS[:3],
        "{work}",
        message="work: not a regular file (a directory?)" + DEFAULT_HINT,
        setup=project(feature()),
    ),
    "config is binary": plan(
        *AWS,
        message="work/bad.toml: a binary file (it contains NUL bytes), not TOML text; check "
        "that --dr-config names the TOML config",
        setup=config(b"\x00\x01binary\xff"),
    ),
    "config is not TOML": plan(
        *AWS,
        message="work/bad.toml: line 1, column 9: TOML syntax error: Expected ']' at the end "
        "of a table declaration; fix the syntax there",
        setup=config("[regions\nprimary = 1\n"),
    ),
    "config misses a key": plan(
        *AWS,
        message="work/bad.toml: route53.zone_id: missing required key; add zone_id = "
        '"Z0123456789ABCDEFGHIJ" (see docs/examples/aws-staging.toml)',
        setup=config(edited(("route53.zone_id", DELETE))),
    ),
    "config has a wrong type": plan(
        *AWS,
        message="work/bad.toml: route53.ttl: expected an integer (got '60'); write it as an "
        "integer, e.g. ttl = 60",
        setup=config(edited(("route53.ttl", "60"))),
    ),
    "config has an unknown key": plan(
        *AWS,
        message="work/bad.toml: route53.zone: unknown key; did you mean 'zone_id'? (allowed "
        "here: zone_id, record, mode, ttl, health_check_ids",
        setup=config(edited(("route53.zone", "Z1"))),
    ),
    # -- the command line
    "lab port base not a number": drkit(
        "lab",
        "status",
        message="drkit: error: DRKIT_LAB_PORT_BASE='abc' is not a number; set it to an "
        "integer such as 25400 (the lab uses the 100 ports above it)",
        DRKIT_LAB_PORT_BASE="abc",
    ),
    "results folder missing": drkit(
        *BUILD[:3],
        "/nonexistent",
        *BUILD[4:],
        "--quarter",
        "2026-Q4",
        message="drkit: error: --results /nonexistent: no such folder; pass a run folder such "
        "as reports/runs/<run-id>",
    ),
    "quarter 26Q4": drkit(
        *BUILD,
        "--quarter",
        "26Q4",
        message="drkit: error: --quarter '26Q4': not a quarter; write it as YYYY-Qn, e.g. 2026-Q4",
        setup=results,
    ),
    "results without allure-results": drkit(
        *BUILD,
        "--quarter",
        "2026-Q4",
        message="work/run: no allure-results/ in ",
        setup=results_without_allure,
    ),
    "tampered package": drkit(
        *VERIFY[:2],
        "{work}/evidence",
        *VERIFY[3:],
        "{work}/signer.pub.pem",
        message="changed: plan.json",
        setup=tampered,
    ),
    "manifest names ../etc/passwd": drkit(
        *VERIFY[:2],
        "{work}/evidence",
        *VERIFY[3:],
        "{work}/signer.pub.pem",
        message="problem: manifest.json names a path outside the package: '../etc/passwd' "
        "(leaves the package (a '..', '.' or empty step)); refusing to read it: the manifest "
        "was forged or damaged",
        setup=escaping_manifest,
    ),
    "wrong public key": drkit(
        *VERIFY,
        "{work}/other.pub.pem",
        message="the package was signed or re-signed with another key, or that field was changed",
        setup=other_key,
    ),
    "public key not PEM": drkit(
        *VERIFY,
        "{work}/key.pub.pem",
        message="work/key.pub.pem does not hold a PEM public key",
        setup=not_pem_key,
    ),
    "retention of 3 years": drkit(
        *ARCHIVE,
        "--retention-years",
        "3",
        message="drkit: error: retention of 3 years is too short: SEC Rule 17a-4 evidence is "
        "kept at least 7 years here; pass --retention-years 7 or more",
        setup=with_unreachable_s3,
    ),
    "unreachable S3 endpoint": drkit(
        *ARCHIVE,
        "--endpoint-url",
        "http://127.0.0.1:9",
        "--bucket",
        "b",
        message="drkit: error: read the Object Lock configuration of b: http://127.0.0.1:9 did "
        'not answer (Could not connect to the endpoint URL: "http://127.0.0.1:9/b?object-lock'
        '"); on the lab check `drkit lab status` (the moto component)',
        setup=with_unreachable_s3,
    ),
    "unreachable S3 endpoint in the config": drkit(
        *ARCHIVE,
        "--dr-config",
        "{work}/bad.toml",
        message="drkit: error: read the Object Lock configuration of "
        "example-drkit-evidence-staging: http://127.0.0.1:9 did not answer",
        setup=with_unreachable_s3,
    ),
    "negative cost": drkit(
        "cost",
        "--monthly-dr-cost",
        "-5",
        message="drkit: error: cost input monthly_dr_cost=-5.0 must be a positive number",
    ),
    "abort and clear at once": drkit(
        "abort",
        "--reason",
        "x",
        "--clear",
        message="drkit abort: error: argument --clear: not allowed with argument --reason",
    ),
    "rollback with a torn open-faults pointer": drkit(
        "rollback",
        message="open-faults.json: the open-faults pointer is damaged (JSONDecodeError: ",
        setup=corrupt_pointer,
    ),
}


# -- running a case ----------------------------------------------------------------------------


def written(root: Path) -> dict[str, int]:
    """Every file under root outside the writable folders and bytecode caches, with its size."""
    files = {}
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if rel.parts[0] in WRITABLE or "__pycache__" in rel.parts or not path.is_file():
            continue
        files[str(rel)] = path.stat().st_size
    return files


def repo_files() -> set[str]:
    """Untracked files in the repository, and the entries of drkit's default state and run
    folders there (both ignored by git): what a run that escaped its folders would add."""
    done = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    untracked = {line[3:] for line in done.stdout.splitlines() if line.startswith("??")}
    defaults = [REPO / ".drkit", REPO / "reports" / "runs"]
    entries = {str(p) for folder in defaults if folder.is_dir() for p in folder.iterdir()}
    return {name for name in untracked | entries if not CACHES.search(name)}


def run_case(case: Case, root: Path) -> subprocess.CompletedProcess[str]:
    work = root / "work"
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env |= {
        "DRKIT_HOME": str(root / "state"),
        "DRKIT_RUNS_DIR": str(root / "runs"),
        "PYTHONPATH": str(REPO),
        "PYTHONDONTWRITEBYTECODE": "1",
        **case.env,
    }
    argv = [arg.replace("{work}", str(work)) for arg in case.argv]
    return subprocess.run(
        [sys.executable, "-m", *argv],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def params() -> list[object]:
    return [pytest.param(case, id=name) for name, case in CASES.items()]


def test_the_corpus_is_big_enough() -> None:
    assert len(CASES) >= 36


@pytest.mark.parametrize("case", params())
def test_bad_input_is_refused_with_one_clear_message(case: Case, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    case.setup(work)
    pointer = pointer_path(tmp_path / "state")
    had_pointer = pointer.exists()
    before, before_repo = written(tmp_path), repo_files()

    done = run_case(case, tmp_path)

    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert case.message in output, output
    assert PYTHON_TRACEBACK not in output, output
    assert pointer.exists() == had_pointer, "a fault was recorded as open"
    ledgers = [*tmp_path.glob("state/**/ledger.jsonl"), *tmp_path.glob("runs/**/ledger.jsonl")]
    assert ledgers == [], "a fault ledger was written"
    assert written(tmp_path) == before, "a file was written outside the state and output folders"
    assert repo_files() <= before_repo, "a file was written in the repository"
    assert PYTEST_TRACEBACK.search(output) is None, output
