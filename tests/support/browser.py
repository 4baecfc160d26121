"""A real headless browser for tests: Debian's ``chromium``, driven through its
``chromedriver`` by Selenium, offline.

Selenium is given the driver's path, so its manager never tries to download one, and
Chromium is started with everything that would reach out to the network turned off.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver

CHROMIUM = ("chromium", "chromium-browser")
CHROMEDRIVER = "chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",  # tests run as root here
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--window-size=1280,900",
)


def missing() -> str | None:
    """Why no browser can be had here, or None."""
    try:
        import selenium  # noqa: F401, PLC0415 - an optional test dependency
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    if not any(shutil.which(name) for name in CHROMIUM):
        return "no chromium (apt-get install chromium)"
    if shutil.which(CHROMEDRIVER) is None:
        return "no chromedriver (apt-get install chromium-driver)"
    return None


@contextmanager
def chromium(profile: Path) -> Iterator[WebDriver]:
    """A fresh headless Chromium with its own profile in ``profile``; skips the test,
    saying why, where there is none."""
    reason = missing()
    if reason is not None:
        pytest.skip(reason)
    from selenium import webdriver  # noqa: PLC0415
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415

    options = webdriver.ChromeOptions()
    options.binary_location = str(next(p for n in CHROMIUM if (p := shutil.which(n))))
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=shutil.which(CHROMEDRIVER))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()
