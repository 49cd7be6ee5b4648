"""Where axonlink's log lines go and how they look: one handler, text or JSON, a level.

Every logger of ours is under ``axonlink`` (``axonlink.requests``: one line per request,
``axonlink.audit``: edits and access changes, ``axonlink.errors``: corrupt stored data and
unexpected failures). A line's structured fields travel as ``extra={"fields": {...}}``;
the text format prints them as ``key=value`` pairs, the JSON format (for log shippers) as
keys of one object per line. Set with ``--log-level``/``--log-format`` or
``AXONLINK_LOG_LEVEL`` (debug, info, warning, error) and ``AXONLINK_LOG_FORMAT`` (text, json).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime

ROOT = "axonlink"
FORMATS = ("text", "json")
LEVELS = ("debug", "info", "warning", "error")


class _Fields:
    @staticmethod
    def of(record: logging.LogRecord) -> dict:
        fields = getattr(record, "fields", None)
        return fields if isinstance(fields, dict) else {}

    @staticmethod
    def time(record: logging.LogRecord) -> str:
        return datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds")


class TextFormatter(logging.Formatter):
    """``2026-12-03T09:00:00.000+00:00 INFO axonlink.requests GET /data/… status=200 ms=3.1``"""

    def format(self, record: logging.LogRecord) -> str:
        pairs = " ".join(f"{key}={_text(value)}" for key, value in _Fields.of(record).items() if value is not None)
        line = f"{_Fields.time(record)} {record.levelname} {record.name} {record.getMessage()}"
        if pairs:
            line += " " + pairs
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the line's fields."""

    def format(self, record: logging.LogRecord) -> str:
        document = {
            "time": _Fields.time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,  # which server worker wrote it
        }
        document.update({key: value for key, value in _Fields.of(record).items() if value is not None})
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str)


def _text(value) -> str:
    text = str(value)
    if not text or any(c.isspace() or c in '"=' for c in text):
        return json.dumps(text)  # quoted, control characters escaped: one record stays one line
    return text


def configure(
    level: str | None = None, fmt: str | None = None, access_log: bool | None = None, stream=None
) -> logging.Logger:
    """Send the ``axonlink`` loggers to ``stream`` (stderr) in ``fmt`` at ``level``.

    Per-request lines are logged at INFO when ``access_log`` (``--access-log``,
    ``AXONLINK_ACCESS_LOG=1``); otherwise only failed requests (5xx, at WARNING) are.
    """
    level = (level or os.environ.get("AXONLINK_LOG_LEVEL") or "info").lower()
    fmt = (fmt or os.environ.get("AXONLINK_LOG_FORMAT") or "text").lower()
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, not {level!r}")
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if access_log is None:
        access_log = os.environ.get("AXONLINK_ACCESS_LOG", "").lower() in ("1", "true", "yes", "on")
    root = logging.getLogger(ROOT)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False
    requests = logging.getLogger(f"{ROOT}.requests")
    requests.setLevel(logging.NOTSET if access_log else max(logging.WARNING, root.level))
    return root
