"""The API's front door: which Host it answers, who may call, and what a browser cannot forge.

Three checks, in this order, before any resource runs:

- **Host.** A page on another site can make a browser send requests here by pointing its
  own name at this node's address (DNS rebinding). Such a request carries that site's
  name as its Host, so only ``localhost``, IP literals and the configured names are
  answered; any other is a 421.
- **Token.** With tokens configured, every route but the probes (``/health``,
  ``/health/ready``, which Kubernetes calls without credentials) and the status page
  (``/``, static: it asks the person for a token) needs
  ``Authorization: Bearer <secret>`` of a scope the route asks for: 401 without a token
  we know, 403 with one of too small a scope.
- **Forgery.** An HTML form can POST across sites, but only as a form or as text, never
  as JSON: every POST must say ``Content-Type: application/json`` (415 otherwise). The
  other methods that change state (PUT, DELETE) cannot be sent across sites at all
  without a CORS preflight, which this API never grants.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import falcon

from caxton_actors import metrics
from caxton_actors.http.access import Scope, Tokens

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def required_scope(resource: object, method: str) -> Scope | None:
    """The scope ``method`` on ``resource`` needs; None: anyone may call it.

    A resource says what it needs in ``read_scope`` (GET, HEAD) and ``change_scope``
    (every other method); by default reading needs ``read`` and changing ``write``.
    """
    if method in _SAFE_METHODS:
        scope: Scope | None = getattr(resource, "read_scope", Scope.READ)
    else:
        scope = getattr(resource, "change_scope", Scope.WRITE)
    return scope


def _host_name(host_header: str) -> str:
    """The name in a Host header, without its port: ``[::1]:80`` -> ``::1``."""
    if host_header.startswith("["):
        return host_header[1:].partition("]")[0]
    return host_header.rpartition(":")[0] if host_header.count(":") == 1 else host_header


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class Guard:
    """Falcon middleware: the three checks above; each refusal is counted by reason."""

    def __init__(
        self, tokens: Tokens, allowed_hosts: tuple[str, ...], stats: metrics.Metrics
    ) -> None:
        self._tokens = tokens
        self._any_host = "*" in allowed_hosts
        self._hosts = frozenset(("localhost", *allowed_hosts))
        self._stats = stats

    def _refuse(self, reason: str, error: falcon.HTTPError) -> falcon.HTTPError:
        self._stats.incr(f"{metrics.HTTP_REFUSED}.{reason}")
        return error

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        name = _host_name(req.get_header("Host") or "").lower().rstrip(".")
        if self._any_host or name in self._hosts or _is_ip(name):
            return
        raise self._refuse(
            "host",
            falcon.HTTPError(
                falcon.HTTP_421,
                description=f"this node does not answer for host {name!r}; "
                "use its IP address or add the name to http.allowed_hosts",
            ),
        )

    def process_resource(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        resource: Any,
        params: dict[str, Any],
    ) -> None:
        if resource is None:
            return  # no such route: the 404 says so
        needed = required_scope(resource, req.method)
        if needed is not None and self._tokens:
            self._authorize(req, needed)
        if req.method == "POST" and not _is_json(req.content_type):
            raise self._refuse(
                "content_type",
                falcon.HTTPUnsupportedMediaType(
                    description="a POST must be sent as Content-Type: application/json, "
                    "even without a body"
                ),
            )

    def _authorize(self, req: falcon.Request, needed: Scope) -> None:
        token = self._tokens.holder(req.get_header("Authorization"))
        if token is None:
            raise self._refuse(
                "unauthorized",
                falcon.HTTPUnauthorized(
                    description="this route needs Authorization: Bearer <token> "
                    f"of scope {needed} or above (http.tokens)",
                    challenges=["Bearer"],
                ),
            )
        if token.scope < needed:
            raise self._refuse(
                "forbidden",
                falcon.HTTPForbidden(
                    description=f"token {token.name} has scope {token.scope}; "
                    f"{req.method} {req.path} needs {needed}"
                ),
            )


def _is_json(content_type: str | None) -> bool:
    return (content_type or "").split(";", 1)[0].strip().lower() == falcon.MEDIA_JSON
