"""Database passwords, API keys and AWS secrets never leave the places they are kept.

A throw-away lab is started (through `drkit lab up`) with marker passwords of our choosing in
its secrets file, and marker secrets in the environment of every process: AWS keys, a Pinecone
key, the aws config's password reference, a password inside a connection string, a signing key.
Three drills run on it: the region outage on the lab target, the same drill through the aws
target with the config's password reference resolved (passing), and through a config whose
reference holds a wrong password (failing: failure messages and tracebacks are where secrets
leak). Then `drkit evidence build` seals two of the runs. Every byte is searched for every
marker, raw and encoded (JSON, URL, hex, base64 at each alignment), including the members of
every zip and gzip: run folders with their Allure results, evidence folders and zips, the
lab's state folder and PostgreSQL's own logs, the output of every pytest and drkit command.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import io
import json
import os
import re
import secrets as token
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest

from drkit.config import LabPorts, LabSettings
from drkit.evidence import secrets
from drkit.evidence.seal import generate_keypair
from drkit.lab.lab import Lab
from drkit.lab.lock import lab_lock
from drkit.paths import PROJECT_ROOT, RUN_ID_ENV, new_run_id
from tests.integration.conftest import SEED_ENV, TEST_PORT_BASE, TEST_SEED_DOCS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PORT_BASE_ENV = "DRKIT_TEST_SECRETS_PORT_BASE"  # overrides the choice of `port_base`
QUARTER = "2026-Q4"
OUTAGE = "security_group_and_the_watcher"
STALE_PASSWORD_ENV = "DRKIT_TEST_STALE_DB_PASSWORD"  # the failing run's password reference
# Files that hold a secret by design (0600, never in evidence): the lab's secrets file and the
# standby's libpq passfile. (The signing key's files are outside the lab, in their own folder.)
KEPT_ON_PURPOSE = ("secrets.json", "pgpass")
BASE64_RUN = re.compile(rb"[A-Za-z0-9+/_-]{64,}={0,2}")  # long enough to hold a whole marker
MAX_DEPTH = 4  # zip in zip in base64 in gzip: deeper nesting is not written by anything here
MIN_BYTES = 1_000_000  # a drill's Allure results, histories and HTML alone are megabytes


def _marker(kind: str, extra: str = "") -> str:
    """A distinctive value: found only where this run put it."""
    return f"MKR{kind}{token.token_hex(8)}{extra}"


class Withheld(dict[str, str]):
    """A mapping that holds secrets: its repr (in a traceback's locals) names keys only."""

    def __repr__(self) -> str:
        return f"<{len(self)} values withheld: {', '.join(sorted(self))}>"


@dataclass(repr=False)
class Planted:
    lab_passwords: Withheld  # secrets.json key -> marker
    environ: Withheld  # environment variable -> marker (or a DSN holding one)
    markers: Withheld  # marker name -> marker: what the search looks for

    def __repr__(self) -> str:
        return f"Planted(markers={self.markers!r})"

    @classmethod
    def make(cls, signing_pem: str) -> Planted:
        lab_passwords = {k: _marker(f"lab{k}") for k in ("replication", "operator", "app")}
        dsn_password = _marker("dsn", "@!x/")  # needs URL-encoding inside the DSN
        environ = {
            "AWS_ACCESS_KEY_ID": "AKIAMARKERTEST00001",  # an id, not a secret
            "AWS_SECRET_ACCESS_KEY": _marker("aws", "/Kq+Zr9"),
            "AWS_SESSION_TOKEN": "FwoGZXIvYXdzE" + _marker("sts", "/xY+z==") * 3,
            "AWS_DEFAULT_REGION": "us-east-1",
            "PINECONE_API_KEY": "pcsk_" + _marker("pinecone"),
            "DRKIT_LAB_DB_PASSWORD": lab_passwords["operator"],  # the hybrid config's reference
            STALE_PASSWORD_ENV: _marker("stale"),  # a wrong password: the failing run's
            "DRKIT_TEST_DATABASE_URL": (
                f"postgresql://rag_app:{quote(dsn_password, safe='')}@127.0.0.1:5432/ragdb"
            ),
            "DRKIT_SIGNING_KEY": signing_pem,  # `drkit evidence build` signs with it
        }
        markers = {
            **{f"lab password {k!r}": v for k, v in lab_passwords.items()},
            **{
                f"${name}": value
                for name, value in environ.items()
                if name
                not in ("AWS_ACCESS_KEY_ID", "AWS_DEFAULT_REGION", "DRKIT_TEST_DATABASE_URL")
            },
            "password in $DRKIT_TEST_DATABASE_URL": dsn_password,
        }
        del markers["$DRKIT_LAB_DB_PASSWORD"]  # the operator's password, planted above
        return cls(Withheld(lab_passwords), Withheld(environ), Withheld(markers))


@dataclass
class Searched:
    """What the exercise left outside its files: commands' output, run folders, statuses."""

    outputs: dict[str, bytes] = field(default_factory=dict)  # command -> its stdout + stderr
    runs: dict[str, Path] = field(default_factory=dict)  # run label -> run folder
    seconds: float = 0.0
    exit_codes: dict[str, int] = field(default_factory=dict)  # drill -> its pytest's status
    markers: Withheld = field(default_factory=Withheld)  # to redact outputs shown on failure


@dataclass
class Exercise:
    lab: Lab
    home: Path
    planted: Planted
    searched: Searched


def _run(searched: Searched, label: str, argv: list[str], env: dict[str, str]) -> int:
    """Run a command as a user would; keep its output for the search; its exit status.
    Only the status is handed back: a failed assertion on a process would print its output."""
    done = subprocess.run(
        argv, cwd=PROJECT_ROOT, env=env, capture_output=True, timeout=420, check=False
    )
    searched.outputs[label] = done.stdout + b"\n" + done.stderr
    return done.returncode


def _drkit(searched: Searched, label: str, env: dict[str, str], *args: str) -> None:
    if code := _run(searched, label, [sys.executable, "-m", "drkit.cli", *args], env):
        pytest.fail(f"`{label}` exited {code}:\n{_tail(searched, label)}", pytrace=False)


def _drill(searched: Searched, label: str, env: dict[str, str], *args: str) -> int:
    """A nested pytest on the drill catalog, with its own run folder."""
    run_id = new_run_id()
    argv = [sys.executable, "-m", "pytest", "drills", "-q", "-p", "no:cacheprovider", *args]
    searched.runs[label] = Path(env["DRKIT_RUNS_DIR"]) / run_id
    return _run(searched, label, argv, {**env, RUN_ID_ENV: run_id})


def _tail(searched: Searched, label: str, chars: int = 3000) -> str:
    """The end of a command's output with every marker replaced by its name."""
    text = searched.outputs[label].decode(errors="replace")
    for name, value in searched.markers.items():
        for form in secrets.encodings(value).values():
            text = text.replace(form.decode(), f"<{name}>")
    return text[-chars:]


def _files_below(folder: Path, skip: tuple[str, ...] = ()) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and not p.is_symlink() and p.name not in skip
    )


