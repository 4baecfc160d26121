"""The state tool contract on every real backend."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from caxton_actors.state.backends import FilesystemBackend, open_backend
from caxton_actors.state.contract import MAX_VALUE_BYTES, StateError, StateTool


def _tool(spec: dict[str, Any]) -> StateTool:
    return StateTool(open_backend(spec["type"], spec["config"], timeout=5.0))


def test_store_retrieve_list_delete(tool_spec: dict[str, Any]) -> None:
    tool = _tool(tool_spec)
    try:
        tool.store("a1", "checkpoints/a1/latest", {"step": 3, "notes": ["ünïcode", None]})
        tool.store("a1", "checkpoints/a1/v1", {"step": 1})
        tool.store("a1", "conversations/c9/messages/0", "hello")
        tool.store("a1", "empty", None)
        assert tool.retrieve("a1", "checkpoints/a1/latest") == (
            True,
            {"step": 3, "notes": ["ünïcode", None]},
        )
        assert tool.retrieve("a1", "empty") == (True, None)
        assert tool.retrieve("a1", "missing") == (False, None)
        assert tool.list("a1", "checkpoints/") == ["checkpoints/a1/latest", "checkpoints/a1/v1"]
        assert tool.list("a1", "checkpoints/a1/v") == ["checkpoints/a1/v1"]
        assert len(tool.list("a1")) == 4
        tool.store("a1", "checkpoints/a1/latest", {"step": 4})  # overwrite
        assert tool.retrieve("a1", "checkpoints/a1/latest") == (True, {"step": 4})
        assert tool.delete("a1", "checkpoints/a1/v1")
        assert not tool.delete("a1", "checkpoints/a1/v1")
        assert tool.list("a1", "checkpoints/") == ["checkpoints/a1/latest"]
    finally:
        tool.close()


def test_agents_never_see_each_others_keys(tool_spec: dict[str, Any]) -> None:
    tool = _tool(tool_spec)
    try:
        tool.store("alice", "secret", 1)
        tool.store("alice:x", "secret", 2)  # an id that extends another's
        assert tool.retrieve("bob", "secret") == (False, None)
        assert tool.list("bob") == []
        assert tool.list("alice") == ["secret"]
        assert tool.retrieve("alice:x", "secret") == (True, 2)
        assert not tool.delete("bob", "secret")
        assert tool.retrieve("alice", "secret") == (True, 1)
    finally:
        tool.close()


def test_batches_check_everything_before_writing(tool_spec: dict[str, Any]) -> None:
    tool = _tool(tool_spec)
    try:
        tool.store_batch("a", {"k1": 1, "k2": [2]})
        assert tool.retrieve_batch("a", ["k1", "k2", "k3"]) == {"k1": 1, "k2": [2]}
        with pytest.raises(StateError):
            tool.store_batch("a", {"k3": 3, "../k4": 4})
        assert tool.list("a") == ["k1", "k2"]
    finally:
        tool.close()


@pytest.mark.parametrize(
    "key",
    ["../escape", "a/../../b", ".hidden", "a//b", "/abs", "a/", "", "x" * 600, "sp ace", "a\\b"],
)
def test_bad_keys_are_refused(tmp_path: Path, key: str) -> None:
    tool = StateTool(FilesystemBackend(tmp_path / "root"))
    with pytest.raises(StateError) as caught:
        tool.store("a", key, 1)
    assert caught.value.kind == "bad_key"
    assert not any(tmp_path.rglob("*.json"))


@pytest.mark.parametrize("agent_id", ["s/agent:a/b", "s/", "/a", "a b", "", "s/t/u", ".a"])
def test_what_is_not_an_agent_id_or_scope_and_id_is_refused(tmp_path: Path, agent_id: str) -> None:
    """A tool's client names an agent; one that is neither ``id`` nor ``scope/id`` could
    reach into another agent's prefix (``s/agent:a/b`` begins ``scope:s/agent:a/``)."""
    tool = StateTool(FilesystemBackend(tmp_path / "root"))
    with pytest.raises(StateError) as caught:
        tool.store(agent_id, "k", 1)
    assert caught.value.kind == "bad_key"
    assert not any(tmp_path.rglob("*.json"))


def test_bad_values_are_refused(tmp_path: Path) -> None:
    tool = StateTool(FilesystemBackend(tmp_path / "root"))
    for value in (b"bytes", {1, 2}, "x" * (MAX_VALUE_BYTES + 1)):
        with pytest.raises(StateError) as caught:
            tool.store("a", "k", value)
        assert caught.value.kind == "bad_value"
    assert tool.list("a") == []


def test_a_filesystem_write_is_atomic(tmp_path: Path) -> None:
    root = tmp_path / "root"
    tool = StateTool(FilesystemBackend(root))
    tool.store("a", "k", {"v": 1})
    tool.store("a", "k", {"v": 2})
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert files == ["agent:a/k.json"]  # no temporary file left behind


def test_an_unknown_or_incomplete_tool_is_refused() -> None:
    with pytest.raises(StateError, match="unknown state tool type"):
        open_backend("floppy", {}, 1.0)
    with pytest.raises(StateError, match="needs url"):
        open_backend("redis", {}, 1.0)


def test_a_missing_client_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # as if redis-py were not installed
    with pytest.raises(StateError) as caught:
        open_backend("redis", {"url": "redis://127.0.0.1:6379/0"}, 1.0)
    assert caught.value.kind == "unavailable"
    assert "pip install 'caxton-actors[redis]'" in str(caught.value)
