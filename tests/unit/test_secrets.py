"""Which configured values count as secrets, and the scan that finds them in any encoding."""

from __future__ import annotations

import base64
import json
import zipfile
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from drkit.evidence import secrets

pytestmark = pytest.mark.unit

VALUE = "s3cr3t/Kq+Zr9=xyzw???~~~>>>"  # characters encodings change: / + = ? ~ >


@pytest.mark.parametrize(
    "name",
    [
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "PINECONE_API_KEY",
        "DRKIT_LAB_DB_PASSWORD",
        "DRKIT_SIGNING_KEY",
        "GPG_PASSPHRASE",
        "RAG_DB_PASSWD",
    ],
)
def test_environment_names_that_say_secret_are_secrets(name: str) -> None:
    found = secrets.configured_secrets(environ={name: VALUE})
    assert found == {f"environment variable {name}": VALUE}


def test_ids_regions_and_short_values_are_not_scanned_for() -> None:
    environ = {
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE0000001",
        "AWS_DEFAULT_REGION": "us-east-1",
        "DRKIT_LAB_DB_PASSWORD": "short",
        "GITHUB_TOKEN_URL": "https://example.invalid/token",
        "GOOGLE_APPLICATION_CREDENTIALS": "/etc/gcp/service-account.json",  # a path
    }
    assert secrets.configured_secrets(environ=environ) == {}


@pytest.mark.parametrize(
    ("dsn", "password"),
    [
        ("postgresql://rag_app:pl41nPassw0rd@db.example:5432/ragdb", "pl41nPassw0rd"),
        (f"postgresql://rag_app:{quote('p@ss/w0rd!', safe='')}@db:5432/x", "p@ss/w0rd!"),
        ("redis://:onlyApassw0rd@cache:6379/0", "onlyApassw0rd"),
        ("host=db port=5432 user=app password=kw0rdPassw0rd dbname=x", "kw0rdPassw0rd"),
        ("host=db password='quoted \\'pass\\' 1' user=app", "quoted 'pass' 1"),
    ],
    ids=["url", "url-encoded", "no-user", "keyword", "keyword-quoted"],
)
def test_a_password_inside_a_connection_string_is_a_secret_whatever_the_name(
    dsn: str, password: str
) -> None:
    found = secrets.configured_secrets(environ={"DATABASE_URL": dsn, "HTTPS_PROXY": dsn})
    assert found == {"password in environment variable DATABASE_URL": password}  # named once


def test_a_connection_string_without_a_password_holds_no_secret() -> None:
    environ = {"DATABASE_URL": "postgresql://rag_app@db:5432/ragdb", "URL": "https://a.b/c@d"}
    assert secrets.configured_secrets(environ=environ) == {}


def test_the_lab_secrets_file_is_read(tmp_path: Path) -> None:
    (tmp_path / "secrets.json").write_text(json.dumps({"app": VALUE, "tiny": "x"}))
    found = secrets.configured_secrets(tmp_path, environ={})
    assert list(found.values()) == [VALUE]


def _base64_inside(prefix: bytes) -> bytes:
    """`VALUE` inside a longer base64 text, `len(prefix)` bytes from its start."""
    return base64.b64encode(prefix + VALUE.encode() + b" and more")


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        (f"password={VALUE}".encode(), "raw"),
        (json.dumps({"k": VALUE}).encode(), "raw"),
        (json.dumps({"k": VALUE + '"'}).encode(), "raw"),
        (VALUE.replace("/", "\\/").encode(), "JSON-escaped with \\/"),
        (quote(VALUE, safe="").encode(), "URL-encoded"),
        (quote_plus(f"a {VALUE}", safe="").encode(), "URL-encoded"),
        (VALUE.encode().hex().encode(), "hex"),
        (VALUE.encode().hex().upper().encode(), "HEX"),
        (_base64_inside(b""), "base64 (alignment 0)"),
        (_base64_inside(b"xx"), "base64 (alignment 1)"),
        (_base64_inside(b"x"), "base64 (alignment 2)"),
        (base64.urlsafe_b64encode(b"x" + VALUE.encode()), "base64url (alignment 2)"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_the_scan_finds_a_secret_raw_and_encoded(text: bytes, encoding: str) -> None:
    data = b"noise " * 50 + text + b" noise"
    (leak,) = secrets.scan_bytes(data, {"environment variable X": VALUE}, "a.log")
    assert (leak.file, leak.secret, leak.encoding) == ("a.log", "environment variable X", encoding)
    assert leak.offset >= 300
    assert VALUE not in leak.describe()


def test_the_scan_of_clean_bytes_finds_nothing() -> None:
    data = b"noise " * 50 + VALUE[:-1].encode() + base64.b64encode(VALUE[:-3].encode())
    assert secrets.scan_bytes(data, {"X": VALUE}, "a.log") == []


def test_a_zip_is_scanned_member_by_member_decompressed(tmp_path: Path) -> None:
    path = tmp_path / "package.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("run/clean.txt", "nothing here " * 100)
        archive.writestr("run/notes.txt", ("padding " * 100) + VALUE)
    leaks = secrets.scan_zip(path, {"X": VALUE})
    assert [leak.file for leak in leaks] == ["package.zip:run/notes.txt"]
