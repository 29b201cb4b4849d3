"""Seal, verify and archive an evidence package: a folder (and its zip) with a signed manifest.

`seal` checks every history and ledger chain, writes ``manifest.json`` (size and SHA-256 of
every file, chain heads, run metadata, which key signed) and ``manifest.sig`` (Ed25519), then
zips the folder. `verify` re-checks a folder or zip against a public key held outside the
package. `archive` puts the zip in S3 under Object Lock (COMPLIANCE) and reads the lock back.
Errors raised on purpose::

    DrillError
    └── EvidenceError                 the package cannot be sealed or archived as asked
        ├── BrokenChain               a history or ledger in the package fails its hash chain
        └── ArchiveRefused            the bucket lacks Object Lock, or the lock did not read back

Bad input (a missing file, a key that is not Ed25519, retention under 7 years) is ConfigError.
"""

from __future__ import annotations

import base64
import calendar
import contextlib
import hashlib
import json
import os
import re
import secrets
import tempfile
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import IO, TYPE_CHECKING, Any, Literal, Protocol

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from drkit import paths
from drkit.clients.aws import AwsClients, AwsEndpoint, AwsRequestError, aws_errors
from drkit.errors import ConfigError, DrillError
from drkit.measure.chain import ChainRead, read_chain

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

