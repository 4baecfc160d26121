"""The served OpenAPI document describes exactly the routes the app has."""

from __future__ import annotations

import json
import re
from typing import Any

import falcon.inspect
import pykka
import pytest

from caxton_actors.http.app import create_app
from caxton_actors.http.openapi import DOCUMENT
from caxton_actors.http.resources import Actors
from caxton_actors.metrics import NullMetrics
from caxton_actors.runtime.actor import GeventActor
from caxton_actors.state.service import StateService
from tests.integration.conftest import NodeProcess

IMPLICIT = {"OPTIONS"}  # Falcon answers OPTIONS on every route by itself
CONVERTER = re.compile(r":\w+}")  # Falcon's {key:path} is OpenAPI's {key}


def _real_routes() -> dict[str, set[str]]:
    ref: pykka.ActorRef[Any] = GeventActor.start()  # routes are only inspected: any actor does
    try:
        state = StateService({}, 1.0, NullMetrics())
        app = create_app(Actors(ref, None, None, (), 1.0, state), NullMetrics())
        return {
            CONVERTER.sub("}", route.path): {
                m.method for m in route.methods if not m.internal and m.method not in IMPLICIT
            }
            for route in falcon.inspect.inspect_routes(app)
        }
    finally:
        pykka.ActorRegistry.stop_all()


def test_document_matches_routes(api: NodeProcess) -> None:
    document = api.request("GET", "/openapi.json").json
    assert document["openapi"].startswith("3.")
    described = {
        path: {m.upper() for m in ops if m != "parameters"}
        for path, ops in document["paths"].items()
    }
    assert described == _real_routes()


def test_every_reference_resolves(api: NodeProcess) -> None:
    document = api.request("GET", "/openapi.json").json
    schemas = document["components"]["schemas"]
    text = str(document)
    for name in {part.split("'")[0] for part in text.split("#/components/schemas/")[1:]}:
        assert name in schemas


def test_the_document_is_valid_openapi() -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(json.loads(json.dumps(DOCUMENT)))


def test_every_read_that_waits_for_a_token_says_it_may_time_out() -> None:
    waiting = {
        f"{method} {path}"
        for path, operations in DOCUMENT["paths"].items()
        for method, operation in operations.items()
        if method != "parameters"
        and any(p["name"] == "after" for p in operation.get("parameters", ()))
    }
    assert waiting == {"get /agents", "get /agents/watch", "get /agents/{agent_id}"}
    for name in waiting:
        method, path = name.split()
        assert "504" in DOCUMENT["paths"][path][method]["responses"], name
