"""The status page at ``GET /``: one static HTML file that reads the node's own JSON API.

The page holds no data: it asks ``/members``, ``/agents``, the health routes and the
registry digest from the browser, and follows ``/events``, with the token the person
gives it (kept in the tab's ``sessionStorage``). So it is public, like the probes: a
browser must load it before it can ask for a token.

Its one script and one style sheet are inline, and the Content-Security-Policy allows
exactly those two by their SHA-256 hash: no other script runs, even one injected into
the page, and with Trusted Types required no string can become markup
(``innerHTML``). The page may only talk to its own node (``connect-src 'self'``) and
cannot be framed.
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib import resources

import falcon

_ELEMENT = r"<{0}>(.*?)</{0}>"


def _inline(html: str, tag: str) -> str:
    """The CSP source of the page's one inline ``tag`` element: its text's hash."""
    found = re.findall(_ELEMENT.format(tag), html, flags=re.DOTALL)
    if len(found) != 1:
        raise ValueError(f"status.html must hold exactly one <{tag}>, not {len(found)}")
    digest = hashlib.sha256(found[0].encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def _load() -> tuple[bytes, str, str]:
    """The page (line ends as a browser hashes them), its policy and its ETag."""
    html = resources.files(__package__).joinpath("status.html").read_text("utf-8")
    html = html.replace("\r\n", "\n")
    policy = "; ".join(
        (
            "default-src 'none'",
            f"script-src {_inline(html, 'script')}",
            f"style-src {_inline(html, 'style')}",
            "connect-src 'self'",
            "img-src data:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
            "require-trusted-types-for 'script'",
            "trusted-types 'none'",
        )
    )
    body = html.encode()
    return body, policy, f'"{hashlib.sha256(body).hexdigest()[:32]}"'


PAGE, POLICY, ETAG = _load()
HEADERS = {
    "Content-Security-Policy": POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-cache",  # kept, but asked again: a new version shows at once
    "ETag": ETAG,
}


class StatusPage:
    """``GET /``: the page, to anyone; the data behind it still needs a token."""

    name = "status_page"
    read_scope = None  # static, no data: the page asks for the token itself

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.set_headers(HEADERS)
        if ETAG in (req.get_header("If-None-Match") or ""):
            resp.status = falcon.HTTP_304
            return
        resp.content_type = "text/html; charset=utf-8"
        resp.data = PAGE

    on_head = on_get
