"""State tool backends: a directory, Redis, PostgreSQL, S3. Each a real client, blocking.

A backend sees keys already scoped and checked (``state/contract.py``), so every
segment is safe as a file name. Optional clients are extras; a missing one is a
``StateError`` naming the extra to install.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from caxton_actors.files import write_atomically
from caxton_actors.state.contract import Backend, StateError
from caxton_actors.state.specs import check_config

SUFFIX = ".json"
"""A key's file is its last segment plus this, so ``a`` and ``a/b`` can both exist."""


def _client(module: str, extra: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise StateError(
            "unavailable", f"this state tool needs {module}: pip install 'caxton-actors[{extra}]'"
        ) from None


class FilesystemBackend:
    """One file per key under ``root``; a write is a temporary file renamed into place."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / (key + SUFFIX)).resolve()
        if not path.is_relative_to(self.root):  # checked keys cannot; this is the backstop
            raise StateError("bad_key", f"key {key!r} leaves the state directory")
        return path

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, data)

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def delete(self, key: str) -> bool:
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            return False
        return True

    def keys(self, prefix: str) -> list[str]:
        # Walk from the deepest directory the prefix names in full.
        start = self.root.joinpath(*prefix.split("/")[:-1])
        found = []
        for directory, _, files in os.walk(start):
            base = Path(directory).relative_to(self.root).as_posix()
            for name in files:
                if name.endswith(SUFFIX) and not name.startswith("."):
                    key = name[: -len(SUFFIX)] if base == "." else f"{base}/{name[: -len(SUFFIX)]}"
                    if key.startswith(prefix):
                        found.append(key)
        return sorted(found)

    def close(self) -> None:
        pass


class RedisBackend:
    """Keys under a namespace in one Redis database (redis-py)."""

    def __init__(self, url: str, namespace: str, timeout: float) -> None:
        redis = _client("redis", "redis")
        self._client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self._namespace = namespace

    def put(self, key: str, data: bytes) -> None:
        self._client.set(self._namespace + key, data)

    def get(self, key: str) -> bytes | None:
        value: bytes | None = self._client.get(self._namespace + key)
        return value

    def delete(self, key: str) -> bool:
        return bool(self._client.delete(self._namespace + key))

    def keys(self, prefix: str) -> list[str]:
        pattern = _glob_escape(self._namespace + prefix) + "*"
        cut = len(self._namespace)
        return sorted(k.decode()[cut:] for k in self._client.scan_iter(match=pattern, count=500))

    def close(self) -> None:
        self._client.close()


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class PostgresBackend:
    """One table of (key, value) in PostgreSQL, through SQLAlchemy Core over psycopg."""

    def __init__(self, url: str, table: str, timeout: float) -> None:
        _client("psycopg", "postgres")
        import sqlalchemy as sa  # noqa: PLC0415 - the node needs it anyway; kept beside its use

        self._sa = sa
        url = url.replace("postgresql://", "postgresql+psycopg://", 1)
        self._engine = sa.create_engine(
            url,
            pool_size=4,
            pool_pre_ping=True,
            connect_args={
                "connect_timeout": max(1, int(timeout)),
                # A locked row or a slow query gives up too, freeing the calling thread.
                "options": f"-c statement_timeout={int(timeout * 1000)}"
                f" -c lock_timeout={int(timeout * 1000)}",
            },
        )
        self._table = sa.Table(
            table,
            sa.MetaData(),
            sa.Column("key", sa.Text, primary_key=True),
            sa.Column("value", sa.LargeBinary, nullable=False),
        )
        from sqlalchemy.dialects import postgresql  # noqa: PLC0415

        insert = postgresql.insert(self._table)
        self._upsert = insert.on_conflict_do_update(
            index_elements=["key"], set_={"value": insert.excluded.value}
        )
        with self._engine.begin() as conn:
            self._table.create(conn, checkfirst=True)

    def put(self, key: str, data: bytes) -> None:
        with self._engine.begin() as conn:
            conn.execute(self._upsert, {"key": key, "value": data})

    def get(self, key: str) -> bytes | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                self._sa.select(self._table.c.value).where(self._table.c.key == key)
            ).first()
        return None if row is None else bytes(row[0])

    def delete(self, key: str) -> bool:
        with self._engine.begin() as conn:
            deleted = conn.execute(self._table.delete().where(self._table.c.key == key))
        return deleted.rowcount > 0

    def keys(self, prefix: str) -> list[str]:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        column = self._table.c.key
        query = (
            self._sa.select(column).where(column.like(escaped + "%", escape="\\")).order_by(column)
        )
        with self._engine.connect() as conn:
            return [row[0] for row in conn.execute(query)]

    def close(self) -> None:
        self._engine.dispose()


class S3Backend:
    """One object per key in a bucket (boto3); any S3-compatible endpoint."""

    def __init__(self, config: Mapping[str, Any], timeout: float) -> None:
        boto3 = _client("boto3", "s3")
        botocore_config = importlib.import_module("botocore.config")
        self._bucket = config["bucket"]
        self._client = boto3.client(
            "s3",
            endpoint_url=config.get("endpoint_url"),
            region_name=config.get("region", "us-east-1"),
            aws_access_key_id=config.get("access_key_id"),
            aws_secret_access_key=config.get("secret_access_key"),
            config=botocore_config.Config(
                connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 2}
            ),
        )
        self._missing = self._client.exceptions.NoSuchKey

    def put(self, key: str, data: bytes) -> None:
        self._client.put_object(
            Bucket=self._bucket, Key=key, Body=data, ContentType="application/json"
        )

    def get(self, key: str) -> bytes | None:
        try:
            body: bytes = self._client.get_object(Bucket=self._bucket, Key=key)["Body"].read()
        except self._missing:
            return None
        return body

    def delete(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self._bucket, Key=key)
        except self._client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise  # denied, throttled: a failure, not a missing key
        self._client.delete_object(Bucket=self._bucket, Key=key)
        return True

    def keys(self, prefix: str) -> list[str]:
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self._bucket, Prefix=prefix
        )
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def close(self) -> None:
        self._client.close()


BACKEND_TYPES = ("filesystem", "redis", "postgres", "s3")


def open_backend(kind: str, config: Mapping[str, Any], timeout: float) -> Backend:
    """The backend a tool's ``{type, config}`` names; a bad one is a StateError saying why
    (``specs.TOOL_KEYS`` lists the keys each reads)."""
    if kind not in BACKEND_TYPES:
        raise StateError("unavailable", f"unknown state tool type {kind!r}; one of {BACKEND_TYPES}")
    check_config(kind, config)
    if kind == "filesystem":
        return FilesystemBackend(Path(config["root"]))
    if kind == "redis":
        return RedisBackend(config["url"], config.get("namespace", "caxton:state:"), timeout)
    if kind == "postgres":
        return PostgresBackend(config["url"], config.get("table", "caxton_state"), timeout)
    return S3Backend(config, timeout)
