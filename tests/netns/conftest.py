"""Pods in network namespaces (``tests/netns/pods.py``): skipped where they cannot run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.netns.pods import PodNetwork, unavailable_reason

_REASON: list[str | None] = []


def _reason() -> str | None:
    if not _REASON:
        _REASON.append(unavailable_reason())
    return _REASON[0]


@pytest.fixture
def network(tmp_path: Path) -> Iterator[PodNetwork]:
    """A bridge for pods, torn down (processes, namespaces, links, rules, hosts files)
    however the test ends."""
    reason = _reason()
    if reason is not None:
        pytest.skip(f"pod network unavailable: {reason}")
    pods = PodNetwork(tmp_path)
    try:
        yield pods
    finally:
        pods.close()
