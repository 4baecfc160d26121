"""The state service: bindings, and the inline tools it keeps open."""

from __future__ import annotations

from pathlib import Path

import pytest

from caxton_actors.metrics import NullMetrics
from caxton_actors.state.contract import StateError, parse_tool_spec
from caxton_actors.state.service import MAX_INLINE_TOOLS, StateService


def test_inline_tools_can_be_turned_off(tmp_path: Path) -> None:
    named = {"files": parse_tool_spec({"type": "filesystem", "config": {"root": str(tmp_path)}})}
    service = StateService(named, 1.0, NullMetrics(), inline=False)
    assert service.binding("files") == '"files"'
    with pytest.raises(StateError, match="only configured state tools by name: files"):
        service.binding({"type": "filesystem", "config": {"root": str(tmp_path)}})


def test_only_so_many_inline_tools_stay_open(tmp_path: Path) -> None:
    service = StateService({}, 2.0, NullMetrics())
    try:
        for i in range(MAX_INLINE_TOOLS + 5):
            spec = {"type": "filesystem", "config": {"root": str(tmp_path / f"r{i}")}}
            binding = service.binding(spec)
            service.call(binding, "store", "a", "k", i)
            assert service.call(binding, "retrieve", "a", "k") == (True, i)
        assert len(service._tools) <= MAX_INLINE_TOOLS
        first = service.binding({"type": "filesystem", "config": {"root": str(tmp_path / "r0")}})
        assert service.call(first, "retrieve", "a", "k") == (True, 0)  # reopened on demand
    finally:
        service.close()
