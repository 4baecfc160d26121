"""What a state tool spec may say: each type's keys, the inline rules, no secret shown."""

from __future__ import annotations

from typing import Any

import pytest

from caxton_actors.state.contract import TOOL_TYPES
from caxton_actors.state.specs import (
    MASK,
    REDACTED,
    TOOL_KEYS,
    SpecError,
    check_inline,
    parse_tool_spec,
    redact_url,
    scrub,
)

S3_KEYS = {"access_key_id": "AKIDEXAMPLE", "secret_access_key": "s3cret-key"}


def _take(value: object, inline: bool) -> None:
    spec = parse_tool_spec(value)
    if inline:
        check_inline(spec)


def _refusal(value: object, inline: bool = False) -> SpecError:
    with pytest.raises(SpecError) as caught:
        _take(value, inline)
    assert caught.value.kind == "bad_value"  # the caller's fault: a 400
    return caught.value


def test_every_type_declares_its_keys() -> None:
    assert set(TOOL_KEYS) == set(TOOL_TYPES)
    required = {
        kind: {name for name, key in keys.items() if key.required}
        for kind, keys in TOOL_KEYS.items()
    }
    assert required == {
        "filesystem": {"root"},
        "redis": {"url"},
        "postgres": {"url"},
        "s3": {"bucket"},
        "mcp": set(),  # url or command: one of the two
    }


@pytest.mark.parametrize(
    "spec",
    [
        {"type": "filesystem", "config": {"root": "/srv/state"}},
        {"type": "redis", "config": {"url": "redis://127.0.0.1:6379/0", "namespace": ""}},
        {"type": "redis", "config": {"url": "unix:///run/redis.sock"}},
        {"type": "postgres", "config": {"url": "postgresql://u:p@db/x", "table": "agent_state"}},
        {"type": "s3", "config": {"bucket": "b", "endpoint_url": "http://s3:9000", **S3_KEYS}},
        {"type": "s3", "config": {"bucket": "b", "region": "eu-west-1"}},
        {"type": "mcp", "config": {"url": "http://127.0.0.1:9000/mcp"}},
        {"type": "mcp", "config": {"command": ["caxton-actors", "state-tool", "serve"]}},
    ],
)
def test_a_spec_of_the_keys_its_type_reads_is_taken(spec: dict[str, Any]) -> None:
    assert parse_tool_spec(spec).settings == spec["config"]


@pytest.mark.parametrize(
    ("spec", "key", "words"),
    [
        ("redis", "", "a state tool is"),
        ({"type": "redis", "url": "redis://h"}, "url", "settings go in config"),
        ({"type": "floppy"}, "type", "state tool type must be one of"),
        ({"type": "redis", "config": "redis://h"}, "config", "must be a mapping"),
        ({"type": "redis", "config": {}}, "config.url", "a redis state tool needs url"),
        ({"type": "filesystem"}, "config.root", "needs root"),
        ({"type": "s3", "config": {}}, "config.bucket", "needs bucket"),
        (
            {"type": "redis", "config": {"url": "redis://h", "password": "pw"}},
            "config.password",
            "has no setting 'password'; it takes url, namespace",
        ),
        ({"type": "postgres", "config": {"dsn": "x", "url": "y"}}, "config.dsn", "no setting"),
        ({"type": "redis", "config": {"url": "http://h"}}, "config.url", "redis:// or rediss://"),
        ({"type": "redis", "config": {"url": "redis://h:port/0"}}, "config.url", "not a URL"),
        ({"type": "postgres", "config": {"url": "postgres://h/db"}}, "config.url", "postgresql"),
        (
            {"type": "postgres", "config": {"url": "postgresql://h", "table": "a.b"}},
            "config.table",
            "letters, digits or '_'",
        ),
        ({"type": "filesystem", "config": {"root": ""}}, "config.root", "non-empty string"),
        ({"type": "redis", "config": {"url": 6379}}, "config.url", "URL"),
        (
            {"type": "s3", "config": {"bucket": "b", "access_key_id": "a"}},
            "config.secret_access_key",
            "together",
        ),
        ({"type": "mcp", "config": {}}, "config.url", "one of the two"),
        ({"type": "mcp", "config": {"url": "http://h", "command": ["x"]}}, "config.url", "one of"),
        ({"type": "mcp", "config": {"command": "serve --x"}}, "config.command", "list of strings"),
        ({"type": "mcp", "config": {"url": "http:///mcp"}}, "config.url", "must name a host"),
    ],
)
def test_a_spec_that_cannot_work_names_the_key(spec: object, key: str, words: str) -> None:
    error = _refusal(spec)
    assert error.key == key
    assert words in str(error)