FORMAT = "drkit-evidence/1"
SIGNATURE_FORMAT = "drkit-evidence-signature/1"
ALGORITHM = "Ed25519"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
SEAL_FILES = (MANIFEST, SIGNATURE)
CHAIN_SUFFIX = ".jsonl"
REQUIRED_META = ("run_id", "git_commit", "tool_versions")
RESERVED_META = ("format", "created_at", "key", "chains", "files")
KEY_ENV = "DRKIT_SIGNING_KEY"
KEY_FILE_ENV = "DRKIT_SIGNING_KEY_FILE"
LAB_PRIVATE_KEY = "lab-signing-key.pem"
LAB_PUBLIC_KEY = "lab-signing-key.pub.pem"
LAB_KEY_WARNING = "signed with a lab key created on this machine; not fit for production evidence"
MIN_RETENTION_YEARS = 7
LOCK_MODE: Literal["COMPLIANCE"] = "COMPLIANCE"
PRIVATE_PEM = re.compile(rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")
CHUNK = 1 << 20

KeyKind = Literal["configured", "lab"]


class EvidenceError(DrillError):
    """An evidence package cannot be sealed or archived as asked; the message says why."""


class BrokenChain(EvidenceError):
    """A history or ledger in the package fails its hash chain; sealing is refused."""


class ArchiveRefused(EvidenceError):
    """The bucket cannot lock the package, or the lock read back is not the one asked for."""


# -- keys ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    """An Ed25519 private key, whether it was configured or is this machine's lab key, and
    where it came from (a path or an environment variable's name, never the key itself)."""

    key: Ed25519PrivateKey = field(repr=False)
    kind: KeyKind
    where: str

    @property
    def public_key_sha256(self) -> str:
        return public_key_sha256(self.key.public_key())

    def public_pem(self) -> bytes:
        return _public_pem(self.key.public_key())


def public_key_sha256(public: Ed25519PublicKey) -> str:
    """The key's fingerprint: SHA-256 of its 32 raw bytes, in hex."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def _public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def generate_keypair(private_path: Path, public_path: Path) -> str:
    """Write a new Ed25519 key pair (private PEM with mode 0600); returns the public key's
    fingerprint. Existing files are never overwritten."""
    private_path, public_path = Path(private_path), Path(public_path)
    for path in (private_path, public_path):
        if path.exists():
            raise ConfigError(
                f"{path} exists; drkit never overwrites a key: remove it or choose another path"
            )
    key = Ed25519PrivateKey.generate()
    _write_private(private_path, key)
    _write_new(public_path, _public_pem(key.public_key()), 0o644)
    return public_key_sha256(key.public_key())


def _write_private(path: Path, key: Ed25519PrivateKey) -> None:
    """Write the PEM to a 0600 temporary file, then link it into place (fails if it exists)."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    _write_new(temporary, pem, 0o600)
    try:
        os.link(temporary, path)
    finally:
        temporary.unlink()


def _write_new(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have narrowed it; never widened
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def load_signing_key(path: Path | None = None) -> SigningKey:
    """The key to sign with: ``path``, else DRKIT_SIGNING_KEY (the PEM itself), else
    DRKIT_SIGNING_KEY_FILE (a path), else this machine's lab key in the state folder (created
    on first use, and marked in the manifest as unfit for production)."""
    if path is not None:
        return SigningKey(_read_private_file(Path(path)), "configured", str(path))
    pem, pem_file = os.environ.get(KEY_ENV), os.environ.get(KEY_FILE_ENV)
    if pem is not None and pem_file is not None:
        raise ConfigError(f"both {KEY_ENV} and {KEY_FILE_ENV} are set; unset one of them")
    for name, value in ((KEY_ENV, pem), (KEY_FILE_ENV, pem_file)):
        if value is not None and not value.strip():
            raise ConfigError(
                f"{name} is set but empty: the secret did not reach this process; fix how it is "
                "passed, or unset it to sign with a lab key (not fit for production)"
            )
    if pem is not None:
        where = f"environment variable {KEY_ENV}"
        return SigningKey(_parse_private(pem.encode(), where), "configured", where)
    if pem_file is not None:
        return SigningKey(_read_private_file(Path(pem_file)), "configured", pem_file)
    return lab_signing_key()


def lab_signing_key(state: Path | None = None) -> SigningKey:
    """This machine's lab key (``<state>/keys/lab-signing-key.pem``), created on first use."""
    keys = (state or paths.state_dir()) / "keys"
    keys.mkdir(mode=0o700, parents=True, exist_ok=True)
    private, public = keys / LAB_PRIVATE_KEY, keys / LAB_PUBLIC_KEY
    if not private.exists():
        with contextlib.suppress(FileExistsError):  # another process made it first
            _write_private(private, Ed25519PrivateKey.generate())
    key = _read_private_file(private)
    if not public.exists():
        with contextlib.suppress(FileExistsError):
            _write_new(public, _public_pem(key.public_key()), 0o644)
    return SigningKey(key, "lab", str(private))


def _read_private_file(path: Path) -> Ed25519PrivateKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the signing key {path} ({exc.strerror}); make one with "
            f"`drkit evidence keygen {path}` or point {KEY_FILE_ENV} at yours"
        ) from None
    return _parse_private(data, str(path))


def _parse_private(pem: bytes, where: str) -> Ed25519PrivateKey:
    """The key in ``pem``; messages name ``where`` and never quote the key."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError:
        raise ConfigError(
            f"the signing key in {where} is encrypted; drkit reads unencrypted PEM keys, so "
            "keep it in a secret store and pass it through the environment"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(
            f"{where} does not hold a PEM private key; make one with `drkit evidence keygen PATH`"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(
            f"{where} holds a {type(key).__name__.lstrip('_')}; evidence is signed with "
            "Ed25519: make a key with `drkit evidence keygen PATH`"
        )
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM file (a private key is refused, not used)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the public key {path} ({exc.strerror})") from None
    if PRIVATE_PEM.search(data):
        raise ConfigError(
            f"{path} holds a private key; pass the public key (the .pub.pem that "
            "`drkit evidence keygen` wrote) and keep the private one where it was"
        )
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(f"{path} does not hold a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{path} is not an Ed25519 public key; evidence is signed with Ed25519")
    return key


# -- sealing -------------------------------------------------------------------------------


def seal(folder: Path, *, meta: Mapping[str, Any], key: SigningKey) -> Path:
    """Seal a staged package folder: check its chains, write and sign its manifest, zip it.

    ``meta`` goes into the manifest as given; it must hold run_id, git_commit and
    tool_versions (plan_sha256, quarter and the like are welcome). Returns ``<folder>.zip``.
    """
    folder = Path(folder).resolve()
    _check_meta(meta)
    files = _sealable_files(folder)
    _refuse_private_keys(folder, files, key)
    chains = [_chain_head(folder, rel) for rel in files if rel.endswith(CHAIN_SUFFIX)]
    entries = [{"path": rel, **_digest_file(folder / rel)} for rel in files]
    created_at = datetime.now(UTC).replace(microsecond=0)
    manifest = {
        "format": FORMAT,
        "created_at": created_at.isoformat().replace("+00:00", "Z"),
        **meta,
        "key": _key_description(key),
        "chains": chains,
        "files": entries,
    }
    (folder / MANIFEST).write_bytes(_manifest_bytes(manifest))
    sign_manifest(folder, key)
    zip_path = _write_zip(folder, created_at)
    report = verify_with(zip_path, key.key.public_key())
    if not report.ok:  # a file changed while it was sealed, or the disk lies
        raise EvidenceError(f"{zip_path} does not verify right after sealing:\n{report.summary()}")
    return zip_path


def _check_meta(meta: Mapping[str, Any]) -> None:
    missing = [k for k in REQUIRED_META if k not in meta]
    reserved = [k for k in RESERVED_META if k in meta]
    if missing or reserved:
        raise ConfigError(
            f"evidence metadata: missing {missing or 'nothing'}, reserved keys given "
            f"{reserved or 'none'}; pass {list(REQUIRED_META)} and leave {list(RESERVED_META)} "
            "to seal()"
        )
    plan = meta.get("plan_sha256")
    if plan is not None and not _is_sha256(plan):
        raise ConfigError(f"evidence metadata: plan_sha256={plan!r} is not a SHA-256 hex digest")
    try:
        json.dumps(dict(meta))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"evidence metadata is not plain JSON ({exc})") from None


def _sealable_files(folder: Path) -> list[str]:
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder; stage the package's files there first")
    sealed = [name for name in SEAL_FILES if (folder / name).exists()]
    if sealed:
        raise EvidenceError(
            f"{folder} is sealed already ({', '.join(sealed)} present); a sealed package is "
            "never sealed again: build a new one"
        )
    files, odd = _walk(folder)
    if odd:
        raise ConfigError(
            f"{folder}: {', '.join(odd)}: symbolic links and special files cannot be sealed; "
            "stage copies of the files themselves"
        )
    if not files:
        raise ConfigError(f"{folder} is empty; stage the package's files before sealing")
    return sorted(files)


def _refuse_private_keys(folder: Path, files: list[str], key: SigningKey) -> None:
    where = Path(key.where)
    if where.is_file() and where.resolve().is_relative_to(folder):
        raise EvidenceError(
            f"the signing key {where} lies inside the package {folder}; keep keys out of it"
        )
    for rel in files:
        if _holds_private_pem(folder / rel):
            raise EvidenceError(
                f"{folder}: {rel} contains a PEM private key; a private key never goes into "
                "evidence: remove it (and rotate the key if it was a real one)"
            )


def _holds_private_pem(path: Path) -> bool:
    tail = b""
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            if PRIVATE_PEM.search(tail + chunk):
                return True
            tail = chunk[-64:]  # a marker may straddle two chunks
    return False


def _chain_head(folder: Path, rel: str) -> dict[str, Any]:
    chain = read_chain(folder / rel)
    problem = _chain_problem(rel, chain)
    if problem:
        raise BrokenChain(
            f"cannot seal {folder}: {problem}. Copy an intact file from the run folder; if the "
            "run's own copy is broken too, its evidence was altered or cut short: investigate "
            "before sealing"
        )
    return {"path": rel, "records": len(chain.records), "head": chain.last_hash}


def _chain_problem(rel: str, chain: ChainRead) -> str | None:
    if chain.broken is not None:
        return f"{rel} breaks its hash chain at line {chain.broken.line}: {chain.broken.reason}"
    if chain.partial_tail:
        line = len(chain.records) + 1
        return f"{rel} line {line} is unfinished (no newline): its writer was cut off"
    return None


def _key_description(key: SigningKey) -> dict[str, str]:
    description = {
        "kind": key.kind,
        "algorithm": ALGORITHM,
        "public_key_sha256": key.public_key_sha256,
    }
    if key.kind == "lab":
        description["warning"] = LAB_KEY_WARNING
    return description


def _manifest_bytes(manifest: Mapping[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=2) + "\n").encode()


def sign_manifest(folder: Path, key: SigningKey) -> Path:
    """Sign the folder's manifest.json as it is now: writes manifest.sig and returns it."""
    manifest = (Path(folder) / MANIFEST).read_bytes()
    fields = _signed_fields(hashlib.sha256(manifest).hexdigest(), key.public_key_sha256)
    signature = key.key.sign(_signed_message(fields))
    path = Path(folder) / SIGNATURE
    path.write_bytes(_signature_bytes({**fields, "signature": _b64(signature)}))
    return path


def _signed_fields(manifest_sha256: str, key_sha256: str) -> dict[str, str]:
    return {
        "format": SIGNATURE_FORMAT,
        "algorithm": ALGORITHM,
        "manifest_sha256": manifest_sha256,
        "public_key_sha256": key_sha256,
    }


def _signed_message(fields: Mapping[str, str]) -> bytes:
    """What the key signs: every field but the signature, as canonical JSON."""
    signed = {k: v for k, v in fields.items() if k != "signature"}
    return json.dumps(signed, sort_keys=True, separators=(",", ":")).encode()


def _signature_bytes(fields: Mapping[str, str]) -> bytes:
    return (json.dumps(dict(fields), indent=2, sort_keys=True) + "\n").encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _write_zip(folder: Path, created_at: datetime) -> Path:
    """``<folder>.zip`` with one top folder; entries in a fixed order with the seal's time."""
    target = folder.with_name(folder.name + ".zip")
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    stamp = created_at.timetuple()[:6]
    files, _ = _walk(folder)
    order = [*SEAL_FILES, *sorted(set(files) - set(SEAL_FILES))]
    try:
        with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
            for rel in order:
                info = zipfile.ZipInfo(f"{folder.name}/{rel}", date_time=stamp)
                info.external_attr = 0o100644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                with (folder / rel).open("rb") as source, archive.open(info, "w") as sink:
                    while chunk := source.read(CHUNK):
                        sink.write(chunk)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return target


# -- reading a package (folder or zip) --------------------------------------------------------


def _walk(root: Path) -> tuple[dict[str, int], list[str]]:
    """Regular files under ``root`` (relative POSIX path -> size), and links/special files."""
    files: dict[str, int] = {}
    odd: list[str] = []
    for directory, dirnames, filenames in os.walk(root):
        base = Path(directory)
        for name in dirnames + filenames:
            path = base / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink() or not (path.is_dir() or path.is_file()):
                odd.append(rel)
            elif path.is_file():
                files[rel] = path.stat().st_size
    return files, sorted(odd)


def _digest_stream(stream: IO[bytes]) -> dict[str, Any]:
    sha, size = hashlib.sha256(), 0
    while chunk := stream.read(CHUNK):
        sha.update(chunk)
        size += len(chunk)
    return {"sha256": sha.hexdigest(), "size": size}


def _digest_file(path: Path) -> dict[str, Any]:
    with path.open("rb") as stream:
        return _digest_stream(stream)


class _Package(Protocol):
    label: str

    def listing(self) -> tuple[dict[str, int], list[str], list[str]]:
        """(files by relative path, names outside the package folder, problems)."""
        ...

    def read(self, rel: str) -> bytes: ...

    def digest(self, rel: str) -> dict[str, Any]: ...

    def chain(self, rel: str) -> ChainRead: ...


class _FolderPackage:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.label = str(root)

    def listing(self) -> tuple[dict[str, int], list[str], list[str]]:
        files, odd = _walk(self.root)
        problems = [
            f"{rel} is a symbolic link or special file; a package holds only files" for rel in odd
        ]
        return files, [], problems

    def read(self, rel: str) -> bytes:
        return (self.root / rel).read_bytes()

    def digest(self, rel: str) -> dict[str, Any]:
        return _digest_file(self.root / rel)

    def chain(self, rel: str) -> ChainRead:
        return read_chain(self.root / rel)


class _ZipPackage:
    """A zip read in place (nothing extracted but chained files, into a private temp folder)."""

    def __init__(self, archive: zipfile.ZipFile, label: str, scratch: Path) -> None:
        self.archive = archive
        self.label = label
        self.scratch = scratch
        names = [i.filename for i in archive.infolist() if not i.is_dir()]
        tops = [n for n in names if n.endswith("/" + MANIFEST) and n.count("/") == 1]
        self.top = (tops[0] if tops else names[0] if names else "").split("/")[0]

    def listing(self) -> tuple[dict[str, int], list[str], list[str]]:
        files: dict[str, int] = {}
        outside: list[str] = []
        problems: list[str] = []
        infos = [i for i in self.archive.infolist() if not i.is_dir()]
        counts = Counter(i.filename for i in infos)
        for name in sorted(n for n, c in counts.items() if c > 1):
            problems.append(f"the zip holds {name!r} {counts[name]} times; it was altered")
        for info in infos:
            name = info.filename
            why = _unsafe(name)
            if why:
                problems.append(f"zip entry {name!r} {why}; it was not read")
            elif not name.startswith(self.top + "/"):
                outside.append(name)
            else:
                files[name[len(self.top) + 1 :]] = info.file_size
        return files, sorted(outside), problems

    def read(self, rel: str) -> bytes:
        return self.archive.read(f"{self.top}/{rel}")

    def digest(self, rel: str) -> dict[str, Any]:
        with self.archive.open(f"{self.top}/{rel}") as stream:
            return _digest_stream(stream)

    def chain(self, rel: str) -> ChainRead:
        copy = self.scratch / hashlib.sha256(rel.encode()).hexdigest()
        copy.write_bytes(self.read(rel))
        return read_chain(copy)


@contextlib.contextmanager
def _open_package(path: Path) -> Iterator[_Package]:
    if path.is_dir():
        yield _FolderPackage(path)
        return
    if not path.is_file():
        raise ConfigError(f"{path} does not exist; pass a package folder or its .zip")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ConfigError(
            f"{path} is neither a package folder nor a readable zip ({exc})"
        ) from None
    with archive, tempfile.TemporaryDirectory(prefix="drkit-verify-") as scratch:
        yield _ZipPackage(archive, str(path), Path(scratch))


def _unsafe(rel: str) -> str | None:
    """Why ``rel`` cannot name a file inside a package, or None when it can."""
    if not rel or "\\" in rel or "\x00" in rel:
        return "is empty or holds a backslash or NUL"
    if PurePosixPath(rel).is_absolute() or PureWindowsPath(rel).drive:
        return "is an absolute path, outside the package"
    if any(part in ("", ".", "..") for part in rel.split("/")):
        return "leaves the package (a '..', '.' or empty step)"
    return None


def _is_sha256(value: object) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value) is not None


# -- verifying -------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyReport:
    """What verify found; ``ok`` only when the signature holds and nothing differs."""

    path: str
    public_key_sha256: str
    signature_ok: bool
    changed: tuple[str, ...]
    missing: tuple[str, ...]
    added: tuple[str, ...]
    problems: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    key_kind: str | None = None
    files_checked: int = 0
    chains_checked: int = 0

    @property
    def ok(self) -> bool:
        return self.signature_ok and not (
            self.changed or self.missing or self.added or self.problems
        )

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def summary(self) -> str:
        if self.ok:
            lines = [
                f"{self.path}: intact: {_count(self.files_checked, 'file')} and "
                f"{_count(self.chains_checked, 'hash chain')} match manifest.json, signed by "
                f"key sha256 {self.public_key_sha256[:16]}"
            ]
        else:
            lines = [
                f"{self.path}: NOT intact (checked against key sha256 "
                f"{self.public_key_sha256[:16]})"
            ]
            for label, names in (
                ("changed", self.changed),
                ("missing", self.missing),
                ("added", self.added),
            ):
                lines += [f"  {label}: {name}" for name in names]
            lines += [f"  problem: {problem}" for problem in self.problems]
        lines += [f"  warning: {warning}" for warning in self.warnings]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "ok": self.ok,
            "signature_ok": self.signature_ok,
            "public_key_sha256": self.public_key_sha256,
            "key_kind": self.key_kind,
            "changed": list(self.changed),
            "missing": list(self.missing),
            "added": list(self.added),
            "problems": list(self.problems),
            "warnings": list(self.warnings),
            "files_checked": self.files_checked,
            "chains_checked": self.chains_checked,
        }


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


