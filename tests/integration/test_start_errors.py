"""A database the real `caxton-actors run` cannot open, create or migrate: one line on
stderr naming the file and the reason, a non-zero status, no traceback (it is logged at
DEBUG)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from caxton_actors.registry.schema import SCHEMA_VERSION
from caxton_actors.registry.store import Store
from tests.integration.conftest import free_port


def _run(tmp_path: Path, db: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAXTON_")}
    return subprocess.run(
        [sys.executable, "-m", "caxton_actors", "run", "--sqlite-path", str(db), *extra],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**env, "CAXTON_HTTP_BIND": f"127.0.0.1:{free_port()}"},
        timeout=30,
        check=False,
    )


def _not_sqlite(tmp_path: Path) -> Path:
    db = tmp_path / "garbage.db"
    db.write_bytes(os.urandom(8192))
    return db


def _newer_schema(tmp_path: Path) -> Path:
    db = tmp_path / "future.db"
    raw = sqlite3.connect(db)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    return db


def _into_a_missing_directory(tmp_path: Path) -> Path:
    """A link to a file that cannot be created: refused even to root."""
    db = tmp_path / "linked.db"
    db.symlink_to(tmp_path / "gone" / "state.db")
    return db


def _lock_cannot_be_made(tmp_path: Path) -> Path:
    db = tmp_path / "state.db"
    (tmp_path / "state.db.lock").mkdir()
    return db


def _unreadable_value(tmp_path: Path) -> Path:
    """A current file whose stored capabilities are not JSON (damaged by hand)."""
    db = tmp_path / "damaged.db"
    store = Store(db, NODE)
    store.run_batch([lambda tx: tx.put_agent("a1", ("x",))], 1)
    store.close()
    raw = sqlite3.connect(db)
    raw.execute("UPDATE agents SET capabilities = '[not json'")
    raw.commit()
    raw.close()
    return db


NODE = "n1"
CASES: list[tuple[Callable[[Path], Path], str]] = [
    (_not_sqlite, "file is not a database"),
    (_newer_schema, f"database schema version {SCHEMA_VERSION + 1} is newer"),
    (_into_a_missing_directory, "unable to open database file"),
    (_lock_cannot_be_made, "Is a directory"),
    (_unreadable_value, "cannot load {db}: a value is not JSON"),
]


@pytest.mark.parametrize(("make", "reason"), CASES, ids=[make.__name__ for make, _ in CASES])
def test_a_database_it_cannot_use_is_one_line_naming_path_and_reason(
    tmp_path: Path, make: Callable[[Path], Path], reason: str
) -> None:
    db = make(tmp_path)
    result = _run(tmp_path, db, "--node-name", NODE)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("caxton-actors: cannot start: ")
    assert str(db) in line
    assert reason.format(db=db) in line


def test_the_traceback_is_there_at_debug_level(tmp_path: Path) -> None:
    result = _run(tmp_path, _newer_schema(tmp_path), "--log-level", "DEBUG")
    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("caxton-actors: cannot start: ")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into any directory")
def test_a_directory_it_may_not_write_is_named(tmp_path: Path) -> None:
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        result = _run(tmp_path, locked / "state.db")
    finally:
        locked.chmod(0o755)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert str(locked / "state.db") in line
    assert "Permission denied" in line


def test_a_missing_directory_is_a_config_error_naming_it(tmp_path: Path) -> None:
    result = _run(tmp_path, tmp_path / "no" / "such" / "state.db")
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert f"directory {str(tmp_path / 'no' / 'such')!r} does not exist" in line


def test_a_statsd_name_that_does_not_resolve_is_named(tmp_path: Path) -> None:
    done = _run(tmp_path, tmp_path / "n.db", "--statsd", "no-such-host.invalid:8125")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "no-such-host.invalid:8125 (statsd.address)" in lines[0]