def test_a_refused_value_is_shown_without_its_secret() -> None:
    unknown = _refusal({"type": "redis", "config": {"url": "redis://h", "password": "hunter2"}})
    assert unknown.shown == REDACTED  # a key the type does not read may be a secret
    wrong = _refusal({"type": "s3", "config": {"bucket": "b", "secret_access_key": 7}})
    assert wrong.shown == REDACTED
    url = _refusal({"type": "postgres", "config": {"url": "postgresql://u:hunter2@h:x/db"}})
    assert url.shown == f"postgresql://u:{MASK}@h:x/db"
    misplaced = _refusal({"type": "redis", "url": "redis://:hunter2@h"})
    assert misplaced.shown == REDACTED
    for error in (unknown, wrong, url, misplaced):
        assert "hunter2" not in f"{error} {error.shown}"


@pytest.mark.parametrize(
    ("spec", "key", "words"),
    [
        ({"type": "filesystem", "config": {"root": "/"}}, "type", "wherever this node may"),
        ({"type": "mcp", "config": {"command": ["sh"]}}, "config.command", "launch one"),
        ({"type": "s3", "config": {"bucket": "b"}}, "config.access_key_id", "AWS credentials"),
        ({"type": "postgres", "config": {"url": "postgresql://u@h/db"}}, "config.url", ".pgpass"),
        ({"type": "postgres", "config": {"url": "postgresql://u:p@/db"}}, "config.url", "host"),
        (
            {"type": "postgres", "config": {"url": "postgresql://u:p@h/db?sslkey=/etc/k"}},
            "config.url",
            "no query parameter 'sslkey'",
        ),
        (
            {"type": "postgres", "config": {"url": "postgresql://u:p@h/db?service=node"}},
            "config.url",
            "no query parameter 'service'",
        ),
        ({"type": "redis", "config": {"url": "unix:///run/redis.sock"}}, "config.url", "host"),
        (
            {"type": "redis", "config": {"url": "rediss://h/0?ssl_certfile=/etc/node.pem"}},
            "config.url",
            "no query parameter 'ssl_certfile'",
        ),
    ],
)
def test_an_inline_tool_may_use_nothing_of_the_nodes(spec: object, key: str, words: str) -> None:
    parse_tool_spec(spec)  # fine as a configured tool
    error = _refusal(spec, inline=True)
    assert error.key == key
    assert words in str(error)


@pytest.mark.parametrize(
    "spec",
    [
        {"type": "redis", "config": {"url": "redis://:pw@cache:6379/0?db=1"}},
        {"type": "postgres", "config": {"url": "postgresql://u:p@db:5432/x?sslmode=require"}},
        {"type": "s3", "config": {"bucket": "b", **S3_KEYS}},
        {"type": "mcp", "config": {"url": "https://tools.example/mcp"}},
    ],
)
def test_an_inline_tool_with_its_own_credentials_is_taken(spec: dict[str, Any]) -> None:
    check_inline(parse_tool_spec(spec))


def test_urls_are_shown_without_passwords() -> None:
    assert redact_url("redis://:hunter2@cache:6379/0") == f"redis://:{MASK}@cache:6379/0"
    assert redact_url("postgresql://me:pw@db/x?password=pw2&sslmode=require") == (
        f"postgresql://me:{MASK}@db/x?password={MASK}&sslmode=require"
    )
    assert redact_url("redis://cache:6379/0") == "redis://cache:6379/0"


def test_a_clients_message_is_scrubbed_of_the_tools_secrets() -> None:
    spec = parse_tool_spec(
        {"type": "postgres", "config": {"url": "postgresql://me:p%40ss@db/x?password=zz9"}}
    )
    said = "login to postgresql://me:p%40ss@db/x failed: password 'p@ss' or zz9 is wrong"
    scrubbed = scrub(said, spec)
    assert not any(secret in scrubbed for secret in ("p%40ss", "p@ss", "zz9"))
    assert "postgresql://me:***@db/x" in scrubbed
    s3 = parse_tool_spec({"type": "s3", "config": {"bucket": "b", **S3_KEYS}})
    assert "s3cret-key" not in scrub("signed with s3cret-key", s3)
    # Any URL's password, even one that is not in the spec (an MCP command's argument).
    assert scrub("cannot reach http://a:other@h/", s3) == f"cannot reach http://a:{MASK}@h/"