@dataclass
class _Findings:
    changed: set[str] = field(default_factory=set)
    missing: set[str] = field(default_factory=set)
    added: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    key_kind: str | None = None
    files_checked: int = 0
    chains_checked: int = 0


def verify(path: Path, public_key: Path) -> VerifyReport:
    """Check a package folder or zip against a public key held outside the package."""
    path, public_key = Path(path), Path(public_key)
    if path.is_dir() and public_key.resolve().is_relative_to(path.resolve()):
        raise ConfigError(
            f"the public key {public_key} lies inside the package {path}; a key shipped "
            "with a package proves nothing: pass the public key you hold separately"
        )
    return verify_with(path, load_public_key(public_key))


def verify_with(path: Path, public: Ed25519PublicKey) -> VerifyReport:
    found = _Findings()
    with _open_package(Path(path)) as package:
        signature_ok = _check_package(package, public, found)
    return VerifyReport(
        path=str(path),
        public_key_sha256=public_key_sha256(public),
        signature_ok=signature_ok,
        changed=tuple(sorted(found.changed)),
        missing=tuple(sorted(found.missing)),
        added=tuple(sorted(found.added)),
        problems=tuple(found.problems),
        warnings=tuple(found.warnings),
        key_kind=found.key_kind,
        files_checked=found.files_checked,
        chains_checked=found.chains_checked,
    )


