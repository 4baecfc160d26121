"""Graphite's carbon-cache, graphite-web and the npm statsd daemon, run on loopback.

Debian's ``graphite-carbon`` and ``graphite-web`` run under Debian's own Python
(``/usr/bin/python3``, whose dist-packages hold them), ``statsd`` under node from
``deploy/graphite/node_modules``. The configs are the templates in ``deploy/graphite/``
with their ports and paths filled in; everything lives in one temporary directory, on
free ports, and stops with the :class:`Graphite` object, whatever happened.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from types import TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy" / "graphite"
DEBIAN_PYTHON = "/usr/bin/python3"
CARBON_CACHE = "/usr/bin/carbon-cache"
STATSD_JS = DEPLOY / "node_modules" / "statsd" / "stats.js"
INSTALL = "run deploy/graphite/install.sh (apt-get: graphite-carbon graphite-web npm; npm ci)"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
_handed_out: set[int] = set()


class Missing(Exception):
    """A program the pipeline needs is not installed."""


def free_port() -> int:
    """A port free for TCP and UDP alike on loopback, never handed out before here."""
    while True:
        with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            tcp.bind(("127.0.0.1", 0))
            port: int = tcp.getsockname()[1]
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def check_installed() -> None:
    found = subprocess.run(
        [DEBIAN_PYTHON, "-c", "import graphite.settings, carbon"],
        capture_output=True,
        check=False,
        env={"PATH": os.environ.get("PATH", "")},
    ) if Path(DEBIAN_PYTHON).exists() else None  # fmt: skip
    if found is None or found.returncode != 0 or not Path(CARBON_CACHE).exists():
        raise Missing(f"Debian's graphite-carbon and graphite-web are needed: {INSTALL}")
    if shutil.which("node") is None:
        raise Missing(f"node is needed for statsd: {INSTALL}")
    if not STATSD_JS.exists():
        raise Missing(f"statsd is not in deploy/graphite/node_modules: {INSTALL}")


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise TimeoutError(f"not within {timeout:g} s: {what}")


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


@dataclass
class Ports:
    statsd: int = field(default_factory=free_port)
    statsd_mgmt: int = field(default_factory=free_port)
    carbon_line: int = field(default_factory=free_port)
    carbon_pickle: int = field(default_factory=free_port)
    carbon_query: int = field(default_factory=free_port)
    web: int = field(default_factory=free_port)


class Graphite:
    """The three daemons; ``with Graphite(dir) as g:`` starts them and always stops them."""

    def __init__(self, root: Path, flush_ms: int = 1000, gauge_ttl_flushes: int = 12) -> None:
        self.root = root
        self.ports = Ports()
        self.flush_ms = flush_ms
        self.gauge_ttl_flushes = gauge_ttl_flushes
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def statsd_address(self) -> str:
        return f"127.0.0.1:{self.ports.statsd}"

    def __enter__(self) -> Graphite:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _fill(self, template: str, target: Path) -> None:
        values = dict(
            root=str(self.root),
            secret_key=secrets.token_hex(24),
            flush_ms=str(self.flush_ms),
            gauge_ttl_flushes=str(self.gauge_ttl_flushes),
            carbon_line_port=str(self.ports.carbon_line),
            carbon_pickle_port=str(self.ports.carbon_pickle),
            carbon_query_port=str(self.ports.carbon_query),
            statsd_port=str(self.ports.statsd),
            statsd_mgmt_port=str(self.ports.statsd_mgmt),
        )
        text = Template((DEPLOY / template).read_text()).substitute(values)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = (self.root / "log" / f"{name}.out").open("wb")
        self.procs[name] = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.root,
            env=env,
            start_new_session=True,  # a ^C in the terminal reaches us, and we stop them
        )
        log.close()

    def _wait(self, name: str, check: Callable[[], bool], what: str) -> None:
        proc = self.procs[name]

        def ready() -> bool:
            if proc.poll() is not None:
                tail = (self.root / "log" / f"{name}.out").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail}")
            return check()

        wait_until(ready, START_TIMEOUT, what)

    def start(self) -> None:
        check_installed()
        for folder in ("conf", "log", "storage/whisper", "storage/lists", "py"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        self._start_carbon()
        self._start_web()
        self._start_statsd()

    def _start_carbon(self) -> None:
        self._fill("carbon.conf", self.root / "conf" / "carbon.conf")
        self._fill("storage-schemas.conf", self.root / "conf" / "storage-schemas.conf")
        conf = self.root / "conf" / "carbon.conf"
        # --debug: in the foreground, logging to stdout, so the process is the one we stop.
        self._spawn("carbon", [DEBIAN_PYTHON, CARBON_CACHE, f"--config={conf}", "--debug", "start"])
        self._wait("carbon", lambda: _listening(self.ports.carbon_line), "carbon listens")

    def _web_env(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": str(self.root / "py"),
            "GRAPHITE_SETTINGS_MODULE": "caxton_graphite_settings",
            "DJANGO_SETTINGS_MODULE": "graphite.settings",
            "LANG": "C.UTF-8",
        }

    def _start_web(self) -> None:
        self._fill("local_settings.py.in", self.root / "py" / "caxton_graphite_settings.py")
        env = self._web_env()
        subprocess.run(  # graphite-web's own tables (users, saved graphs): empty, but there
            [DEBIAN_PYTHON, "-m", "django", "migrate", "--run-syncdb", "-v", "0"],
            env=env,
            cwd=self.root,
            capture_output=True,
            check=True,
            timeout=120,
        )
        address = f"127.0.0.1:{self.ports.web}"
        argv = [DEBIAN_PYTHON, "-m", "django", "runserver", "--noreload", address]
        self._spawn("graphite-web", argv, env)
        self._wait("graphite-web", lambda: self._get("/metrics/find?query=*") is not None, "web")

    def _start_statsd(self) -> None:
        config = self.root / "conf" / "statsd-config.js"
        self._fill("statsd-config.js", config)
        self._spawn("statsd", ["node", str(STATSD_JS), str(config)])
        self._wait("statsd", self._statsd_healthy, "statsd answers health")

    def _statsd_healthy(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.ports.statsd_mgmt), timeout=1) as s:
                s.sendall(b"health\n")
                return s.recv(100).startswith(b"health: up")
        except OSError:
            return False

    def stop(self) -> None:
        """statsd first, so its last flush can still reach carbon."""
        for name in ("statsd", "graphite-web", "carbon"):
            proc = self.procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT)

    def _get(self, path: str, timeout: float = 30) -> bytes | None:
        url = f"http://127.0.0.1:{self.ports.web}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as reply:
                body: bytes = reply.read()
                return body
        except OSError:
            return None

    def send(self, path: str, value: float, when: float) -> None:
        """One point straight to carbon (the scenario's event markers)."""
        with socket.create_connection(("127.0.0.1", self.ports.carbon_line), timeout=5) as s:
            s.sendall(f"{path} {value} {int(when)}\n".encode())

    def find(self, query: str) -> list[str]:
        """The names under a Graphite path pattern, e.g. ``stats.gauges.*``."""
        body = self._get("/metrics/find?" + urllib.parse.urlencode({"query": query}))
        return [node["text"] for node in json.loads(body or b"[]")]

    def series(self, params: list[tuple[str, str]]) -> list[dict[str, Any]]:
        """The render API's JSON: each series' ``target`` and ``datapoints`` [value, time]."""
        body = self._get("/render?" + urllib.parse.urlencode([*params, ("format", "json")]))
        found: list[dict[str, Any]] = json.loads(body or b"[]")
        return found

    def render(self, params: list[tuple[str, str]]) -> bytes:
        """A PNG from the render API; ``params`` may repeat ``target``."""
        body = self._get("/render?" + urllib.parse.urlencode(params), timeout=60)
        if body is None or not body.startswith(b"\x89PNG"):
            raise RuntimeError(f"graphite-web rendered no PNG for {params}")
        return body