def _log_ddl(lab: Lab) -> None:
    """Log every DDL statement on the primary, as an audit configuration would (SOX): the
    lab's own `ALTER ROLE ... PASSWORD` must not put a password in the server's log."""
    with lab.database.east.connect() as conn:
        conn.execute("ALTER SYSTEM SET log_statement = 'ddl'")
        conn.execute("SELECT pg_reload_conf()")


def _exercise(lab: Lab, env: dict[str, str], markers: Withheld) -> Searched:
    """`drkit lab up`, three drills, two evidence builds: everything a quarter's run does."""
    home, searched = lab.state, Searched(markers=markers)
    started = time.monotonic()
    _drkit(searched, "drkit lab up", env, "lab", "up")
    _log_ddl(lab)
    _drkit(searched, "drkit lab up (again, DDL logged)", env, "lab", "up")  # roles set again
    _drkit(searched, "drkit lab status --json", env, "lab", "status", "--json")
    config, stale = home / "lab-aws.toml", home / "lab-aws-stale.toml"
    _drkit(searched, "drkit lab aws-config", env, "lab", "aws-config", "--out", str(config))
    stale.write_text(config.read_text().replace("DRKIT_LAB_DB_PASSWORD", STALE_PASSWORD_ENV))
    aws = ("-k", OUTAGE, "--dr-target", "aws", "--dr-allow-destructive", "--dr-config")
    # -l: locals in tracebacks, as an engineer debugging a failed drill runs it
    drills = {
        "pytest lab target": ("-k", OUTAGE),
        "pytest aws target": (*aws, str(config)),
        "pytest aws target, wrong password": ("-l", *aws, str(stale)),
    }
    for label, args in drills.items():
        _drkit(searched, f"drkit lab reset (before {label})", env, "lab", "reset")
        searched.exit_codes[label] = code = _drill(searched, label, env, *args)
        if code not in (0, 1):  # 1: the drill ran and failed; anything else: it did not run
            pytest.fail(f"`{label}` exited {code}:\n{_tail(searched, label)}", pytrace=False)
    # A drill with the right password may fail on the lab's own flakiness (a pre-flight
    # refusal): the search covers failures too; the success path must run at least once.
    if all(searched.exit_codes[label] for label in list(drills)[:2]):
        pytest.fail(f"neither drill passed:\n{_tail(searched, 'pytest aws target')}", pytrace=False)
    if searched.exit_codes["pytest aws target, wrong password"] == 0:
        pytest.fail("the drill with a wrong database password passed", pytrace=False)
    for label in ("pytest lab target", "pytest aws target, wrong password"):
        out = home / "evidence" / label.replace(" ", "-").replace(",", "")
        build = ["evidence", "build", "--results", str(searched.runs[label])]
        build += ["--quarter", QUARTER, "--out", str(out)]
        _drkit(searched, f"drkit evidence build ({label})", env, *build)
    searched.seconds = time.monotonic() - started
    return searched