def _check_package(package: _Package, public: Ed25519PublicKey, found: _Findings) -> bool:
    """Fill ``found``; returns whether the signature holds over the manifest as it is."""
    files, outside, problems = package.listing()
    found.added.update(outside)
    found.problems += problems
    found.missing.update(name for name in SEAL_FILES if name not in files)
    if MANIFEST not in files:
        found.problems.append(f"{MANIFEST} is absent: nothing says what the package held")
        return False
    manifest_raw = package.read(MANIFEST)
    signature_ok = SIGNATURE in files and _check_signature(
        manifest_raw, package.read(SIGNATURE), public, found
    )
    manifest = _parse_manifest(manifest_raw, found)
    if manifest is not None:
        entries = _manifest_files(manifest, found)
        _compare_files(package, files, entries, found)
        _check_chains(package, files, entries, manifest, found)
        _check_key(manifest, public, found)
    return signature_ok


def _check_signature(
    manifest: bytes, raw: bytes, public: Ed25519PublicKey, found: _Findings
) -> bool:
    fields = _parse_signature(raw)
    if fields is None:
        found.changed.add(SIGNATURE)
        found.problems.append(f"{SIGNATURE} is damaged: it is not a drkit signature")
        return False
    try:
        public.verify(base64.b64decode(fields["signature"], validate=True), _signed_message(fields))
    except (InvalidSignature, ValueError):
        found.problems.append(_signature_problem(fields["public_key_sha256"], public))
        if fields["public_key_sha256"] == public_key_sha256(public):
            found.changed.add(SIGNATURE)
        return False
    if fields["manifest_sha256"] != hashlib.sha256(manifest).hexdigest():
        found.changed.add(MANIFEST)
        found.problems.append(f"{MANIFEST} was changed after it was signed")
        return False
    return True


