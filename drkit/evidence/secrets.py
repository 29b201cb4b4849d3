"""Configured secrets, and a scan of every byte of a package for them.

A secret is any value the run was configured with that must never reach evidence: the lab's
database passwords (`<state>/secrets.json`), environment variables whose names say they hold
one (`*PASSWORD*`, `*SECRET*`, `*TOKEN*`, `*API_KEY*`, `*PRIVATE_KEY*`, `*PASSPHRASE*`,
`DRKIT_SIGNING_KEY`), and the password inside any environment variable that holds a connection
string (`postgresql://user:PASSWORD@host/db`, `host=... password=PASSWORD`), whatever its name.
Values shorter than MIN_LENGTH are too common to scan for and are skipped. A secret is looked
for raw and in the encodings a log, a JSON file or a report would give it.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus, unquote

SECRET_NAME = re.compile(
    r"PASSWORD|PASSWD|PASSPHRASE|SECRET|TOKEN|API_?KEY|PRIVATE_KEY|SIGNING_KEY", re.I
)
MIN_LENGTH = 8
NOT_SECRETS = frozenset({"GITHUB_TOKEN_URL"})  # names that match but hold no secret
# scheme://user:PASSWORD@host (a URL's userinfo) and libpq's key=value `password=PASSWORD`
URL_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^\s:/@]*:([^\s@/]+)@", re.I)
KEYWORD_PASSWORD = re.compile(r"""(?:^|\s)password\s*=\s*(?:'((?:[^'\\]|\\.)*)'|([^\s']+))""", re.I)


def configured_secrets(
    state: Path | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """name -> value of every configured secret long enough to scan for."""
    environ = os.environ if environ is None else environ
    found = {
        f"environment variable {name}": value
        for name, value in environ.items()
        if SECRET_NAME.search(name) and name not in NOT_SECRETS and len(value) >= MIN_LENGTH
    }
    for name, value in environ.items():
        for password in dsn_passwords(value):
            if len(password) >= MIN_LENGTH and password not in found.values():
                found[f"password in environment variable {name}"] = password
    if state is not None and (path := state / "secrets.json").exists():
        try:
            stored = json.loads(path.read_text())
        except (OSError, ValueError):
            stored = {}
        for name, value in stored.items() if isinstance(stored, dict) else ():
            if isinstance(value, str) and len(value) >= MIN_LENGTH:
                found[f"lab secret {name!r} ({path})"] = value
    return found


def dsn_passwords(value: str) -> list[str]:
    """The passwords a connection string holds (URL userinfo or libpq `password=`)."""
    found = [unquote(m.group(1)) for m in URL_PASSWORD.finditer(value)]
    for match in KEYWORD_PASSWORD.finditer(value):
        quoted, bare = match.groups()
        found.append(re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare)
    return found


@dataclass(frozen=True)
class Leak:
    file: str
    secret: str  # the secret's name, never its value
    encoding: str = "raw"
    offset: int = -1

    def describe(self) -> str:
        where = f" at byte {self.offset}" if self.offset >= 0 else ""
        return f"{self.file} holds {self.secret} ({self.encoding}{where})"


def encodings(value: str) -> dict[str, bytes]:
    """`value` as it could appear in a file: raw, JSON-escaped, URL-quoted, hex, and base64 at
    each of the three alignments a longer base64 text could hold it in."""
    raw = value.encode()
    forms = {
        "raw": raw,
        "JSON-escaped": json.dumps(value)[1:-1].encode(),
        "JSON-escaped with \\/": json.dumps(value)[1:-1].replace("/", "\\/").encode(),
        "URL-encoded": quote(value, safe="").encode(),
        "form-encoded": quote_plus(value, safe="").encode(),
        "hex": raw.hex().encode(),
        "HEX": raw.hex().upper().encode(),
    }
    for shift in range(3):
        whole = raw[shift:][: (len(raw) - shift) // 3 * 3]  # whole 3-byte groups only
        forms[f"base64 (alignment {shift})"] = base64.b64encode(whole)
        forms[f"base64url (alignment {shift})"] = base64.urlsafe_b64encode(whole)
    unique: dict[bytes, str] = {}
    for name, form in forms.items():
        if len(form) >= MIN_LENGTH:
            unique.setdefault(form, name)
    return {name: form for form, name in unique.items()}


Needles = Mapping[str, Mapping[str, bytes]]  # secret name -> encoding -> bytes


def needles(secrets: Mapping[str, str]) -> Needles:
    """What to look for: every encoding of every secret, by the secret's name."""
    return {name: encodings(value) for name, value in secrets.items() if value}


def scan_bytes(data: bytes, secrets: Mapping[str, str], where: str) -> list[Leak]:
    """One leak per secret found in `data`, with the first encoding found and its offset."""
    return find(data, needles(secrets), where)


def find(data: bytes, needles: Needles, where: str) -> list[Leak]:
    """`scan_bytes` with the needles made once, for many files."""
    leaks = []
    for name, forms in needles.items():
        for encoding, form in forms.items():
            if (offset := data.find(form)) >= 0:
                leaks.append(Leak(where, name, encoding, offset))
                break
    return leaks


def scan_folder(folder: Path, secrets: Mapping[str, str]) -> list[Leak]:
    """Every byte of every file below `folder`."""
    looked_for = needles(secrets)
    leaks: list[Leak] = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        leaks += find(path.read_bytes(), looked_for, str(path.relative_to(folder)))
    return leaks


def scan_zip(path: Path, secrets: Mapping[str, str]) -> list[Leak]:
    """The archive's raw bytes and each member's uncompressed bytes."""
    import zipfile

    looked_for = needles(secrets)
    leaks = find(path.read_bytes(), looked_for, path.name)
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            leaks += find(archive.read(member), looked_for, f"{path.name}:{member}")
    return leaks


def describe(leaks: Iterable[Leak]) -> str:
    return "; ".join(leak.describe() for leak in leaks)