def port_base(session: pytest.Session) -> int:
    """The session lab's ports when no test of this session starts it; else clear of them
    (+0) and of test_lab_bad_input's (+100)."""
    if PORT_BASE_ENV in os.environ:
        return int(os.environ[PORT_BASE_ENV])
    shared = any("lab" in getattr(item, "fixturenames", ()) for item in session.items)
    return TEST_PORT_BASE + 200 if shared else TEST_PORT_BASE


@pytest.fixture(scope="module")
def exercise(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Exercise]:
    """The lab up with planted secrets, three drills, two evidence builds; the lab down after."""
    base = port_base(request.session)
    home = tmp_path_factory.mktemp("drkit-secrets-home")
    keys = tmp_path_factory.mktemp("keys")
    generate_keypair(keys / "signing.pem", keys / "signing.pub.pem")
    planted = Planted.make((keys / "signing.pem").read_text())
    (home / "secrets.json").touch(mode=0o600)
    (home / "secrets.json").write_text(json.dumps(planted.lab_passwords))  # the lab keeps these
    lab = Lab(home, LabSettings(ports=LabPorts(base)))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DRKIT_HOME", str(home))
        patch.setenv("DRKIT_LAB_PORT_BASE", str(base))
        patch.setenv("DRKIT_RUNS_DIR", str(home / "runs"))
        patch.setenv(SEED_ENV, os.environ.get(SEED_ENV, TEST_SEED_DOCS))
        for name, value in planted.environ.items():
            patch.setenv(name, value)
        with lab_lock(home, f"test-{new_run_id()}"):
            try:
                searched = _exercise(lab, Withheld(os.environ), planted.markers)
                yield Exercise(lab, home, planted, searched)
            finally:
                lab.down(purge=True)


# -- the search ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Corpus:
    """Every byte searched, by where it came from (`file`, `zip:member`, `output of ...`)."""

    items: list[tuple[str, bytes]]
    sources: int = 0  # files and outputs read (the rest is decompressed or decoded from them)
    source_bytes: int = 0

    @property
    def size(self) -> int:
        return sum(len(data) for _, data in self.items)

    def search(self, markers: dict[str, str]) -> list[secrets.Leak]:
        needles = secrets.needles(markers)
        return [leak for where, data in self.items for leak in secrets.find(data, needles, where)]


