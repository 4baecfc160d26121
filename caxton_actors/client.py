"""The CLI's client commands: talk to a running node's HTTP API (stdlib only)."""

from __future__ import annotations

import http.client
import json
import ssl
import sys
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

EXIT_UNREACHABLE = 1
TIMEOUT = 10.0


class ApiError(Exception):
    pass


@dataclass(frozen=True)
class Api:
    """A running node's API as the CLI reaches it: ``host:port`` or ``https://host:port``,
    the token it presents, and for HTTPS the CA file that vouches for the node's
    certificate (the system's CAs without one)."""

    url: str
    token: str | None = field(default=None, repr=False)
    ca_file: Path | None = None

    def __post_init__(self) -> None:
        scheme, sep, rest = self.url.partition("://")
        if not sep:
            scheme, rest = "http", self.url
        host, _, port = rest.rstrip("/").rpartition(":")
        if scheme not in ("http", "https") or not port.isdigit():
            raise ApiError(f"{self.url!r}: expected host:port or https://host:port")
        object.__setattr__(self, "url", f"{scheme}://{host or '127.0.0.1'}:{port}")

    def __str__(self) -> str:
        return self.url

    def connect(self, timeout: float | None) -> http.client.HTTPConnection:
        scheme, _, rest = self.url.partition("://")
        host, _, port = rest.rpartition(":")
        host = host.strip("[]")
        if scheme == "http":
            return http.client.HTTPConnection(host, int(port), timeout=timeout)
        context = ssl.create_default_context(cafile=self.ca_file)
        return http.client.HTTPSConnection(host, int(port), timeout=timeout, context=context)

    def headers(self, json_body: bool) -> dict[str, str]:
        sent = {"Content-Type": "application/json"} if json_body else {}
        if self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        return sent


def _request(api: Api, method: str, path: str, body: Any = None) -> Any:
    conn = api.connect(TIMEOUT)
    # Every POST says it is JSON, even without a body: the node refuses a POST that
    # could have come from an HTML form.
    headers = api.headers(json_body=body is not None or method == "POST")
    try:
        conn.request(method, path, json.dumps(body) if body is not None else None, headers)
        response = conn.getresponse()
        payload = json.loads(response.read() or b"{}")
    except (OSError, ValueError) as exc:
        raise ApiError(f"cannot reach {api}{path}: {exc}") from None
    finally:
        conn.close()
    if response.status >= 400:
        raise ApiError(f"{response.status}: {payload.get('description', payload.get('title'))}")
    return payload


def _members(api: Api) -> None:
    rows = _request(api, "GET", "/members")["members"]
    print(f"{'NAME':<24} {'GOSSIP':<22} {'HTTP':<22} {'STATE':<8} INCARNATION")
    for m in sorted(rows, key=lambda m: m["name"]):
        http_address = m["http_address"] or "-"
        print(
            f"{m['name']:<24} {m['address']:<22} {http_address:<22} "
            f"{m['state']:<8} {m['incarnation']}"
        )


def _agents(api: Api, capability: str | None, local: bool) -> None:
    """Every agent (the whole cluster's, or this node's), page by page."""
    query = {"limit": "1000", **({"capability": capability} if capability else {})}
    if local:
        query["scope"] = "local"
    print(f"{'AGENT':<32} {'NODE':<20} {'STATUS':<12} {'ROUTE':<28} CAPABILITIES")
    while True:
        page = _request(api, "GET", f"/agents?{urllib.parse.urlencode(query)}")
        for a in page["agents"]:
            print(
                f"{a['id']:<32} {a['node_id']:<20} {a['status']:<12} "
                f"{a['route'] or '-':<28} {','.join(a['capabilities'])}"
            )
        if page["next"] is None:
            return
        query["after"] = page["next"]


def keys(api: Api, action: str, key: str | None) -> int:
    """``keys list`` or a cluster-wide change; 1 when some member did not acknowledge."""
    if action == "list":
        ring = _request(api, "GET", "/keyring")
        print(f"{ring['members']} members")
        print(f"{'KEY':<26} {'INSTALLED':>9} {'PRIMARY':>7}")
        for entry in ring["keys"]:
            print(f"{entry['key']:<26} {entry['installed']:>9} {entry['primary']:>7}")
        _print_unreachable(ring["unreachable"])
        return 0 if not ring["unreachable"] else EXIT_UNREACHABLE
    done = _request(api, "POST", "/keyring", {"op": action, "key": key})
    acknowledged = done["acknowledged"]
    print(f"{action} {done['key']}: {len(acknowledged)} of {done['members']} members acknowledged")
    for name, error in done["refused"].items():
        print(f"refused by {name}: {error}")
    _print_unreachable(done["unreachable"])
    return 0 if len(acknowledged) == done["members"] else EXIT_UNREACHABLE


def _print_unreachable(unreachable: dict[str, str]) -> None:
    for name, why in unreachable.items():
        print(f"not reached {name}: {why}")


def _now() -> str:
    """This machine's clock, UTC, ISO 8601 to the millisecond: ``2026-11-30T09:15:02.114Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _monitor(api: Api, json_lines: bool = False) -> None:
    """Follow /events and print one line per member change, until interrupted, stamped
    with when it arrived (UTC); ``json_lines``: each event as the node sent it, one JSON
    object a line with that ``time`` added, and the greeting on stderr, so that stdout
    is JSON only."""
    conn = api.connect(timeout=None)
    try:
        conn.request("GET", "/events", headers=api.headers(json_body=False))
        response = conn.getresponse()
        if response.status != 200:
            raise ApiError(f"{response.status}: {response.read().decode(errors='replace')}")
        greeting = sys.stderr if json_lines else sys.stdout
        print(f"following member events from {api}", file=greeting, flush=True)
        for raw in response:
            line = raw.decode().strip()
            if not line.startswith("data: "):
                continue
            event = json.loads(line[6:])
            if json_lines:
                print(json.dumps({"time": _now(), **event}), flush=True)
                continue
            print(
                f"{_now()} {event['event']:<10} {event['name']} {event['address']} "
                f"incarnation {event['incarnation']}",
                flush=True,
            )
    except OSError as exc:
        raise ApiError(f"cannot reach {api}/events: {exc}") from None
    finally:
        conn.close()


def _join(api: Api, seeds: Sequence[str]) -> int:
    """Who answered on stdout, who did not (and why) on stderr; 1 when no seed answered
    (the node goes on asking the ones it could contact)."""
    result = _request(api, "POST", "/cluster/join", {"seeds": list(seeds)})
    for seed, why in result["failed"].items():
        print(f"caxton-actors join: {seed} did not answer: {why}", file=sys.stderr)
    for skipped in result["skipped"]:
        print(f"caxton-actors join: skipped {skipped}", file=sys.stderr)
    if not result["answered"]:
        print("caxton-actors join: no seed answered", file=sys.stderr)
        return EXIT_UNREACHABLE
    print(f"answered: {', '.join(result['answered'])}")
    return 0


def run(
    command: str,
    api: Api,
    seeds: Sequence[str] = (),
    capability: str | None = None,
    local: bool = False,
    json_lines: bool = False,
) -> int:
    try:
        if command == "members":
            _members(api)
        elif command == "agents":
            _agents(api, capability, local)
        elif command == "join":
            return _join(api, seeds)
        elif command == "leave":
            _request(api, "POST", "/cluster/leave")
            print("left the cluster")
        else:
            _monitor(api, json_lines)
    except ApiError as exc:
        print(f"caxton-actors {command}: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        return 0
    return 0
