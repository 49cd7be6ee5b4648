"""One structured log line per request, a request id in every answer and error body, audit events logged."""

from __future__ import annotations

import io
import json
import logging

import pytest

from tests.helpers import SQLITE_ONLY


@pytest.fixture
def logged(app):
    from server import logs

    stream = io.StringIO()
    logs.configure("info", "json", access_log=True, stream=stream)
    yield app.test_client(), stream
    logging.getLogger("axonlink").handlers.clear()


def lines(stream) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


@SQLITE_ONLY
def test_each_request_is_one_json_line_with_its_id(logged):
    client, stream = logged
    answer = client.get("/data/small/segmentation/info")
    ident = answer.headers["X-Request-Id"]
    assert len(ident) == 16
    (line,) = [entry for entry in lines(stream) if entry["logger"] == "axonlink.requests"]
    assert line["message"] == "GET /data/<dataset_ref>/<layer>/<path:key>"
    assert line["id"] == ident and line["status"] == answer.status_code and line["dataset"] == "small"
    assert line["user"] == "anonymous" and line["ms"] >= 0


@SQLITE_ONLY
def test_error_bodies_carry_the_request_id_and_refusals_say_why(logged):
    client, stream = logged
    answer = client.get("/api/v1/datasets/no_such_dataset/state")
    assert answer.status_code == 404
    assert answer.get_json()["request_id"] == answer.headers["X-Request-Id"]
    line = lines(stream)[-1]
    assert line["refused"] == "NotVisible" and line["status"] == 404 and line["id"] == answer.headers["X-Request-Id"]
    bad = client.get("/api/v1/datasets", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and lines(stream)[-1]["refused"] == "InvalidToken"


@SQLITE_ONLY
def test_a_front_servers_request_id_is_kept_when_well_formed(logged):
    client, stream = logged
    kept = client.get("/api/v1/datasets", headers={"X-Request-Id": "nginx-4f2a9c"})
    assert kept.headers["X-Request-Id"] == "nginx-4f2a9c"
    forged = client.get("/api/v1/datasets", headers={"X-Request-Id": 'x" status=200 user=admin'})
    assert forged.headers["X-Request-Id"] != 'x" status=200 user=admin' and len(forged.headers["X-Request-Id"]) == 16


def test_text_lines_quote_values_so_one_record_stays_one_line():
    from server.logs import TextFormatter

    record = logging.LogRecord("axonlink.requests", logging.INFO, __file__, 1, "GET %s", ("/x",), None)
    record.fields = {"status": 200, "user": "eve\nstatus=500", "bytes": None}
    text = TextFormatter().format(record)
    assert "\n" not in text and 'user="eve\\nstatus=500"' in text and "bytes" not in text


@SQLITE_ONLY
def test_without_access_log_only_failures_are_logged(app):
    from server import logs

    stream = io.StringIO()
    logs.configure("info", "text", access_log=False, stream=stream)
    try:
        app.test_client().get("/api/v1/datasets")
        assert "axonlink.requests" not in stream.getvalue()
    finally:
        logging.getLogger("axonlink").handlers.clear()


@SQLITE_ONLY
def test_edits_and_access_changes_are_logged_as_audit_lines(app, settings):
    from segmentation.access import Accounts
    from server import logs

    stream = io.StringIO()
    logs.configure("info", "json", stream=stream)
    try:
        Accounts(settings.database_url).role_token("ann", "small", "proofreader", by="admin")
        Accounts(settings.database_url).grant("ann", "small", None, by="admin")
    finally:
        logging.getLogger("axonlink").handlers.clear()
    audit = [entry for entry in lines(stream) if entry["logger"] == "axonlink.audit"]
    assert audit and all(entry["user"] == "admin" for entry in audit)
    assert any("grant" in entry["message"] or "token" in entry["message"] for entry in audit)


def test_log_settings_are_checked():
    from server import logs

    with pytest.raises(ValueError, match="log level"):
        logs.configure("loud", "text")
    with pytest.raises(ValueError, match="log format"):
        logs.configure("info", "xml")