def _signature_problem(named: str, public: Ed25519PublicKey) -> str:
    supplied = public_key_sha256(public)
    if named != supplied:
        return (
            f"{SIGNATURE} names key sha256 {named[:16]}, not the public key supplied "
            f"(sha256 {supplied[:16]}): the package was signed or re-signed with another key, "
            "or that field was changed"
        )
    return f"{SIGNATURE} does not verify with the supplied public key: it was changed"


def _parse_signature(raw: bytes) -> dict[str, str] | None:
    """The signature file's fields, or None unless it is exactly what sign_manifest writes."""
    try:
        fields = json.loads(raw)
    except ValueError:
        return None
    expected = {*_signed_fields("", ""), "signature"}
    if not isinstance(fields, dict) or set(fields) != expected:
        return None
    if not all(isinstance(v, str) for v in fields.values()) or _signature_bytes(fields) != raw:
        return None
    if (fields["format"], fields["algorithm"]) != (SIGNATURE_FORMAT, ALGORITHM):
        return None
    return fields


def _parse_manifest(raw: bytes, found: _Findings) -> dict[str, Any] | None:
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        found.problems.append(f"{MANIFEST} is not valid JSON ({exc})")
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found.problems.append(f"{MANIFEST} is not a {FORMAT} manifest")
        return None
    return manifest


