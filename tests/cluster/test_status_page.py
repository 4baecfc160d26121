"""The status page at ``GET /`` in a real headless browser (Debian's chromium): a cluster
seen live through ``/events``, a node killed and followed to ``dead`` without a reload,
then a second, which leaves the node degraded; and a lone node with tokens, whose page asks for one.

``CAXTON_SCREENSHOT=1`` saves the cluster's page to ``docs/status-page.png``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.cluster.conftest import Cluster
from tests.integration.conftest import NodeProcess, start_node
from tests.support.browser import chromium, missing

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver

pytestmark = pytest.mark.skipif(missing() is not None, reason=str(missing()))

SCREENSHOT = Path(__file__).parents[2] / "docs" / "status-page.png"
READ = "read-secret-0123456789"
WRITE = "write-secret-0123456789"
TOKENS = f"viewer:read:{READ},writer:write:{WRITE}"

_MEMBERS = """return Object.fromEntries([...document.querySelectorAll('#members tbody tr')]
    .map(tr => [tr.dataset.member, tr.querySelector('.state').textContent]))"""
_AGENTS = """return Object.fromEntries([...document.querySelectorAll('#agents tbody tr')]
    .map(tr => [tr.dataset.agent, tr.querySelector('.status').textContent]))"""
_EVENTS = """return [...document.querySelectorAll('#events li')].reverse()
    .map(li => li.dataset.member + ' ' + li.dataset.kind)"""


def _members(driver: WebDriver) -> dict[str, str]:
    found: dict[str, str] = driver.execute_script(_MEMBERS)
    return found


def _agents(driver: WebDriver) -> dict[str, str]:
    found: dict[str, str] = driver.execute_script(_AGENTS)
    return found


def _text(driver: WebDriver, selector: str) -> str:
    text: str = driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e.hidden ? '' : e.textContent",
        selector,
    )
    return text


def _wait(driver: WebDriver, check: Callable[[], Any], timeout: float, what: str) -> None:
    from selenium.common.exceptions import TimeoutException  # noqa: PLC0415
    from selenium.webdriver.support.wait import WebDriverWait  # noqa: PLC0415

    try:
        WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda _: check())
    except TimeoutException:
        raise AssertionError(
            f"not within {timeout}s: {what}; the page shows members {_members(driver)}, "
            f"agents {_agents(driver)}, banner {_text(driver, '#banner')!r}"
        ) from None


def _policy_violations(driver: WebDriver) -> list[str]:
    """What the browser's console said against the page's Content-Security-Policy."""
    logged: list[dict[str, Any]] = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return [
        entry["message"]
        for entry in logged
        if "Content Security Policy" in entry["message"] or "Trusted" in entry["message"]
    ]


def _put_agent(node: NodeProcess, agent: str, *capabilities: str, token: str = "") -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    reply = node.request("PUT", f"/agents/{agent}", {"capabilities": capabilities}, headers=headers)
    assert reply.status == 201, reply.raw


def test_the_page_follows_the_cluster_live(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    try:
        for name in ("n0", "n1", "n2"):
            cluster.start(name, ["n0"] if name != "n0" else [], "--gossip-profile", "local")
        cluster.wait_converged()
        _put_agent(cluster.nodes["n0"], "planner-0", "plan", "chat")
        _put_agent(cluster.nodes["n1"], "translator-1", "translate")
        _put_agent(cluster.nodes["n2"], "translator-2", "translate", "chat")
        with chromium(tmp_path / "profile") as driver:
            driver.get(f"http://127.0.0.1:{cluster.nodes['n0'].port}/")
            everyone = {"n0": "alive", "n1": "alive", "n2": "alive"}
            _wait(driver, lambda: _members(driver) == everyone, 20, "three members alive")
            _wait(driver, lambda: len(_agents(driver)) == 3, 20, "three agents")
            assert _text(driver, "#live") == "live"
            assert _text(driver, "#banner") == ""
            assert _text(driver, "#node") == "n0"
            driver.execute_script("window.notReloaded = true")

            cluster.nodes["n2"].proc.kill()  # SIGKILL: no goodbye
            _wait(driver, lambda: _members(driver)["n2"] == "suspect", 20, "n2 suspect")
            assert "suspect: n2" in _text(driver, "#banner")
            _wait(driver, lambda: _members(driver)["n2"] == "dead", 30, "n2 dead")
            _wait(
                driver,
                lambda: _agents(driver)["translator-2"] == "unreachable",
                20,
                "n2's agent unreachable",
            )
            assert _members(driver) == {"n0": "alive", "n1": "alive", "n2": "dead"}
            assert "dead: n2" in _text(driver, "#banner")
            events = _events(driver)
            assert events.index("n2 suspect") < events.index("n2 dead"), events
            assert driver.execute_script("return window.notReloaded") is True
            assert _policy_violations(driver) == []
            if os.environ.get("CAXTON_SCREENSHOT") == "1":
                _screenshot(driver, SCREENSHOT)

            cluster.nodes["n1"].proc.kill()  # n0 alone of three: the minority side
            _wait(
                driver,
                lambda: "Gossip is degraded" in _text(driver, "#banner"),
                40,
                "the node degraded",
            )
    finally:
        cluster.stop_all()


def _screenshot(driver: WebDriver, path: Path) -> None:
    """The whole page, not only what the window shows."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    metrics = {"width": 1280, "height": height, "deviceScaleFactor": 1, "mobile": False}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    path.write_bytes(driver.get_screenshot_as_png())


