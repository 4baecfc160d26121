"""The CLI's client commands: talk to a running node's HTTP API (stdlib only)."""

from __future__ import annotations

import http.client
import json
import ssl
import sys
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

EXIT_UNREACHABLE = 1
TIMEOUT = 10.0
# A watch's connection is dead once this long passes without a byte: a node sends a
# keep-alive comment every 15 s, so this is four missed.
WATCH_IDLE = 60.0
RECONNECTS = 5  # in a row, after a watch's connection drops
BACKOFF = 0.5  # seconds before the first reconnection, doubled for each next one


class ApiError(Exception):
    pass


class Refused(ApiError):
    """The node answered a stream's request with an error status."""

    def __init__(self, status: int, raw: bytes) -> None:
        try:
            payload = json.loads(raw)
            why = payload.get("description", payload.get("title"))
        except (ValueError, AttributeError):
            why = raw.decode(errors="replace")
        super().__init__(f"{status}: {why}")
        self.status = status


@dataclass(frozen=True)
class AgentFilter:
    """Which agents ``agents`` lists or watches; None: not filtered on that."""

    scope: str | None = None
    capability: str | None = None
    skill: str | None = None
    tag: str | None = None
    q: str | None = None
    local: bool = False

    def query(self) -> dict[str, str]:
        sent = {
            name: value
            for name, value in (
                ("scope", self.scope),
                ("capability", self.capability),
                ("skill", self.skill),
                ("tag", self.tag),
                ("q", self.q),
            )
            if value is not None
        }
        return {**sent, "local": "true"} if self.local else sent

    @property
    def scope_column(self) -> bool:
        """Rows name their scope only outside the default one, where most tables are."""
        return self.scope not in (None, "default")


@dataclass(frozen=True)
class ServerEvent:
    """One server-sent event: its type (``message`` when the stream names none), its
    ``id:`` when it had one, and its ``data:`` lines joined."""

    kind: str
    data: str
    id: str | None = None


def server_events(lines: Iterable[bytes]) -> Iterator[ServerEvent]:
    """The events of a ``text/event-stream``, by the WHATWG rules that the node's streams
    use: fields up to a blank line make an event, ``:`` starts a comment (keep-alives),
    an event without data is no event."""
    kind, data, event_id = "message", list[str](), None
    for raw in lines:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if data:
                yield ServerEvent(kind, "\n".join(data), event_id)
            kind, data, event_id = "message", [], None
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            kind = value
        elif name == "id":
            event_id = value


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


def request(api: Api, method: str, path: str, body: Any = None) -> Any:
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
    rows = request(api, "GET", "/members")["members"]
    print(f"{'NAME':<24} {'GOSSIP':<22} {'HTTP':<22} {'STATE':<8} INCARNATION")
    for m in sorted(rows, key=lambda m: m["name"]):
        http_address = m["http_address"] or "-"
        print(
            f"{m['name']:<24} {m['address']:<22} {http_address:<22} "
            f"{m['state']:<8} {m['incarnation']}"
        )


def _agents(api: Api, agents: AgentFilter, json_lines: bool) -> None:
    """Every agent that passes the filter (the whole cluster's, or this node's), page by
    page; ``json_lines``: each as the node sent it, one JSON object a line."""
    query = {"limit": "1000", **agents.query()}
    if not json_lines:
        print(_header(agents.scope_column))
    while True:
        page = request(api, "GET", f"/agents?{urllib.parse.urlencode(query)}")
        for a in page["agents"]:
            print(json.dumps(a) if json_lines else _row(a, agents.scope_column))
        if page["next"] is None:
            return
        query["cursor"] = page["next"]


def _header(scope_column: bool) -> str:
    scope = f"{'SCOPE':<16} " if scope_column else ""
    return f"{'AGENT':<32} {scope}{'NODE':<20} {'STATUS':<12} {'ROUTE':<28} CAPABILITIES"


def _row(agent: dict[str, Any], scope_column: bool) -> str:
    scope = f"{agent['scope']:<16} " if scope_column else ""
    return (
        f"{agent['id']:<32} {scope}{agent['node_id']:<20} {agent['status']:<12} "
        f"{agent['route'] or '-':<28} {','.join(agent['capabilities'])}"
    )


def keys(api: Api, action: str, key: str | None) -> int:
    """``keys list`` or a cluster-wide change; 1 when some member did not acknowledge."""
    if action == "list":
        ring = request(api, "GET", "/keyring")
        print(f"{ring['members']} members")
        print(f"{'KEY':<26} {'INSTALLED':>9} {'PRIMARY':>7}")
        for entry in ring["keys"]:
            print(f"{entry['key']:<26} {entry['installed']:>9} {entry['primary']:>7}")
        _print_unreachable(ring["unreachable"])
        return 0 if not ring["unreachable"] else EXIT_UNREACHABLE
    done = request(api, "POST", "/keyring", {"op": action, "key": key})
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
        response = _stream(api, conn, "/events")
        greeting = sys.stderr if json_lines else sys.stdout
        print(f"following member events from {api}", file=greeting, flush=True)
        for sent in server_events(response):
            event = json.loads(sent.data)
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