def _expand(where: str, data: bytes, depth: int = 0) -> Iterator[tuple[str, bytes]]:
    """The bytes, those of every zip member or gzip stream inside them (decompressed), and
    every long base64 run decoded (Allure's one-file report embeds its data so), recursively."""
    yield where, data
    if depth >= MAX_DEPTH:
        return
    if data[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for member in archive.infolist():
                if not member.is_dir():
                    inner = archive.read(member)
                    yield from _expand(f"{where}:{member.filename}", inner, depth + 1)
    elif data[:2] == b"\x1f\x8b":
        yield from _expand(f"{where}:gunzip", gzip.decompress(data), depth + 1)
    else:
        for match in BASE64_RUN.finditer(data):
            decoded = _b64decode(match.group())
            if decoded is not None:
                yield from _expand(f"{where}:base64@{match.start()}", decoded, depth + 1)


def _b64decode(run: bytes) -> bytes | None:
    altchars = b"-_" if b"-" in run or b"_" in run else None
    try:
        return base64.b64decode(run + b"=" * (-len(run) % 4), altchars=altchars)
    except binascii.Error:
        return None


def _lab_files(exercise: Exercise) -> list[Path]:
    """The state folder, and the PostgreSQL roots wherever they are: logs, settings, data
    files, WAL and its archive."""
    files = _files_below(exercise.home, skip=KEPT_ON_PURPOSE)
    for cluster in exercise.lab.database.clusters.values():
        if exercise.home not in cluster.node.root.parents:
            files += _files_below(cluster.node.root, skip=KEPT_ON_PURPOSE)
    return files


def corpus_of(exercise: Exercise) -> Corpus:
    sources = [(str(path), path.read_bytes()) for path in _lab_files(exercise)]
    sources += [(f"output of {label}", out) for label, out in exercise.searched.outputs.items()]
    items = [item for where, data in sources for item in _expand(where, data)]
    return Corpus(items, len(sources), sum(len(data) for _, data in sources))


def _where(leaks: list[secrets.Leak]) -> str:
    """Marker names, files and offsets: never a value."""
    return "\n  ".join(leak.describe() for leak in leaks)


def test_no_planted_secret_is_in_any_byte_the_run_left(exercise: Exercise) -> None:
    started = time.monotonic()
    corpus = corpus_of(exercise)
    leaks = corpus.search(exercise.planted.markers)
    took = time.monotonic() - started
    names = [where for where, _ in corpus.items]
    print(
        f"\nsecrets search: {len(exercise.planted.markers)} markers in {corpus.sources} files and "
        f"outputs ({corpus.source_bytes:,} bytes; {corpus.size:,} with zip members, gzip "
        f"streams and base64 runs decoded) in {took:.1f}s; exercise "
        f"{exercise.searched.seconds:.0f}s; {len(leaks)} leaks"
    )
    kinds = {
        "Allure results": "/allure-results/",
        "evidence zip member": ".zip:",
        "compliance report": "/compliance/",
        "one-file HTML report": "report.html",
        "PostgreSQL log": "postgresql.log",
        "lab process log": "/logs/",
        "pytest output": "output of pytest",
        "drkit output": "output of drkit",
    }
    missing = [kind for kind, part in kinds.items() if not any(part in n for n in names)]
    assert not missing, f"the search did not reach: {missing}"
    assert corpus.source_bytes >= MIN_BYTES, f"only {corpus.source_bytes} bytes searched"
    assert not leaks, f"planted secrets found:\n  {_where(leaks)}"


def _planted_copies(exercise: Exercise) -> Iterator[tuple[str, str, str, bytes]]:
    """(marker name, encoding, where, bytes): a real Allure result with each marker written
    into its middle in each encoding, and the real evidence zip with a marker in a deflated
    member and in a gzip stream inside another."""
    run = exercise.searched.runs["pytest aws target, wrong password"]
    result = max((run / "allure-results").glob("*-result.json"), key=lambda p: p.stat().st_size)
    original = result.read_bytes()
    middle = len(original) // 2
    for name, value in exercise.planted.markers.items():
        for encoding, form in secrets.encodings(value).items():
            data = original[:middle] + form + original[middle:]
            yield name, encoding, f"{result.name} + {encoding}", data
    package = min((exercise.home / "evidence").glob("*/*.zip"))
    name, value = next(iter(exercise.planted.markers.items()))
    padding = b"drill output " * 5000
    for member, body in (
        ("run/operator-notes.txt", padding + value.encode() + padding),
        ("run/histories/notes.jsonl.gz", gzip.compress(padding + value.encode())),
    ):
        buffer = io.BytesIO(package.read_bytes())
        with zipfile.ZipFile(buffer, "a", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(member, body)
        yield name, "raw", f"{package.name}:{member}", buffer.getvalue()


def test_the_search_finds_every_marker_planted_in_a_copy_of_what_it_searched(
    exercise: Exercise,
) -> None:
    """The positive control: the search of the real run is not vacuous."""
    planted = list(_planted_copies(exercise))
    missed = []
    for name, encoding, where, data in planted:
        corpus = Corpus(list(_expand(where, data)))
        found = {leak.secret for leak in corpus.search(exercise.planted.markers)}
        if found != {name}:
            missed.append(f"{name} ({encoding}) in {where}: found {sorted(found)}")
    assert not missed, "\n".join(missed)
    count, least = len(planted), 6 * len(exercise.planted.markers) + 2  # 6: raw, hex, base64
    assert count >= least, f"only {count} copies planted"


def test_the_wrong_password_reached_postgresql_and_was_refused(exercise: Exercise) -> None:
    """The failing run is the failure path, not a configuration error: PostgreSQL refused the
    planted wrong password (and logged the refusal without it), the drill failed saying so."""
    logs = b"".join(
        cluster.node.log_file.read_bytes()
        for cluster in exercise.lab.database.clusters.values()
        if cluster.node.log_file.exists()
    )
    assert b"password authentication failed for user" in logs, "PostgreSQL refused no login"
    run = exercise.searched.runs["pytest aws target, wrong password"]
    messages = [
        json.loads(path.read_text()).get("statusDetails", {}).get("message", "")
        for path in (run / "allure-results").glob("*-result.json")
    ]
    assert any("password authentication failed" in m for m in messages), [m[:200] for m in messages]


def test_the_evidence_build_knows_every_planted_secret(exercise: Exercise) -> None:
    """`drkit evidence build` refuses a package holding a configured secret: every planted
    marker must be one it looks for, from the lab's secrets file and the environment."""
    configured = set(secrets.configured_secrets(exercise.home, exercise.planted.environ).values())
    unknown = [name for name, value in exercise.planted.markers.items() if value not in configured]
    assert not unknown, f"not configured secrets: {unknown}"