def _events(driver: WebDriver) -> list[str]:
    found: list[str] = driver.execute_script(_EVENTS)
    return found


def _give_token(driver: WebDriver, token: str) -> None:
    from selenium.webdriver.common.by import By  # noqa: PLC0415

    field = driver.find_element(By.ID, "token")
    field.clear()
    field.send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "#auth-form button").click()


def test_a_lone_node_with_tokens_asks_for_one(tmp_path: Path) -> None:
    node = start_node(tmp_path, env={"CAXTON_HTTP_TOKENS": TOKENS})
    try:
        _put_agent(node, "planner-1", "plan", token=WRITE)
        _put_agent(node, "writer-1", "write", token=WRITE)
        with chromium(tmp_path / "profile") as driver:
            driver.get(f"http://127.0.0.1:{node.port}/")
            _wait(driver, lambda: _text(driver, "#auth") != "", 10, "the token prompt")
            assert _agents(driver) == {}

            _give_token(driver, "not-the-token-at-all")
            _wait(driver, lambda: "did not accept" in _text(driver, "#auth"), 10, "a refusal")
            assert _agents(driver) == {}

            _give_token(driver, READ)
            _wait(driver, lambda: len(_agents(driver)) == 2, 10, "the agents")
            assert _text(driver, "#auth") == ""
            _wait(driver, lambda: "Gossip is off" in _text(driver, "#members"), 10, "no gossip")
            assert _text(driver, "#live") == "gossip off"
            assert _text(driver, "#banner") == ""
            stored = "return [sessionStorage.length, localStorage.length]"
            assert driver.execute_script(stored) == [1, 0]  # for this tab only

            from selenium.webdriver.common.by import By  # noqa: PLC0415

            driver.find_element(By.ID, "capability").send_keys("plan")
            driver.find_element(By.CSS_SELECTOR, "#filter button[type=submit]").click()
            _wait(driver, lambda: _agents(driver) == {"planner-1": "active"}, 10, "filtered")

            driver.refresh()  # the token is kept for the tab: no second prompt
            _wait(driver, lambda: len(_agents(driver)) == 2, 10, "the agents again")
            assert _text(driver, "#auth") == ""
            assert _policy_violations(driver) == []
    finally:
        node.signal(signal.SIGTERM)