def _stream(
    api: Api, conn: http.client.HTTPConnection, path: str, last_id: str | None = None
) -> http.client.HTTPResponse:
    """An event stream's response, its events to read from; Refused unless a 200."""
    headers = api.headers(json_body=False)
    if last_id is not None:
        headers["Last-Event-ID"] = last_id
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    if response.status != 200:
        raise Refused(response.status, response.read())
    return response


class _Watch:
    """``agents --watch``: the snapshot, then each change, until interrupted. When the
    connection drops (or the node closes it), reconnect after a backoff, at most
    ``RECONNECTS`` times in a row, sending the last event id seen as ``Last-Event-ID``:
    the node replays what followed it, or sends a fresh snapshot, printed as one."""

    def __init__(self, api: Api, agents: AgentFilter, json_lines: bool) -> None:
        self.api, self.json_lines, self.scope_column = api, json_lines, agents.scope_column
        query = urllib.parse.urlencode(agents.query())
        self.path = f"/agents/watch?{query}" if query else "/agents/watch"
        self.last_id: str | None = None
        self.connected = False  # once it has been, a failure is a drop: retried
        self.failures = 0

    def run(self) -> None:
        while True:
            try:
                self._follow()
                why = "the stream ended"
            except Refused as exc:  # 503: too many watches, or a node starting; else final
                if not self.connected or exc.status < 500:
                    raise
                why = str(exc)
            except (OSError, http.client.HTTPException) as exc:
                if not self.connected:
                    raise ApiError(f"cannot reach {self.api}{self.path}: {exc}") from None
                why = str(exc) or type(exc).__name__
            self._wait(why)

    def _follow(self) -> None:
        conn = self.api.connect(WATCH_IDLE)
        try:
            response = _stream(self.api, conn, self.path, self.last_id)
            if self.connected:
                print(f"reconnected to {self.api}", file=sys.stderr, flush=True)
            else:
                greeting = sys.stderr if self.json_lines else sys.stdout
                print(f"watching agents at {self.api}", file=greeting, flush=True)
            self.connected, self.failures = True, 0
            for event in server_events(response):
                self.last_id = event.id or self.last_id
                self._show(event)
        finally:
            conn.close()

    def _wait(self, why: str) -> None:
        if self.failures == RECONNECTS:
            raise ApiError(f"{why}; gave up after {RECONNECTS} reconnections")
        delay = BACKOFF * 2**self.failures
        self.failures += 1
        print(
            f"caxton-actors agents: {why}; reconnecting in {delay:g}s "
            f"({self.failures} of {RECONNECTS}) after event {self.last_id or '-'}",
            file=sys.stderr,
            flush=True,
        )
        time.sleep(delay)

    def _show(self, event: ServerEvent) -> None:
        """One event, stamped with when it arrived; as JSON, ``{"time", "event", "id",
        "data"}``: an agent's own ``id`` would clash with the event's at the top level."""
        try:
            data = json.loads(event.data)
        except ValueError:
            raise ApiError(f"{self.path}: a {event.kind} event that is not JSON") from None
        now = _now()
        if self.json_lines:
            print(json.dumps({"time": now, "event": event.kind, "id": event.id, "data": data}))
        elif event.kind == "snapshot":
            print(f"{'TIME':<24} {'EVENT':<11} {_header(self.scope_column)}")
            for agent in data["agents"]:
                print(f"{now} {'snapshot':<11} {_row(agent, self.scope_column)}")
            if not data["agents"]:
                print(f"{now} {'snapshot':<11} no agents")
        elif event.kind == "closed":
            print(f"{now} {'closed':<11} {data.get('reason')}")
        else:
            print(f"{now} {event.kind:<11} {_row(data, self.scope_column)}")
        sys.stdout.flush()


def _join(api: Api, seeds: Sequence[str]) -> int:
    """Who answered on stdout, who did not (and why) on stderr; 1 when no seed answered
    (the node goes on asking the ones it could contact)."""
    result = request(api, "POST", "/cluster/join", {"seeds": list(seeds)})
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
    agents: AgentFilter | None = None,
    json_lines: bool = False,
    watch: bool = False,
) -> int:
    try:
        if command == "members":
            _members(api)
        elif command == "agents" and watch:
            _Watch(api, agents or AgentFilter(), json_lines).run()
        elif command == "agents":
            _agents(api, agents or AgentFilter(), json_lines)
        elif command == "join":
            return _join(api, seeds)
        elif command == "leave":
            request(api, "POST", "/cluster/leave")
            print("left the cluster")
        else:
            _monitor(api, json_lines)
    except ApiError as exc:
        print(f"caxton-actors {command}: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        return 0
    return 0