def _manifest_files(manifest: Mapping[str, Any], found: _Findings) -> dict[str, dict[str, Any]]:
    """The manifest's file entries by path; malformed or unsafe ones become problems."""
    entries: dict[str, dict[str, Any]] = {}
    raw = manifest.get("files")
    for index, entry in enumerate(raw if isinstance(raw, list) else [None]):
        where = f"{MANIFEST} files[{index}]"
        if not _is_file_entry(entry):
            found.problems.append(f"{where} is malformed (needs path, sha256, size)")
        elif why := _unsafe(entry["path"]):
            found.problems.append(
                f"{MANIFEST} names a path outside the package: {entry['path']!r} ({why}); "
                "refusing to read it: the manifest was forged or damaged"
            )
        elif entry["path"] in entries or entry["path"] in SEAL_FILES:
            found.problems.append(f"{where} lists {entry['path']!r} a second time")
        else:
            entries[entry["path"]] = entry
    return entries


def _is_file_entry(entry: object) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("path"), str)
        and _is_sha256(entry.get("sha256"))
        and type(entry.get("size")) is int
    )


def _compare_files(
    package: _Package,
    files: Mapping[str, int],
    entries: Mapping[str, Mapping[str, Any]],
    found: _Findings,
) -> None:
    for rel, entry in entries.items():
        if rel not in files:
            found.missing.add(rel)
            continue
        try:
            actual = package.digest(rel)
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
            found.changed.add(rel)
            found.problems.append(f"{rel} cannot be read back ({exc})")
            continue
        found.files_checked += 1
        if (actual["sha256"], actual["size"]) != (entry["sha256"], entry["size"]):
            found.changed.add(rel)
    found.added.update(set(files) - set(entries) - set(SEAL_FILES))


def _check_chains(
    package: _Package,
    files: Mapping[str, int],
    entries: Mapping[str, Any],
    manifest: Mapping[str, Any],
    found: _Findings,
) -> None:
    """Every chained file listed and present is read again with the chain reader."""
    recorded = _manifest_chains(manifest, found)
    for rel in sorted(r for r in entries if r.endswith(CHAIN_SUFFIX) and r in files):
        try:
            chain = package.chain(rel)
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error):
            continue  # already reported as changed
        found.chains_checked += 1
        problem = _chain_problem(rel, chain)
        if problem:
            found.problems.append(problem)
        elif rel not in recorded:
            found.problems.append(f"{MANIFEST} records no chain head for {rel}")
        elif recorded[rel] != (len(chain.records), chain.last_hash):
            found.problems.append(
                f"{rel}: {len(chain.records)} records ending in {chain.last_hash[:16]}, but "
                f"{MANIFEST} recorded {recorded[rel][0]} ending in {str(recorded[rel][1])[:16]}"
            )
    for rel in sorted(set(recorded) - set(entries)):
        found.problems.append(f"{MANIFEST} records a chain for {rel!r} but lists no such file")


def _manifest_chains(manifest: Mapping[str, Any], found: _Findings) -> dict[str, tuple[int, str]]:
    chains: dict[str, tuple[int, str]] = {}
    raw = manifest.get("chains")
    for index, entry in enumerate(raw if isinstance(raw, list) else [None]):
        ok = isinstance(entry, dict) and isinstance(entry.get("path"), str)
        if not ok or type(entry.get("records")) is not int or not _is_sha256(entry.get("head")):
            found.problems.append(
                f"{MANIFEST} chains[{index}] is malformed (needs path, records, head)"
            )
        else:
            chains[entry["path"]] = (entry["records"], entry["head"])
    return chains


def _check_key(manifest: Mapping[str, Any], public: Ed25519PublicKey, found: _Findings) -> None:
    key = manifest.get("key")
    if not isinstance(key, dict):
        found.problems.append(f"{MANIFEST} does not say which key signed it")
        return
    found.key_kind = str(key.get("kind"))
    if key.get("public_key_sha256") != public_key_sha256(public):
        found.problems.append(
            f"{MANIFEST} says key sha256 {str(key.get('public_key_sha256'))[:16]} signed it, "
            "not the public key supplied"
        )
    if key.get("kind") == "lab":
        found.warnings.append(str(key.get("warning") or LAB_KEY_WARNING))


