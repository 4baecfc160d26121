"""JSON in and out of the HTTP API, through ujson, with every refusal explained.

Bodies are read here rather than by Falcon's media layer so that the size
limit holds for chunked uploads too: at most ``MAX_BODY_BYTES + 1`` bytes are
ever read, whatever the client claims.
"""

from __future__ import annotations

import functools
from typing import Any

import falcon
import falcon.media
import ujson

MAX_BODY_BYTES = 64 * 1024

dumps = functools.partial(ujson.dumps, ensure_ascii=False, escape_forward_slashes=False)

json_handler = falcon.media.JSONHandler(dumps=dumps, loads=ujson.loads)
"""Falcon's JSON handler with ujson underneath, for responses."""


def read_json_object(req: falcon.Request) -> dict[str, Any]:
    """The request body as a JSON object, or the 4xx that says why not."""
    body = read_json(req, MAX_BODY_BYTES)
    if not isinstance(body, dict):
        raise falcon.HTTPBadRequest(description="the body must be a JSON object")
    return body


def read_json(req: falcon.Request, limit: int) -> Any:
    """The request body as any JSON value of at most ``limit`` bytes, or the 4xx saying why."""
    if req.content_length is not None and req.content_length > limit:
        raise _too_large(limit)
    content_type = (req.content_type or "").split(";", 1)[0].strip().lower()
    if content_type != falcon.MEDIA_JSON:
        raise falcon.HTTPUnsupportedMediaType(
            description=f"Content-Type must be application/json, not {req.content_type!r}"
        )
    # A chunked upload has no Content-Length: read the server's decoded stream instead.
    stream = req.bounded_stream if req.content_length is not None else req.stream
    raw = stream.read(limit + 1)
    if len(raw) > limit:
        raise _too_large(limit)
    if not raw.strip():
        raise falcon.HTTPBadRequest(description="the request body is empty; send JSON")
    try:
        return ujson.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise falcon.HTTPBadRequest(description=f"the body is not valid JSON: {exc}") from None


def _too_large(limit: int) -> falcon.HTTPContentTooLarge:
    return falcon.HTTPContentTooLarge(description=f"the body is larger than {limit} bytes")
