"""The node's log lines: text for people, or JSON for machines (one object a line).

A JSON line has ``time`` (ISO 8601, UTC, milliseconds), ``level``, ``logger``, ``node``
and ``message``, then each field a call passed in ``extra`` (a member event's
``member``, ``state``...; a request's ``method``, ``route``, ``status``...), then
``exception`` (the traceback's text) when there is one. Every line is ASCII: other
characters are ``\\uXXXX`` escapes, so a line stays valid JSON whatever encoding
stderr has, and no character of a message (a newline, U+2028) can split or forge one.
"""

from __future__ import annotations

import json
import logging
import math
import time
from typing import Any

import ujson

TEXT = "text"
JSON = "json"
# The node name in a text line is placed in the format itself: it is letters, digits,
# '.', '_' and '-' only (config.py), so it holds no '%'.
TEXT_FORMAT = "%(asctime)s %(levelname)s {node} %(name)s: %(message)s"
# What every LogRecord has: anything else on a record came from ``extra``.
_RECORD = logging.LogRecord("", logging.INFO, "", 0, "", None, None)
_RECORD_ATTRIBUTES = frozenset(vars(_RECORD)) | {"message", "asctime", "taskName"}


def _dumps(entry: dict[str, Any]) -> str:
    try:
        text: str = ujson.dumps(
            entry, ensure_ascii=True, escape_forward_slashes=False, default=repr
        )
    except (OverflowError, TypeError, ValueError):  # a cycle, a NaN: each such field as text
        text = json.dumps({key: _plain(value) for key, value in entry.items()}, ensure_ascii=True)
    return text


def _plain(value: object) -> object:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return repr(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with the node's name."""

    def __init__(self, node: str) -> None:
        super().__init__()
        self._node = node

    def format(self, record: logging.LogRecord) -> str:
        created = time.gmtime(record.created)
        entry: dict[str, Any] = {
            "time": f"{time.strftime('%Y-%m-%dT%H:%M:%S', created)}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "node": self._node,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and key not in entry:
                entry[key] = value
        if record.exc_info and not record.exc_text:  # cached, as logging.Formatter does
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return _dumps(entry)


def formatter(log_format: str, node: str) -> logging.Formatter:
    """The formatter for ``log_format`` (``text`` or ``json``), naming ``node``."""
    if log_format == JSON:
        return JsonFormatter(node)
    return logging.Formatter(TEXT_FORMAT.format(node=node))


def setup(level: str, log_format: str, node: str) -> None:
    """Log to stderr at ``level`` in ``log_format``: the node process's one handler."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(log_format, node))
    logging.basicConfig(level=level, handlers=[handler])