# -- archiving -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchiveReceipt:
    """Where the package went and the lock S3 reports for it (read back, not assumed)."""

    bucket: str
    key: str
    version_id: str
    mode: str
    retain_until: datetime
    retention_years: int
    endpoint: str
    size: int
    sha256: str
    confirmed_by: tuple[str, ...]

    def summary(self) -> str:
        return "\n".join(
            [
                f"archived to s3://{self.bucket}/{self.key} ({self.endpoint})",
                f"  version id:   {self.version_id}",
                f"  mode:         {self.mode}",
                f"  retain until: {_utc_text(self.retain_until)} "
                f"({self.retention_years} years asked)",
                f"  sha256:       {self.sha256} ({self.size} bytes)",
                f"  read back by: {', '.join(self.confirmed_by)}",
            ]
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "key": self.key,
            "version_id": self.version_id,
            "mode": self.mode,
            "retain_until": _utc_text(self.retain_until),
            "retention_years": self.retention_years,
            "endpoint": self.endpoint,
            "size": self.size,
            "sha256": self.sha256,
            "confirmed_by": list(self.confirmed_by),
        }


def lab_archive_target() -> tuple[str, str]:
    """The lab's evidence bucket and its moto endpoint (ports from DRKIT_LAB_PORT_BASE)."""
    from drkit.config import LabPorts
    from drkit.lab.control_plane import EVIDENCE_BUCKET
    from drkit.lab.moto_server import moto_url

    return EVIDENCE_BUCKET, moto_url(LabPorts.from_env().moto)


def check_retention(years: int) -> None:
    if type(years) is not int or years < MIN_RETENTION_YEARS:
        raise ConfigError(
            f"retention of {years} years is too short: SEC Rule 17a-4 evidence is kept at "
            f"least {MIN_RETENTION_YEARS} years here; pass --retention-years "
            f"{MIN_RETENTION_YEARS} or more"
        )


@dataclass(frozen=True)
class _Place:
    """Where an object goes: bucket, key, and the endpoint as calls and messages name it."""

    bucket: str
    key: str
    endpoint_url: str | None
    region: str

    @property
    def where(self) -> str:
        return self.endpoint_url or f"AWS S3 in {self.region}"

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def archive(
    zip_path: Path,
    *,
    bucket: str,
    endpoint_url: str | None,
    retention_years: int = MIN_RETENTION_YEARS,
    region: str = "us-east-1",
    create_bucket: bool = False,
) -> ArchiveReceipt:
    """Upload a sealed zip under Object Lock COMPLIANCE for ``retention_years`` and read the
    lock back. ``create_bucket`` (the lab only) makes a missing bucket with Object Lock."""
    check_retention(retention_years)
    zip_path = Path(zip_path)
    run_id = _sealed_run_id(zip_path)
    place = _Place(bucket, f"evidence/{run_id}/{zip_path.name}", endpoint_url, region)
    s3 = AwsClients(AwsEndpoint(endpoint_url)).s3(region)
    _ensure_locked_bucket(s3, place, create_bucket)
    digest = _digest_file(zip_path)
    until = _years_after(datetime.now(UTC).replace(microsecond=0), retention_years)
    with (
        zip_path.open("rb") as body,
        aws_errors(f"upload {zip_path.name} to {place.url}", place.where),
    ):
        put = s3.put_object(
            Bucket=bucket,
            Key=place.key,
            Body=body,
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=_b64(bytes.fromhex(digest["sha256"])),
            ObjectLockMode=LOCK_MODE,
            ObjectLockRetainUntilDate=until,
            Metadata={"run-id": run_id, "sha256": digest["sha256"]},
        )
    version = put.get("VersionId")
    if not version:
        raise ArchiveRefused(
            f"{place.url} got no version id from {place.where}: the bucket is not versioned, "
            "so the object cannot be locked; use a bucket created with Object Lock"
        )
    seen = _read_back_lock(s3, place, version, digest)
    if problems := _lock_problems(seen, until):
        raise ArchiveRefused(
            f"{place.url} version {version} at {place.where} is not locked as asked "
            f"({LOCK_MODE} until {_utc_text(until)}): {'; '.join(problems)}"
        )
    return ArchiveReceipt(
        bucket=bucket,
        key=place.key,
        version_id=version,
        mode=LOCK_MODE,
        retain_until=min(_as_utc(r) for _, _, r in seen if r is not None),
        retention_years=retention_years,
        endpoint=place.where,
        size=digest["size"],
        sha256=digest["sha256"],
        confirmed_by=tuple(source for source, _, _ in seen),
    )


def _sealed_run_id(zip_path: Path) -> str:
    not_sealed = ConfigError(
        f"{zip_path} is not a sealed evidence package zip (no {MANIFEST} and {SIGNATURE} in a "
        "top folder); seal the package first"
    )
    try:
        with zipfile.ZipFile(zip_path) as archive:
            names = archive.namelist()
            tops = [n for n in names if n.count("/") == 1 and n.endswith("/" + MANIFEST)]
            if len(tops) != 1 or tops[0].replace(MANIFEST, SIGNATURE) not in names:
                raise not_sealed
            manifest = json.loads(archive.read(tops[0]))
    except (OSError, zipfile.BadZipFile, ValueError):
        raise not_sealed from None
    run_id = manifest.get("run_id") if isinstance(manifest, dict) else None
    if not isinstance(run_id, str) or _unsafe(run_id) or "/" in run_id:
        raise ConfigError(f"{zip_path}: {MANIFEST} holds no usable run_id")
    return run_id


