"""Sealing and verifying evidence packages: every change to a sealed package is named."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drkit.cli import main
from drkit.errors import ConfigError
from drkit.evidence import seal as sealing
from drkit.evidence.cli import evidence_subcommands, register
from drkit.evidence.seal import (
    BrokenChain,
    EvidenceError,
    SigningKey,
    generate_keypair,
    load_signing_key,
    seal,
    sign_manifest,
    verify,
)
from drkit.faults.journal import Journal
from drkit.measure.chain import read_chain
from drkit.measure.history import History

pytestmark = pytest.mark.unit

RUN_ID = "20261126T051729Z-3f9a"
PACKAGE_FILES = (
    "allure-results/5b1c-result.json",
    "allure-results/5b1c-attachment.txt",
    "html/index.html",
    "html/app.js",
    "compliance/compliance-report.json",
    "compliance/compliance-report.md",
    "histories/planned-switchover.jsonl",
    "histories/region-outage.jsonl",
    "ledger.jsonl",
    "plan.json",
    "run.json",
)
SEALED_FILES = (*PACKAGE_FILES, "manifest.json", "manifest.sig")
CHAINED = tuple(f for f in PACKAGE_FILES if f.endswith(".jsonl"))


# -- building packages -------------------------------------------------------------------------


def write_history(path: Path, name: str, writes: int) -> None:
    with History(path, name=name) as history:
        for doc in range(writes):
            op = history.invoke("writer-1", "write", {"id": doc, "hash": f"{doc:064x}"})
            history.complete(op, "ok", {"id": doc, "commit_time": 1_795_000_000.0 + doc})
        history.recovery("detection", at=1.5)
        history.observe("replication", region="us-west-2", lag_s=0.2)


def write_ledger(path: Path) -> None:
    journal = Journal(path)
    journal.event("run", run_id=RUN_ID, pid=1234, host="lab")
    journal.event("intent", 1, record={"kind": "link_cut", "description": "cut us-east-1 link"})
    journal.event("injected", 1)
    journal.event("healed", 1)
    journal.close()


def build_package(parent: Path, name: str = f"evidence-{RUN_ID}") -> Path:
    """A staged package folder shaped like the one `drkit evidence build` stages."""
    folder = parent / name
    texts = {
        "allure-results/5b1c-result.json": json.dumps(
            {"name": "Region outage", "status": "passed"}
        ),
        "allure-results/5b1c-attachment.txt": "RTO 4.2 s, RPO 0 s\n",
        "html/index.html": "<!doctype html><title>drills</title><p>12 passed</p>\n",
        "html/app.js": "console.log('allure');\n",
        "compliance/compliance-report.json": json.dumps({"rto": {"status": "PASS"}}),
        "compliance/compliance-report.md": "# Quarterly BCP test 2026-Q4\nRTO PASS\n",
        "plan.json": json.dumps({"drills": ["region outage", "planned switchover"]}),
        "run.json": json.dumps({"run_id": RUN_ID, "target": "lab"}),
    }
    for rel, text in texts.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    write_history(folder / "histories/planned-switchover.jsonl", "planned switchover", 3)
    write_history(folder / "histories/region-outage.jsonl", "region outage", 5)
    write_ledger(folder / "ledger.jsonl")
    return folder


def meta_for(folder: Path) -> dict[str, object]:
    return {
        "run_id": RUN_ID,
        "quarter": "2026-Q4",
        "git_commit": "fbdf289" + "0" * 33,
        "tool_versions": {"drkit": "0.1.0", "pytest": "8.3", "allure": "3.0"},
        "plan_sha256": hashlib.sha256((folder / "plan.json").read_bytes()).hexdigest(),
    }


@dataclass(frozen=True)
class Keys:
    signer: SigningKey
    public: Path
    other: SigningKey
    other_public: Path


def make_key(where: Path, name: str) -> tuple[SigningKey, Path]:
    private, public = where / f"{name}.pem", where / f"{name}.pub.pem"
    generate_keypair(private, public)
    return load_signing_key(private), public


@pytest.fixture(autouse=True)
def no_configured_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No signing key from the environment, and a state folder of the test's own."""
    monkeypatch.delenv(sealing.KEY_ENV, raising=False)
    monkeypatch.delenv(sealing.KEY_FILE_ENV, raising=False)
    monkeypatch.setenv("DRKIT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    vault = tmp_path / "vault"
    signer, public = make_key(vault, "signer")
    other, other_public = make_key(vault, "intruder")
    return Keys(signer, public, other, other_public)


@dataclass(frozen=True)
class Sealed:
    folder: Path
    zip: Path

    def at(self, form: str) -> Path:
        return self.folder if form == "folder" else self.zip


@pytest.fixture
def sealed(tmp_path: Path, keys: Keys) -> Sealed:
    folder = build_package(tmp_path / "out")
    zip_path = seal(folder, meta=meta_for(folder), key=keys.signer)
    return Sealed(folder, zip_path)


def flip_middle_byte(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :]


def rewrite_zip(
    zip_path: Path,
    change: Callable[[str, bytes], bytes | None] = lambda name, data: data,
    extra: dict[str, bytes] | None = None,
) -> None:
    """Rewrite the zip entry by entry: `change` returns new bytes, or None to drop it."""
    with zipfile.ZipFile(zip_path) as archive:
        entries = [(i.filename, archive.read(i)) for i in archive.infolist()]
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            new = change(name, data)
            if new is not None:
                archive.writestr(name, new)
        for name, data in (extra or {}).items():
            archive.writestr(name, data)


def zip_folder(folder: Path) -> Path:
    target = folder.with_name(folder.name + ".zip")
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            archive.write(path, f"{folder.name}/{path.relative_to(folder).as_posix()}")
    return target


# -- sealing --------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["folder", "zip"])
def test_a_fresh_package_verifies(sealed: Sealed, keys: Keys, form: str) -> None:
    report = verify(sealed.at(form), keys.public)
    assert report.ok, report.summary()
    assert report.signature_ok and report.key_kind == "configured"
    assert report.files_checked == len(PACKAGE_FILES)
    assert report.chains_checked == len(CHAINED)
    assert "intact" in report.summary() and report.warnings == ()


def test_the_zip_holds_the_folder_under_its_name(sealed: Sealed) -> None:
    assert sealed.zip == sealed.folder.with_name(sealed.folder.name + ".zip")
    with zipfile.ZipFile(sealed.zip) as archive:
        names = sorted(archive.namelist())
    assert names == sorted(f"{sealed.folder.name}/{rel}" for rel in SEALED_FILES)


def test_the_manifest_lists_every_file_and_the_run(sealed: Sealed, keys: Keys) -> None:
    manifest = json.loads((sealed.folder / "manifest.json").read_text())
    assert manifest["format"] == "drkit-evidence/1"
    assert {k: manifest[k] for k in meta_for(sealed.folder)} == meta_for(sealed.folder)
    assert datetime.fromisoformat(manifest["created_at"].replace("Z", "+00:00")).tzinfo
    assert [e["path"] for e in manifest["files"]] == sorted(PACKAGE_FILES)
    for entry in manifest["files"]:
        data = (sealed.folder / entry["path"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["size"] == len(data)
    assert manifest["key"] == {
        "kind": "configured",
        "algorithm": "Ed25519",
        "public_key_sha256": keys.signer.public_key_sha256,
    }


def test_the_manifest_records_each_chain_head_and_count(sealed: Sealed) -> None:
    manifest = json.loads((sealed.folder / "manifest.json").read_text())
    chains = {c["path"]: c for c in manifest["chains"]}
    assert sorted(chains) == sorted(CHAINED)
    for rel in CHAINED:
        chain = read_chain(sealed.folder / rel)
        assert chains[rel]["head"] == chain.last_hash
        assert chains[rel]["records"] == len(chain.records) > 0


def test_a_broken_chain_is_refused_at_seal_time_naming_file_and_line(
    tmp_path: Path, keys: Keys
) -> None:
    folder = build_package(tmp_path)
    history = folder / "histories/region-outage.jsonl"
    lines = history.read_bytes().split(b"\n")
    lines[3] = lines[3].replace(b'"writer-1"', b'"writer-9"')
    history.write_bytes(b"\n".join(lines))
    with pytest.raises(BrokenChain) as refused:
        seal(folder, meta=meta_for(folder), key=keys.signer)
    message = str(refused.value)
    assert "histories/region-outage.jsonl" in message and "line 5" in message, message
    assert not (folder / "manifest.json").exists()
    assert not folder.with_name(folder.name + ".zip").exists()


def test_an_unfinished_last_line_is_refused_at_seal_time(tmp_path: Path, keys: Keys) -> None:
    folder = build_package(tmp_path)
    with (folder / "ledger.jsonl").open("ab") as ledger:
        ledger.write(b'{"prev":"00')
    with pytest.raises(BrokenChain, match=r"ledger\.jsonl line 5 is unfinished"):
        seal(folder, meta=meta_for(folder), key=keys.signer)


def test_sealing_a_sealed_package_again_is_refused(sealed: Sealed, keys: Keys) -> None:
    with pytest.raises(EvidenceError, match="sealed already"):
        seal(sealed.folder, meta=meta_for(sealed.folder), key=keys.signer)


def test_metadata_must_name_the_run_commit_and_tools(tmp_path: Path, keys: Keys) -> None:
    folder = build_package(tmp_path)
    with pytest.raises(ConfigError, match=r"missing.*git_commit"):
        seal(folder, meta={"run_id": RUN_ID, "tool_versions": {}}, key=keys.signer)
    with pytest.raises(ConfigError, match=r"reserved keys given.*files"):
        seal(folder, meta={**meta_for(folder), "files": []}, key=keys.signer)
    with pytest.raises(ConfigError, match="plan_sha256"):
        seal(folder, meta={**meta_for(folder), "plan_sha256": "abc"}, key=keys.signer)


def test_a_private_key_in_the_package_is_refused(tmp_path: Path, keys: Keys) -> None:
    folder = build_package(tmp_path)
    (folder / "html/debug.txt").write_bytes(
        b"x" * 2_000_000 + Path(keys.signer.where).read_bytes()  # past the first read chunk
    )
    with pytest.raises(EvidenceError, match=r"html/debug\.txt contains a PEM private key"):
        seal(folder, meta=meta_for(folder), key=keys.signer)


def test_a_signing_key_kept_inside_the_package_is_refused(tmp_path: Path) -> None:
    folder = build_package(tmp_path)
    key, _ = make_key(folder, "signing")
    with pytest.raises(EvidenceError, match="lies inside the package"):
        seal(folder, meta=meta_for(folder), key=key)


def test_no_private_key_material_reaches_the_package(sealed: Sealed, keys: Keys) -> None:
    private_pem = Path(keys.signer.where).read_bytes()
    body = private_pem.split(b"-----")[2].strip()
    blobs = [p.read_bytes() for p in sealed.folder.rglob("*") if p.is_file()]
    blobs.append(sealed.zip.read_bytes())
    with zipfile.ZipFile(sealed.zip) as archive:
        blobs += [archive.read(name) for name in archive.namelist()]
    assert not any(b"PRIVATE KEY" in blob or body in blob for blob in blobs)


# -- keys ------------------------------------------------------------------------------------


def test_keygen_writes_a_0600_private_key_and_never_overwrites(tmp_path: Path) -> None:
    private, public = tmp_path / "k" / "signing.pem", tmp_path / "k" / "signing.pub.pem"
    fingerprint = generate_keypair(private, public)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert b"BEGIN PRIVATE KEY" in private.read_bytes()
    assert b"BEGIN PUBLIC KEY" in public.read_bytes()
    assert load_signing_key(private).public_key_sha256 == fingerprint
    before = private.read_bytes()
    with pytest.raises(ConfigError, match="never overwrites"):
        generate_keypair(private, tmp_path / "other.pub.pem")
    assert private.read_bytes() == before
    # no temporary file left behind
    assert sorted(p.name for p in private.parent.iterdir()) == ["signing.pem", "signing.pub.pem"]


def test_without_a_configured_key_a_lab_key_is_made_and_marked(
    tmp_path: Path, no_configured_key: Path
) -> None:
    key = load_signing_key()
    lab_private = no_configured_key / "keys" / "lab-signing-key.pem"
    lab_public = no_configured_key / "keys" / "lab-signing-key.pub.pem"
    assert key.kind == "lab" and key.where == str(lab_private)
    assert stat.S_IMODE(lab_private.stat().st_mode) == 0o600
    assert stat.S_IMODE(lab_private.parent.stat().st_mode) == 0o700
    assert load_signing_key().public_key_sha256 == key.public_key_sha256  # made once, reused
    folder = build_package(tmp_path)
    zip_path = seal(folder, meta=meta_for(folder), key=key)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["key"] == {
        "kind": "lab",
        "algorithm": "Ed25519",
        "public_key_sha256": key.public_key_sha256,
        "warning": "signed with a lab key created on this machine; not fit for production evidence",
    }
    report = verify(zip_path, lab_public)
    assert report.ok and report.key_kind == "lab"
    assert "warning: signed with a lab key" in report.summary()


def test_a_key_can_come_from_the_environment(
    tmp_path: Path, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    pem = Path(keys.signer.where).read_text()
    monkeypatch.setenv(sealing.KEY_ENV, pem)
    from_pem = load_signing_key()
    assert (from_pem.kind, from_pem.where) == (
        "configured",
        "environment variable " + sealing.KEY_ENV,
    )
    assert from_pem.public_key_sha256 == keys.signer.public_key_sha256
    assert pem not in repr(from_pem)
    monkeypatch.delenv(sealing.KEY_ENV)
    monkeypatch.setenv(sealing.KEY_FILE_ENV, keys.signer.where)
    from_file = load_signing_key()
    assert (from_file.kind, from_file.where) == ("configured", keys.signer.where)


def test_key_configuration_mistakes_are_clear_and_never_quote_the_key(
    tmp_path: Path, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    pem = Path(keys.signer.where).read_text()
    monkeypatch.setenv(sealing.KEY_ENV, pem)
    monkeypatch.setenv(sealing.KEY_FILE_ENV, keys.signer.where)
    with pytest.raises(ConfigError, match="both DRKIT_SIGNING_KEY and DRKIT_SIGNING_KEY_FILE"):
        load_signing_key()
    monkeypatch.delenv(sealing.KEY_FILE_ENV)
    monkeypatch.setenv(sealing.KEY_ENV, "  ")
    with pytest.raises(ConfigError, match="set but empty"):
        load_signing_key()
    monkeypatch.setenv(sealing.KEY_ENV, pem.replace("MC4", "XX4"))
    with pytest.raises(ConfigError, match="does not hold a PEM private key") as bad:
        load_signing_key()
    assert "PRIVATE" not in str(bad.value)
    with pytest.raises(ConfigError, match="cannot read the signing key"):
        load_signing_key(tmp_path / "absent.pem")


# -- verifying ------------------------------------------------------------------------------


@pytest.mark.parametrize("rel", SEALED_FILES)
def test_one_flipped_byte_in_a_folder_fails_naming_the_file(
    sealed: Sealed, keys: Keys, rel: str
) -> None:
    path = sealed.folder / rel
    path.write_bytes(flip_middle_byte(path.read_bytes()))
    report = verify(sealed.folder, keys.public)
    assert not report.ok
    assert rel in report.summary(), report.summary()
    if rel != "manifest.sig":
        assert rel in report.changed
    if rel in CHAINED:
        assert any(p.startswith(f"{rel} breaks its hash chain at line") for p in report.problems)


@pytest.mark.parametrize("rel", SEALED_FILES)
def test_one_flipped_byte_in_a_zip_entry_fails_naming_the_file(
    sealed: Sealed, keys: Keys, rel: str
) -> None:
    entry = f"{sealed.folder.name}/{rel}"
    rewrite_zip(sealed.zip, lambda name, data: flip_middle_byte(data) if name == entry else data)
    report = verify(sealed.zip, keys.public)
    assert not report.ok
    assert rel in report.summary(), report.summary()


def test_every_single_byte_change_to_the_signature_fails(sealed: Sealed, keys: Keys) -> None:
    signature = sealed.folder / "manifest.sig"
    original = signature.read_bytes()
    passed = []
    for index in range(len(original)):
        changed = bytearray(original)
        changed[index] ^= 0x01
        signature.write_bytes(bytes(changed))
        report = verify(sealed.folder, keys.public)
        if report.ok or "manifest.sig" not in report.summary():
            passed.append(index)
    assert passed == []


def test_the_flip_tests_cover_every_file_of_the_package(sealed: Sealed) -> None:
    on_disk = {p.relative_to(sealed.folder).as_posix() for p in sealed.folder.rglob("*")}
    assert {p for p in on_disk if (sealed.folder / p).is_file()} == set(SEALED_FILES)


def test_a_flipped_byte_in_the_zip_file_itself_is_caught(sealed: Sealed, keys: Keys) -> None:
    entry = f"{sealed.folder.name}/histories/region-outage.jsonl"
    with zipfile.ZipFile(sealed.zip) as archive:
        info = archive.getinfo(entry)
    original = sealed.zip.read_bytes()
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    # a flip inside the compressed bytes fails the CRC or the inflate itself (zlib.error),
    # depending on where it lands: eight places inside the entry, each caught (not the first
    # byte: its last-block bit may flip without changing what inflates)
    for offset in (info.compress_size * k // 9 for k in range(1, 9)):
        data = bytearray(original)
        data[start + offset] ^= 0x01
        sealed.zip.write_bytes(bytes(data))
        report = verify(sealed.zip, keys.public)
        assert not report.ok and "histories/region-outage.jsonl" in report.changed, offset


@pytest.mark.parametrize("form", ["folder", "zip"])
def test_an_added_file_fails_naming_it(sealed: Sealed, keys: Keys, form: str) -> None:
    if form == "folder":
        (sealed.folder / "html" / "late.html").write_text("added after sealing")
    else:
        late = {f"{sealed.folder.name}/html/late.html": b"added after sealing"}
        rewrite_zip(sealed.zip, extra=late)
    report = verify(sealed.at(form), keys.public)
    assert not report.ok and report.added == ("html/late.html",)
    assert "added: html/late.html" in report.summary()
    assert report.changed == report.missing == ()


@pytest.mark.parametrize("form", ["folder", "zip"])
def test_a_removed_file_fails_naming_it(sealed: Sealed, keys: Keys, form: str) -> None:
    rel = "histories/planned-switchover.jsonl"
    if form == "folder":
        (sealed.folder / rel).unlink()
    else:
        entry = f"{sealed.folder.name}/{rel}"
        rewrite_zip(sealed.zip, lambda name, data: None if name == entry else data)
    report = verify(sealed.at(form), keys.public)
    assert not report.ok and report.missing == (rel,)
    assert f"missing: {rel}" in report.summary()


def test_a_removed_signature_fails(sealed: Sealed, keys: Keys) -> None:
    (sealed.folder / "manifest.sig").unlink()
    report = verify(sealed.folder, keys.public)
    assert not report.ok and not report.signature_ok and report.missing == ("manifest.sig",)


def test_the_wrong_public_key_fails(sealed: Sealed, keys: Keys) -> None:
    report = verify(sealed.zip, keys.other_public)
    assert not report.ok and not report.signature_ok
    assert report.changed == report.missing == report.added == ()
    assert "re-signed with another key" in report.summary()


def test_a_package_changed_and_re_signed_with_another_key_fails(sealed: Sealed, keys: Keys) -> None:
    report_md = sealed.folder / "compliance/compliance-report.md"
    report_md.write_text(report_md.read_text().replace("RTO PASS", "RTO PASS (edited)"))
    for name in ("manifest.json", "manifest.sig"):
        (sealed.folder / name).unlink()
    forged_zip = seal(sealed.folder, meta=meta_for(sealed.folder), key=keys.other)
    assert verify(forged_zip, keys.other_public).ok  # consistent under the forger's key...
    for form in (sealed.folder, forged_zip):
        report = verify(form, keys.public)  # ...but not under the signer's
        assert not report.ok and not report.signature_ok
        assert "manifest.sig names key sha256" in report.summary()


@pytest.mark.parametrize("outside", ["../secret.txt", "/etc/hostname", "html/../../secret.txt"])
def test_a_manifest_naming_a_path_outside_the_package_is_rejected(
    sealed: Sealed, keys: Keys, outside: str
) -> None:
    (sealed.folder.parent / "secret.txt").write_text("not evidence")
    manifest_path = sealed.folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"].append({"path": outside, "sha256": "0" * 64, "size": 12})
    manifest_path.write_text(json.dumps(manifest, indent=2))
    sign_manifest(sealed.folder, keys.signer)  # signed by the right key: only the path is wrong
    for form in (sealed.folder, zip_folder(sealed.folder)):
        report = verify(form, keys.public)
        assert report.signature_ok and not report.ok
        assert report.missing == report.changed == ()
        assert any(
            p.startswith(f"manifest.json names a path outside the package: {outside!r}")
            for p in report.problems
        ), report.problems


def test_zip_entries_outside_the_package_folder_are_rejected(sealed: Sealed, keys: Keys) -> None:
    rewrite_zip(
        sealed.zip,
        extra={f"{sealed.folder.name}/../escape.sh": b"rm -rf /", "stray.txt": b"loose"},
    )
    report = verify(sealed.zip, keys.public)
    assert not report.ok and report.added == ("stray.txt",)
    assert any("escape.sh" in p and "leaves the package" in p for p in report.problems)


def test_verify_reads_the_chains_again(tmp_path: Path, keys: Keys) -> None:
    """Signed by the right key with matching hashes, a broken chain still fails verify."""
    folder = build_package(tmp_path)
    seal(folder, meta=meta_for(folder), key=keys.signer)
    ledger = folder / "ledger.jsonl"
    lines = ledger.read_bytes().split(b"\n")
    del lines[2]  # a record removed
    ledger.write_bytes(b"\n".join(lines))
    manifest = json.loads((folder / "manifest.json").read_text())
    for entry in manifest["files"]:
        if entry["path"] == "ledger.jsonl":
            entry.update(sha256=hashlib.sha256(ledger.read_bytes()).hexdigest())
            entry.update(size=ledger.stat().st_size)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    sign_manifest(folder, keys.signer)
    report = verify(folder, keys.public)
    assert report.signature_ok and report.changed == () and not report.ok
    assert any(
        p.startswith("ledger.jsonl breaks its hash chain at line 3") for p in report.problems
    )


def test_a_public_key_inside_the_package_is_not_trusted(sealed: Sealed, keys: Keys) -> None:
    shipped = sealed.folder / "signer.pub.pem"
    shipped.write_bytes(keys.public.read_bytes())
    with pytest.raises(ConfigError, match="proves nothing"):
        verify(sealed.folder, shipped)


def test_a_private_key_given_as_the_public_key_is_refused(sealed: Sealed, keys: Keys) -> None:
    with pytest.raises(ConfigError, match="holds a private key") as refused:
        verify(sealed.zip, Path(keys.signer.where))
    assert "BEGIN" not in str(refused.value)


# -- archive arguments (the upload itself is in tests/integration/test_archive.py) --------------


def test_retention_under_seven_years_is_refused_before_any_call(sealed: Sealed) -> None:
    with pytest.raises(ConfigError, match="retention of 6 years is too short"):
        sealing.archive(
            sealed.zip, bucket="b", endpoint_url="http://127.0.0.1:9", retention_years=6
        )


def test_a_lock_read_back_short_of_compliance_until_the_date_is_a_problem() -> None:
    until = datetime(2033, 11, 26, tzinfo=UTC)
    assert sealing._lock_problems([("head_object", "COMPLIANCE", until)], until) == []
    problems = sealing._lock_problems(
        [
            ("head_object", "GOVERNANCE", until),
            ("get_object_retention", "COMPLIANCE", until - timedelta(seconds=1)),
            ("head_object", None, None),
        ],
        until,
    )
    assert problems == [
        "head_object reports mode GOVERNANCE until 2033-11-26T00:00:00Z",
        "get_object_retention reports mode COMPLIANCE until 2033-11-25T23:59:59Z",
        "head_object reports mode None until None",
    ]


def test_retain_until_is_the_same_calendar_moment_years_later() -> None:
    leap = datetime(2028, 2, 29, 12, 0, 0)
    assert sealing._years_after(leap, 7) == datetime(2035, 2, 28, 12, 0, 0)
    assert sealing._years_after(datetime(2026, 11, 26), 7) == datetime(2033, 11, 26)


# -- the command line -----------------------------------------------------------------------


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["evidence", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_keygen_prints_paths_never_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    private = tmp_path / "ci" / "signing.pem"
    code, out, err = run(capsys, "keygen", str(private))
    assert code == 0, err
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert (tmp_path / "ci" / "signing.pub.pem").exists()
    assert "PRIVATE KEY" not in out + err and "BEGIN" not in out + err
    code, out, err = run(capsys, "keygen", str(tmp_path / "j.pem"), "--json")
    assert code == 0 and set(json.loads(out)) == {"private_key", "public_key", "public_key_sha256"}
    code, out, err = run(capsys, "keygen", str(private))
    assert code == 2 and err.startswith("drkit: error: ") and "never overwrites" in err


def test_cli_verify_exit_codes(
    sealed: Sealed, keys: Keys, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "verify", str(sealed.zip), "--public-key", str(keys.public))
    assert code == 0 and "intact" in out
    code, out, _ = run(
        capsys, "verify", str(sealed.folder), "--public-key", str(keys.public), "--json"
    )
    assert code == 0 and json.loads(out)["ok"] is True
    (sealed.folder / "run.json").write_text("{}")
    code, out, _ = run(capsys, "verify", str(sealed.folder), "--public-key", str(keys.public))
    assert code == 1 and "NOT intact" in out and "changed: run.json" in out
    code, out, _ = run(
        capsys, "verify", str(sealed.folder), "--public-key", str(keys.public), "--json"
    )
    assert code == 1 and json.loads(out)["changed"] == ["run.json"]


def test_cli_verify_user_mistakes_are_one_line(
    sealed: Sealed, keys: Keys, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for args, expected in [
        ((str(tmp_path / "nope.zip"), "--public-key", str(keys.public)), "does not exist"),
        ((str(sealed.zip), "--public-key", keys.signer.where), "holds a private key"),
        ((str(keys.public), "--public-key", str(keys.public)), "nor a readable zip"),
    ]:
        code, out, err = run(capsys, "verify", *args)
        assert code == 2 and out == "", err
        assert err.startswith("drkit: error: ") and expected in err
        assert err.count("\n") == 1 and "Traceback" not in err and "BEGIN" not in err


def test_cli_archive_refuses_short_retention_and_bad_input(
    sealed: Sealed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "archive", str(sealed.zip), "--retention-years", "3")
    assert code == 2 and "retention of 3 years is too short" in err
    (tmp_path / "plain.zip").write_bytes(b"not a zip")
    code, _, err = run(capsys, "archive", str(tmp_path / "plain.zip"), "--bucket", "b")
    assert code == 2 and "not a sealed evidence package zip" in err
    code, _, err = run(capsys, "archive", str(sealed.zip), "--endpoint-url", "http://127.0.0.1:9")
    assert code == 2 and "--endpoint-url needs --bucket" in err


def test_build_can_be_added_beside_the_evidence_commands() -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="drkit")
    evidence = register(parser.add_subparsers(dest="command", required=True))
    build = evidence_subcommands(evidence).add_parser("build")
    build.add_argument("run_id")
    args = parser.parse_args(["evidence", "build", RUN_ID])
    assert (args.command, args.evidence_command, args.run_id) == ("evidence", "build", RUN_ID)


def test_sealing_leaves_only_the_folder_and_its_zip(sealed: Sealed) -> None:
    assert set(os.listdir(sealed.folder.parent)) == {sealed.folder.name, sealed.zip.name}
