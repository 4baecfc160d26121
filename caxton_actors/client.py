"""The CLI's client commands: talk to a running node's HTTP API (stdlib only)."""

from __future__ import annotations

import http.client
import json
import sys
import urllib.parse
from collections.abc import Sequence
from typing import Any

EXIT_UNREACHABLE = 1
TIMEOUT = 10.0


class ApiError(Exception):
    pass


def _request(address: str, method: str, path: str, body: Any = None) -> Any:
    host, _, port = address.rpartition(":")
    conn = http.client.HTTPConnection(host or "127.0.0.1", int(port), timeout=TIMEOUT)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    try:
        conn.request(method, path, json.dumps(body) if body is not None else None, headers)
        response = conn.getresponse()
        payload = json.loads(response.read() or b"{}")
    except (OSError, ValueError) as exc:
        raise ApiError(f"cannot reach http://{address}{path}: {exc}") from None
    finally:
        conn.close()
    if response.status >= 400:
        raise ApiError(f"{response.status}: {payload.get('description', payload.get('title'))}")
    return payload


def _members(address: str) -> None:
    rows = _request(address, "GET", "/members")["members"]
    print(f"{'NAME':<24} {'GOSSIP':<22} {'HTTP':<22} {'STATE':<8} INCARNATION")
    for m in sorted(rows, key=lambda m: m["name"]):
        http_address = m["http_address"] or "-"
        print(
            f"{m['name']:<24} {m['address']:<22} {http_address:<22} "
            f"{m['state']:<8} {m['incarnation']}"
        )


def _agents(address: str, capability: str | None, local: bool) -> None:
    """Every agent (the whole cluster's, or this node's), page by page."""
    query = {"limit": "1000", **({"capability": capability} if capability else {})}
    if local:
        query["scope"] = "local"
    print(f"{'AGENT':<32} {'NODE':<20} {'STATUS':<12} {'ROUTE':<28} CAPABILITIES")
    while True:
        page = _request(address, "GET", f"/agents?{urllib.parse.urlencode(query)}")
        for a in page["agents"]:
            print(
                f"{a['id']:<32} {a['node_id']:<20} {a['status']:<12} "
                f"{a['route'] or '-':<28} {','.join(a['capabilities'])}"
            )
        if page["next"] is None:
            return
        query["after"] = page["next"]


def keys(address: str, action: str, key: str | None) -> int:
    """``keys list`` or a cluster-wide change; 1 when some member did not acknowledge."""
    if action == "list":
        ring = _request(address, "GET", "/keyring")
        print(f"{ring['members']} members")
        print(f"{'KEY':<26} {'INSTALLED':>9} {'PRIMARY':>7}")
        for entry in ring["keys"]:
            print(f"{entry['key']:<26} {entry['installed']:>9} {entry['primary']:>7}")
        _print_unreachable(ring["unreachable"])
        return 0 if not ring["unreachable"] else EXIT_UNREACHABLE
    done = _request(address, "POST", "/keyring", {"op": action, "key": key})
    acknowledged = done["acknowledged"]
    print(f"{action} {done['key']}: {len(acknowledged)} of {done['members']} members acknowledged")
    for name, error in done["refused"].items():
        print(f"refused by {name}: {error}")
    _print_unreachable(done["unreachable"])
    return 0 if len(acknowledged) == done["members"] else EXIT_UNREACHABLE


def _print_unreachable(unreachable: dict[str, str]) -> None:
    for name, why in unreachable.items():
        print(f"not reached {name}: {why}")


def _monitor(address: str) -> None:
    """Follow /events and print one line per member change, until interrupted."""
    host, _, port = address.rpartition(":")
    conn = http.client.HTTPConnection(host or "127.0.0.1", int(port), timeout=None)
    try:
        conn.request("GET", "/events")
        response = conn.getresponse()
        if response.status != 200:
            raise ApiError(f"{response.status}: {response.read().decode(errors='replace')}")
        print(f"following member events from http://{address}", flush=True)
        for raw in response:
            line = raw.decode().strip()
            if line.startswith("data: "):
                event = json.loads(line[6:])
                print(
                    f"{event['event']:<10} {event['name']} {event['address']} "
                    f"incarnation {event['incarnation']}",
                    flush=True,
                )
    except OSError as exc:
        raise ApiError(f"cannot reach http://{address}/events: {exc}") from None
    finally:
        conn.close()


def run(
    command: str,
    address: str,
    seeds: Sequence[str] = (),
    capability: str | None = None,
    local: bool = False,
) -> int:
    try:
        if command == "members":
            _members(address)
        elif command == "agents":
            _agents(address, capability, local)
        elif command == "join":
            result = _request(address, "POST", "/cluster/join", {"seeds": list(seeds)})
            print(f"contacted: {', '.join(result['contacted']) or 'none'}")
            for skipped in result["skipped"]:
                print(f"skipped: {skipped}")
        elif command == "leave":
            _request(address, "POST", "/cluster/leave")
            print("left the cluster")
        else:
            _monitor(address)
    except ApiError as exc:
        print(f"caxton-actors {command}: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        return 0
    return 0