def _ensure_locked_bucket(s3: S3Client, place: _Place, create: bool) -> None:
    try:
        with aws_errors(f"read the Object Lock configuration of {place.bucket}", place.where):
            config = s3.get_object_lock_configuration(Bucket=place.bucket)
    except AwsRequestError as exc:
        if exc.code == "NoSuchBucket" and create:
            _create_locked_bucket(s3, place)
            return
        raise ArchiveRefused(_bucket_refusal(place, exc.code)) from exc
    if config.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") != "Enabled":
        raise ArchiveRefused(_bucket_refusal(place, "ObjectLockConfigurationNotFoundError"))


def _create_locked_bucket(s3: S3Client, place: _Place) -> None:
    with aws_errors(f"create bucket {place.bucket} with Object Lock", place.where):
        if place.region == "us-east-1":
            s3.create_bucket(Bucket=place.bucket, ObjectLockEnabledForBucket=True)
        else:
            s3.create_bucket(
                Bucket=place.bucket,
                ObjectLockEnabledForBucket=True,
                CreateBucketConfiguration={"LocationConstraint": place.region},  # type: ignore[typeddict-item]
            )


def _bucket_refusal(place: _Place, code: str) -> str:
    create = (
        f"create it with Object Lock: `aws s3api create-bucket --bucket {place.bucket} "
        "--object-lock-enabled-for-bucket`"
    )
    if code == "NoSuchBucket":
        return f"bucket {place.bucket} does not exist at {place.where}; {create}"
    if code == "ObjectLockConfigurationNotFoundError":
        return (
            f"bucket {place.bucket} at {place.where} has no Object Lock, so evidence in it "
            f"could be deleted; use a bucket with Object Lock enabled, or {create}"
        )
    return f"cannot read the Object Lock configuration of {place.bucket} at {place.where} ({code})"


LockSeen = tuple[str, str | None, datetime | None]  # (source, mode, retain until)


def _read_back_lock(
    s3: S3Client, place: _Place, version: str, digest: Mapping[str, Any]
) -> list[LockSeen]:
    """The lock as head_object reports it, and get_object_retention where the service has it;
    a stored object whose size or checksum differs from the zip is refused here."""
    with aws_errors(f"read back {place.url}", place.where):
        head = s3.head_object(
            Bucket=place.bucket, Key=place.key, VersionId=version, ChecksumMode="ENABLED"
        )
    sent = _b64(bytes.fromhex(digest["sha256"]))
    if head.get("ContentLength") != digest["size"] or head.get("ChecksumSHA256") not in (
        None,
        sent,
    ):
        raise ArchiveRefused(
            f"{place.url} version {version} at {place.where} holds {head.get('ContentLength')} "
            f"bytes with checksum {head.get('ChecksumSHA256')}, not the zip's {digest['size']} "
            f"bytes ({sent}); archive it again"
        )
    seen: list[LockSeen] = [
        ("head_object", head.get("ObjectLockMode"), head.get("ObjectLockRetainUntilDate"))
    ]
    witness = _retention_witness(place, version)
    return seen if witness is None else [*seen, ("get_object_retention", *witness)]


def _lock_problems(seen: list[LockSeen], until: datetime) -> list[str]:
    return [
        f"{source} reports mode {mode} until {_utc_text(retain) if retain else None}"
        for source, mode, retain in seen
        if mode != LOCK_MODE or retain is None or _as_utc(retain) < until
    ]


def _retention_witness(place: _Place, version: str) -> tuple[str | None, datetime | None] | None:
    """get_object_retention, asked once; None when the service does not answer it (moto 5
    does not implement it, so on the lab head_object is the only reader)."""
    s3 = AwsClients(AwsEndpoint(place.endpoint_url, max_attempts=1)).s3(place.region)
    try:
        with aws_errors("get_object_retention", place.where):
            retention = s3.get_object_retention(
                Bucket=place.bucket, Key=place.key, VersionId=version
            )
    except DrillError:
        return None
    lock = retention.get("Retention", {})
    return lock.get("Mode"), lock.get("RetainUntilDate")


def _years_after(moment: datetime, years: int) -> datetime:
    """The same calendar moment ``years`` later (29 February becomes 28 February)."""
    year = moment.year + years
    day = min(moment.day, calendar.monthrange(year, moment.month)[1])
    return moment.replace(year=year, day=day)


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _utc_text(moment: datetime) -> str:
    return _as_utc(moment).isoformat().replace("+00:00", "Z")
