"""The RAG service's parts that need no database: bounded waits, the mapping of a failed
write to refused or indeterminate, input validation, secrets handling, the region header."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pydantic import ValidationError

from drkit.lab.rag_service import (
    PASSWORD_ENV,
    DocumentIn,
    RegionHeader,
    ServiceConfig,
    WriteProgress,
    bounded,
    read_password,
    write_failure,
)

pytestmark = pytest.mark.unit

CONFIG = ServiceConfig(
    region="us-west-2",
    db_host="127.0.2.12",
    db_port=25432,
    db_name="ragdb",
    db_user="rag_app",
    index_host="http://127.0.2.12:25481",
    password="s3cret-value",
)


class FakeRuntime:
    config = CONFIG


def failure(phase: str, exc: BaseException) -> tuple[int, dict[str, object]]:
    error = write_failure(FakeRuntime(), exc, WriteProgress(phase))  # type: ignore[arg-type]
    return error.status, error.body


# -- bounded waits ---------------------------------------------------------------------------


def test_bounded_returns_the_result_of_work_that_finishes_in_time() -> None:
    async def quick() -> int:
        return 42

    assert asyncio.run(bounded(quick(), 1.0)) == 42


def test_bounded_gives_up_on_work_that_ignores_the_first_cancellation() -> None:
    """psycopg answers a cancel by waiting for the server; a blackhole never answers."""
    cancels: list[str] = []

    async def stubborn() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancels.append("first")
            try:
                await asyncio.sleep(60)  # "cancelling the query on the server"
            except asyncio.CancelledError:
                cancels.append("second")
                raise

    async def run() -> float:
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r"0\.2s"):
            await bounded(stubborn(), 0.2)
        return time.monotonic() - started

    elapsed = asyncio.run(run())
    assert cancels == ["first", "second"]
    assert elapsed < 1.0, f"bounded(0.2 s) took {elapsed:.2f}s"


# -- what a failed write means ---------------------------------------------------------------


def test_a_failure_before_the_commit_is_a_refusal_nothing_was_written() -> None:
    status, body = failure("writing", TimeoutError("no answer within 2s"))
    assert (status, body["outcome"], body["error"]) == (503, "refused", "database unavailable")


def test_a_lost_connection_during_the_commit_is_indeterminate() -> None:
    status, body = failure("committing", psycopg.OperationalError("server closed the connection"))
    assert (status, body["outcome"], body["committed"]) == (502, "indeterminate", None)


def test_a_timeout_during_the_commit_is_indeterminate() -> None:
    status, body = failure("committing", TimeoutError())
    assert (status, body["outcome"]) == (502, "indeterminate")


def test_a_commit_the_server_rejected_is_a_refusal() -> None:
    status, body = failure("committing", psycopg.errors.SerializationFailure("conflict"))
    assert (status, body["outcome"]) == (503, "refused")


def test_a_failure_after_the_commit_is_indeterminate_but_committed() -> None:
    status, body = failure("committed", TimeoutError())
    assert (status, body["outcome"], body["committed"]) == (502, "indeterminate", True)


def test_a_read_only_transaction_is_refused_as_a_standby() -> None:
    error = psycopg.errors.ReadOnlySqlTransaction("cannot execute INSERT in a read-only txn")
    status, body = failure("writing", error)
    assert (status, body["error"], body["role"]) == (503, "database is a standby", "standby")


# -- input -----------------------------------------------------------------------------------

VALID = {"title": "T", "body": "B", "source": "S", "as_of": "2025-03-31"}


def test_a_document_without_an_id_gets_a_generated_one() -> None:
    doc = DocumentIn.model_validate(VALID).to_document()
    assert doc.id.startswith("doc-") and len(doc.id) > 20


@pytest.mark.parametrize(
    "change",
    [{"id": "has space"}, {"id": ""}, {"title": ""}, {"as_of": "31/03/2025"}, {"extra": 1}],
)
def test_bad_documents_are_rejected(change: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        DocumentIn.model_validate({**VALID, **change})


# -- secrets ---------------------------------------------------------------------------------


def test_the_password_never_shows_in_the_config_or_its_conninfo() -> None:
    assert "s3cret-value" not in repr(CONFIG)
    assert "s3cret-value" not in CONFIG.conninfo()
    assert "connect_timeout=1" in CONFIG.conninfo()


def test_the_password_comes_from_the_secrets_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps({"app": "from-file", "operator": "x"}))
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    assert read_password(secrets) == "from-file"
    monkeypatch.setenv(PASSWORD_ENV, "from-env")
    assert read_password(secrets) == "from-env"


def test_a_missing_secrets_file_says_how_to_create_it(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="drkit lab up"):
        read_password(tmp_path / "absent.json")


# -- the region header -----------------------------------------------------------------------


def test_every_response_names_the_answering_region() -> None:
    sent: list[dict[str, Any]] = []

    async def not_found(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(RegionHeader(not_found, "us-west-2")({"type": "http"}, receive, send))
    assert (b"x-dr-region", b"us-west-2") in sent[0]["headers"]


def test_an_index_request_that_times_out_retires_the_client() -> None:
    """A blackholed request holds its pooled connection forever; the next request must get a
    fresh client, or the service never recovers after the heal (the connection-pool tail)."""
    from drkit.lab.rag_service import Runtime

    async def scenario() -> tuple[object, object, int, str]:
        rt = Runtime(CONFIG)
        first = rt.index
        hung = asyncio.Event()

        async def never(index: object) -> str:
            await hung.wait()  # a blackholed link: no answer, ever
            return "late"

        async def answers(index: object) -> str:
            return "answered" if index is not first else "stale client"

        with pytest.raises(TimeoutError):
            await rt.index_call(never, 0.05)
        fresh = rt.index
        result = await rt.index_call(answers, 1.0)
        await rt.index.close()
        return first, fresh, rt.index_clients_retired, result

    first, fresh, retired, result = asyncio.run(scenario())
    assert fresh is not first and retired == 1 and result == "answered"
