"""The status page as served: public behind the guard, with a policy that allows its own
inline script and style by hash and nothing else. The browser runs it in
tests/cluster/test_status_page.py."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import falcon
import falcon.testing
import pytest

from caxton_actors.http.access import Scope, Token, Tokens
from caxton_actors.http.guard import Guard
from caxton_actors.http.status import ETAG, PAGE, StatusPage
from caxton_actors.metrics import NullMetrics


@pytest.fixture
def client() -> falcon.testing.TestClient:
    """The page behind the front door of a node that has tokens."""
    tokens = Tokens((Token("viewer", Scope.READ, "read-secret-0123456789"),))
    app: falcon.App[Any, Any] = falcon.App(middleware=[Guard(tokens, (), NullMetrics())])
    app.add_route("/", StatusPage())
    return falcon.testing.TestClient(app, headers={"Host": "localhost"})


def _sources(policy: str, directive: str) -> list[str]:
    for part in policy.split(";"):
        name, *sources = part.split()
        if name == directive:
            return sources
    raise AssertionError(f"no {directive} in {policy}")


def _hash(text: str) -> str:
    return f"'sha256-{base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()}'"


def test_the_page_needs_no_token(client: falcon.testing.TestClient) -> None:
    page = client.simulate_get("/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.content == PAGE
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert client.simulate_head("/").status_code == 200


def test_the_policy_allows_the_inline_script_and_style_by_hash_only(
    client: falcon.testing.TestClient,
) -> None:
    page = client.simulate_get("/")
    policy = page.headers["content-security-policy"]
    (script,) = re.findall(r"<script>(.*?)</script>", page.text, flags=re.DOTALL)
    (style,) = re.findall(r"<style>(.*?)</style>", page.text, flags=re.DOTALL)
    assert _sources(policy, "script-src") == [_hash(script)]
    assert _sources(policy, "style-src") == [_hash(style)]
    assert _sources(policy, "default-src") == ["'none'"]
    assert _sources(policy, "connect-src") == ["'self'"]
    assert _sources(policy, "frame-ancestors") == ["'none'"]
    assert _sources(policy, "require-trusted-types-for") == ["'script'"]


def test_an_unchanged_page_is_not_sent_again(client: falcon.testing.TestClient) -> None:
    first = client.simulate_get("/")
    assert first.headers["etag"] == ETAG
    assert first.headers["cache-control"] == "no-cache"
    again = client.simulate_get("/", headers={"If-None-Match": ETAG})
    assert again.status_code == 304
    assert again.content == b""


def test_the_script_never_writes_markup_nor_leaves_the_node() -> None:
    """API data (agent ids, node names) goes in as text; everything comes from the node."""
    text = PAGE.decode()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in text
    assert not re.search(r"https?://", text)
    assert "localStorage" not in text  # the token is kept for the tab only
