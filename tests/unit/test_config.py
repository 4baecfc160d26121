"""Configuration: where each value comes from, which source wins, and one-line errors."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml

from caxton_actors import cli
from caxton_actors.address import Address
from caxton_actors.config import (
    ENV_PREFIX,
    SETTINGS,
    ConfigError,
    Setting,
    load_config,
    parse_address,
    parse_duration,
)
from caxton_actors.wire.keyring import generate_key, parse_key

CONF = Path(__file__).parents[2] / "conf"

FULL_FILE = """\
caxton_config:
  node_name: caxton-0
  embedded_only: false
  sqlite_path: "{tmp}/state.db"
  http:
    bind_address: "127.0.0.1:9090"
  statsd:
    address: "127.0.0.1:8125"
    prefix: "cluster.a"
  reap_interval: "500ms"
  drain_timeout: 2
  log_level: DEBUG
  gossip:
    enabled: true
    bind_address: "0.0.0.0:7000"
    seed_nodes: ["caxton-1:7946", "caxton-2"]
    gossip_interval: "1.5s"
    failure_detection_timeout: "2m"
    keys: ["{key}"]
    insecure: false
"""
KEY = generate_key()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "caxton.yaml"
    path.write_text(text.format(tmp=tmp_path, key=KEY), encoding="utf-8")
    return path


def error_of(path: Path | None, environ: dict[str, str], flags: dict[str, str]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ, flags)
    return caught.value


def test_defaults_without_file_environment_or_flags() -> None:
    config = load_config(None, {}, {})
    assert config.node_name == socket.gethostname()
    assert config.embedded_only is True
    assert config.sqlite_path == Path("caxton_local.db")
    assert config.http.bind_address == Address("127.0.0.1", 8080)
    assert config.gossip.enabled is False
    assert config.gossip.bind_address == Address("0.0.0.0", 7946)
    assert config.gossip.seed_nodes == ()
    assert (config.gossip.gossip_interval, config.gossip.failure_detection_timeout) == (1.0, 60.0)
    assert config.statsd.address is None
    assert config.statsd.prefix == ""
    assert (config.reap_interval, config.drain_timeout) == (1.0, 5.0)
    assert config.log_level == "INFO"


def test_file_sets_every_setting(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL_FILE), {}, {})
    assert config.node_name == "caxton-0"
    assert config.embedded_only is False
    assert config.sqlite_path == tmp_path / "state.db"
    assert config.http.bind_address == Address("127.0.0.1", 9090)
    assert config.statsd.address == Address("127.0.0.1", 8125)
    assert config.statsd.prefix == "cluster.a"
    assert (config.reap_interval, config.drain_timeout) == (0.5, 2.0)
    assert config.log_level == "DEBUG"
    assert config.gossip.enabled is True
    assert config.gossip.bind_address == Address("0.0.0.0", 7000)
    assert config.gossip.seed_nodes == (Address("caxton-1", 7946), Address("caxton-2", 7946))
    assert (config.gossip.gossip_interval, config.gossip.failure_detection_timeout) == (1.5, 120.0)
    assert config.gossip.keys == (parse_key(KEY),)
    assert config.gossip.insecure is False


def test_empty_root_section_gives_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "caxton_config:\n  gossip:\n"), {}, {})
    assert config.gossip.enabled is False
    assert config.http.bind_address == Address("127.0.0.1", 8080)


@pytest.mark.parametrize(
    ("use_env", "use_flags", "winner"),
    [(False, False, "file"), (True, False, "env"), (False, True, "flag"), (True, True, "flag")],
)
def test_later_sources_win(tmp_path: Path, use_env: bool, use_flags: bool, winner: str) -> None:
    for layer in ("file", "env", "flag"):
        (tmp_path / layer).mkdir()
    path = write(
        tmp_path,
        """\
caxton_config:
  node_name: file-node
  sqlite_path: "{tmp}/file/state.db"
  http:
    bind_address: "127.0.0.1:1001"
  statsd:
    prefix: file
  log_level: DEBUG
""",
    )
    environ = {
        "CAXTON_NODE_NAME": "env-node",
        "CAXTON_SQLITE_PATH": str(tmp_path / "env" / "state.db"),
        "CAXTON_HTTP_BIND": "127.0.0.1:1002",
        "CAXTON_STATSD_PREFIX": "env",
        "CAXTON_LOG_LEVEL": "WARNING",
    }
    flags = {
        "node_name": "flag-node",
        "sqlite_path": str(tmp_path / "flag" / "state.db"),
        "http.bind_address": "127.0.0.1:1003",
        "statsd.prefix": "flag",
        "log_level": "ERROR",
    }

    config = load_config(path, environ if use_env else {}, flags if use_flags else {})

    assert config.node_name == f"{winner}-node"
    assert config.sqlite_path == tmp_path / winner / "state.db"
    assert config.http.bind_address.port == {"file": 1001, "env": 1002, "flag": 1003}[winner]
    assert config.statsd.prefix == winner
    assert config.log_level == {"file": "DEBUG", "env": "WARNING", "flag": "ERROR"}[winner]
    assert config.reap_interval == 1.0  # set by no source: the default


def test_empty_environment_value_counts_as_unset(tmp_path: Path) -> None:
    path = write(tmp_path, "caxton_config:\n  node_name: from-file\n")
    config = load_config(path, {"CAXTON_NODE_NAME": "", "CAXTON_LOG_LEVEL": ""}, {})
    assert config.node_name == "from-file"
    assert config.log_level == "INFO"


def test_seeds_from_environment_ignore_spaces_and_default_the_port() -> None:
    environ = {"CAXTON_GOSSIP_SEEDS": " caxton-1:7000 ,caxton-2 , [fd00::2]:7001 ,"}
    config = load_config(None, environ, {})
    assert config.gossip.seed_nodes == (
        Address("caxton-1", 7000),
        Address("caxton-2", 7946),
        Address("fd00::2", 7001),
    )
    assert config.gossip.enabled is False  # seeds alone do not turn gossip on


@pytest.mark.parametrize(
    ("text", "enabled"),
    [("true", True), ("YES", True), ("1", True), ("False", False), ("no", False), ("0", False)],
)
def test_gossip_enabled_words(text: str, enabled: bool) -> None:
    loopback = {"CAXTON_GOSSIP_BIND": "127.0.0.1"}
    assert load_config(None, {"CAXTON_GOSSIP_ENABLED": text, **loopback}, {}).gossip.enabled is (
        enabled
    )
    assert load_config(None, loopback, {"gossip.enabled": text}).gossip.enabled is enabled


def test_log_level_is_case_insensitive() -> None:
    assert load_config(None, {}, {"log_level": "warning"}).log_level == "WARNING"


def test_log_format_and_access_log_from_each_source(tmp_path: Path) -> None:
    default = load_config(None, {}, {})
    assert (default.log_format, default.http.access_log) == ("text", False)
    path = write(tmp_path, "caxton_config:\n  log_format: JSON\n  http:\n    access_log: true\n")
    from_file = load_config(path, {}, {})
    assert (from_file.log_format, from_file.http.access_log) == ("json", True)
    environ = {"CAXTON_LOG_FORMAT": "json", "CAXTON_HTTP_ACCESS_LOG": "yes"}
    from_env = load_config(None, environ, {})
    assert (from_env.log_format, from_env.http.access_log) == ("json", True)
    flags = {"log_format": "text", "http.access_log": "false"}
    from_flags = load_config(path, environ, flags)
    assert (from_flags.log_format, from_flags.http.access_log) == ("text", False)


@pytest.mark.parametrize(
    ("body", "key", "value"),
    [
        ("  log_format: xml\n", "log_format", "xml"),
        ("  logging:\n    format: json\n", "logging", {"format": "json"}),
        ("  http:\n    access_log: 'yes'\n", "http.access_log", "yes"),
    ],
)
def test_bad_log_settings_in_a_file_are_named(
    tmp_path: Path, body: str, key: str, value: object
) -> None:
    error = error_of(write(tmp_path, "caxton_config:\n" + body), {}, {})
    assert (error.key, error.value) == (key, value)


@pytest.mark.parametrize(
    ("text", "default_port", "expected", "shown"),
    [
        ("example.com:80", None, Address("example.com", 80), "example.com:80"),
        ("10.0.0.1:0", None, Address("10.0.0.1", 0), "10.0.0.1:0"),
        ("[::1]:65535", None, Address("::1", 65535), "[::1]:65535"),
        ("caxton-2", 7946, Address("caxton-2", 7946), "caxton-2:7946"),
        ("[fe80::1]", 7946, Address("fe80::1", 7946), "[fe80::1]:7946"),
    ],
)
def test_parse_address(text: str, default_port: int | None, expected: Address, shown: str) -> None:
    address = parse_address(text, "k", default_port=default_port)
    assert address == expected
    assert str(address) == shown


@pytest.mark.parametrize(
    "text",
    [
        "",
        "host",
        ":80",
        "host:",
        "host:65536",
        "host:-1",
        "host:http",
        "::1:80",
        "[::1",
        "[::1]x",
        "[1.2.3.4]:80",
        "[]:80",
        "a b:80",
        "h:1:2",
    ],
)
def test_parse_address_rejects(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_address(text, "http.bind_address")
    assert str(caught.value).startswith(f"http.bind_address = {text!r}: ")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("500ms", 0.5),
        ("1s", 1.0),
        ("1.5s", 1.5),
        ("2m", 120.0),
        ("1h", 3600.0),
        (3, 3.0),
        (0.25, 0.25),
        ("7", 7.0),
    ],
)
def test_parse_duration(value: object, seconds: float) -> None:
    assert parse_duration(value, "k") == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value",
    [
        "0s",
        "-1s",
        0,
        -2,
        0.0,
        True,
        False,
        None,
        "soon",
        "1d",
        "1 s",
        "",
        "s",
        float("nan"),
        float("inf"),
        10**400,
        ["1s"],
    ],
)
def test_parse_duration_rejects(value: object) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_duration(value, "reap_interval")
    assert caught.value.key == "reap_interval"
    assert caught.value.value is value
    assert str(caught.value).startswith("reap_interval = ")


@pytest.mark.parametrize(
    ("body", "key", "value"),
    [
        ("  reap_interval: soon\n", "reap_interval", "soon"),
        ("  drain_timeout: 0\n", "drain_timeout", 0),
        ("  http:\n    bind_address: '127.0.0.1:99999'\n", "http.bind_address", "127.0.0.1:99999"),
        ("  gossip:\n    bind_address: '::1:7946'\n", "gossip.bind_address", "::1:7946"),
        ("  gossip:\n    seed_nodes: [ok-1, 'bad:x']\n", "gossip.seed_nodes", "bad:x"),
        ("  gossip:\n    gosip_interval: 1s\n", "gossip.gosip_interval", "1s"),
        ("  gosip:\n    enabled: true\n", "gosip", {"enabled": True}),
        ("  gossip:\n    enabled: 'yes'\n", "gossip.enabled", "yes"),
        ("  gossip:\n    seed_nodes: 'caxton-1:7946'\n", "gossip.seed_nodes", "caxton-1:7946"),
        ("  gossip: [enabled]\n", "gossip", ["enabled"]),
        ("  http:\n    bind_address: 8080\n", "http.bind_address", 8080),
        ("  node_name: 'bad name!'\n", "node_name", "bad name!"),
        ("  node_name: ''\n", "node_name", ""),
        (
            "  sqlite_path: '{tmp}/no/such/dir/state.db'\n",
            "sqlite_path",
            "{tmp}/no/such/dir/state.db",
        ),
        ("  sqlite_path: '{tmp}'\n", "sqlite_path", "{tmp}"),
        ("  log_level: LOUD\n", "log_level", "LOUD"),
        ("  statsd:\n    prefix: '.caxton'\n", "statsd.prefix", ".caxton"),
        ("  statsd:\n    prefix: 'a b'\n", "statsd.prefix", "a b"),
        (
            "  gossip:\n    gossip_interval: 5s\n    failure_detection_timeout: 5s\n",
            "gossip.failure_detection_timeout",
            "5s",
        ),
        ("  gossip:\n    gossip_interval: 2m\n", "gossip.failure_detection_timeout", 60.0),
    ],
)
def test_bad_file_value_names_key_and_value(
    tmp_path: Path, body: str, key: str, value: object
) -> None:
    if isinstance(value, str):
        value = value.format(tmp=tmp_path)
    error = error_of(write(tmp_path, "caxton_config:\n" + body), {}, {})
    assert (error.key, error.value) == (key, value)
    assert str(error).startswith(f"{key} = {value!r}: ")
    assert "\n" not in str(error)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (None, "No such file"),
        ("caxton_config: [unclosed\n", "line 1"),
        ("caxton_config:\n  node_name: a\n   log_level: b\n", "line 3"),
        ("node_name: caxton-0\n", "caxton_config"),
        ("caxton_config: {}\nother: 1\n", "caxton_config"),
        ("", "caxton_config"),
        ("caxton_config: 3\n", "caxton_config"),
        (b"caxton_config:\n  node_name: \xff\n", "character"),
    ],
)
def test_bad_file_names_the_file(tmp_path: Path, text: str | bytes | None, words: str) -> None:
    path = tmp_path / "caxton.yaml"
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    elif isinstance(text, bytes):
        path.write_bytes(text)
    error = error_of(path, {}, {})
    assert words in str(error)
    assert "\n" not in str(error)
    if error.key == "config":
        assert error.value == str(path)
    else:
        assert error.key == "caxton_config"


BAD_TEXT = {
    "node_name": "bad name!",
    "sqlite_path": "/no/such/dir/state.db",
    "http.bind_address": "127.0.0.1:http",
    "gossip.bind_address": "[::1",
    "gossip.seed_nodes": "caxton-1, caxton-2:notaport",
    "gossip.enabled": "maybe",
    "statsd.address": "statsd:99999",
    "statsd.prefix": "caxton.",
    "log_level": "LOUD",
    "gossip.profile": "galaxy",
    "gossip.cluster_label": "-no",
    "registry.max_agents_per_node": "lots",
    "registry.scopes": "ok,not/one",
    "gossip.keys": "c2VjcmV0",
    "gossip.insecure": "maybe",
    "http.tokens": "ops:admin:short",
    "http.advertise_address": "caxton-0:8080",
    "gossip.advertise_address": "caxton-0",
    "http.insecure": "maybe",
    "http.allowed_hosts": "bad host",
    "http.tls_cert": "/no/such/cert.pem",
    "http.tls_key": "/no/such/key.pem",
    "http.access_log": "maybe",
    "log_format": "xml",
}


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.env], ids=lambda s: s.path)
def test_bad_environment_value_names_the_variable(setting: Setting) -> None:
    assert setting.env is not None
    error = error_of(None, {setting.env: BAD_TEXT[setting.path]}, {})
    assert error.key == setting.env
    assert str(error).startswith(f"{setting.env} = ")


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.flag], ids=lambda s: s.path)
def test_bad_flag_value_names_the_flag(setting: Setting) -> None:
    assert setting.flag is not None
    error = error_of(None, {}, {setting.path: BAD_TEXT[setting.path]})
    assert error.key == setting.flag
    assert str(error).startswith(f"{setting.flag} = ")


def test_unknown_flag_is_refused() -> None:
    error = error_of(None, {}, {"http.bind": "127.0.0.1:1"})
    assert str(error) == "http.bind = '127.0.0.1:1': no such flag"


def test_errors_name_the_variable_that_gave_the_seed() -> None:
    error = error_of(None, {"CAXTON_GOSSIP_SEEDS": "caxton-1:notaport"}, {})
    assert str(error) == (
        "CAXTON_GOSSIP_SEEDS = 'caxton-1:notaport': port must be a number from 0 to 65535"
    )


def test_settings_table_names_are_unique_and_well_formed() -> None:
    paths = [s.path for s in SETTINGS]
    envs = [s.env for s in SETTINGS if s.env is not None]
    flags = [s.flag for s in SETTINGS if s.flag is not None]
    for names in (paths, envs, flags):
        assert len(names) == len(set(names))
    assert all(env.startswith(ENV_PREFIX) for env in envs)
    assert all(flag.startswith("--") for flag in flags)
    assert all(s.help for s in SETTINGS)


def test_single_node_example_parses_and_loads_with_a_database_override(tmp_path: Path) -> None:
    environ = {"CAXTON_SQLITE_PATH": str(tmp_path / "state.db")}
    config = load_config(CONF / "single-node.yaml", environ, {})
    assert config.embedded_only is True
    assert config.sqlite_path == tmp_path / "state.db"
    assert config.gossip.enabled is False


@pytest.mark.skipif(Path("/var/lib/caxton").is_dir(), reason="/var/lib/caxton exists here")
def test_single_node_example_needs_its_database_directory() -> None:
    error = error_of(CONF / "single-node.yaml", {}, {})
    assert str(error) == (
        "sqlite_path = '/var/lib/caxton/state.db': directory '/var/lib/caxton' does not exist"
    )


def test_multi_node_example_loads() -> None:
    config = load_config(CONF / "multi-node.yaml", {"CAXTON_GOSSIP_KEYS": KEY}, {})
    assert config.gossip.enabled is True
    assert config.gossip.bind_address == Address("0.0.0.0", 7946)
    assert config.gossip.seed_nodes == (Address("caxton-1", 7946), Address("caxton-2", 7946))
    assert (config.gossip.gossip_interval, config.gossip.failure_detection_timeout) == (1.0, 60.0)


def test_state_tools_example_loads() -> None:
    config = load_config(CONF / "state-tools.yaml", {}, {})
    assert {name: spec.type for name, spec in config.state_tools.items()} == {
        "redis-main": "redis",
        "postgres-main": "postgres",
        "redis-over-mcp": "mcp",
    }
    assert config.state_tools["redis-main"].settings["url"] == "redis://127.0.0.1:6379/0"
    assert config.state_timeout == 5.0
    assert config.state_tools_inline is False


def test_inline_state_tools_are_off_unless_turned_on(tmp_path: Path) -> None:
    assert load_config(None, {}, {}).state_tools_inline is False
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"caxton_config": {"state_tools_inline": True}}))
    assert load_config(path, {}, {}).state_tools_inline is True


@pytest.mark.parametrize(
    ("tools", "words"),
    [
        ([1, 2], "state_tools = [1, 2]: must be a mapping"),
        ({"bad name": {"type": "redis"}}, "state_tools.bad name"),
        ({"t": {"type": "floppy"}}, "state_tools.t.type = 'floppy': state tool type must be"),
        ({"t": {"type": "redis", "config": {}}}, "state_tools.t.config.url = None: a redis"),
        (
            {"t": {"type": "redis", "config": {"url": "redis://h", "db": 1}}},
            "state_tools.t.config.db = '<redacted>': a redis state tool has no setting 'db'",
        ),
        (
            {"t": {"type": "postgres", "config": {"url": "postgres://u:pw@h/x"}}},
            "state_tools.t.config.url = 'postgres://u:***@h/x': must be a postgresql:// or",
        ),
        ({"t": {"type": "s3", "config": {"region": "x"}}}, "state_tools.t.config.bucket = None"),
        ({"t": {"type": "mcp", "config": {}}}, "state_tools.t.config.url = None: an mcp state"),
        ({"t": {"type": "redis", "config": "x"}}, "config must be a mapping"),
    ],
)
def test_bad_state_tools_name_the_key(tmp_path: Path, tools: object, words: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"caxton_config": {"state_tools": tools}}))
    assert words in str(error_of(path, {}, {}))


def test_a_state_tool_that_cannot_work_stops_the_node_without_showing_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tools = {
        "cache": {"type": "redis", "config": {"url": "redis://:hunter2@h/0", "password": "pw2"}}
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"caxton_config": {"state_tools": tools}}))
    assert cli.main(["run", "--config", str(path)]) == cli.EXIT_CONFIG == 2
    said = capsys.readouterr().err
    assert "state_tools.cache.config.password = '<redacted>'" in said
    assert "hunter2" not in said
    assert "pw2" not in said


GOSSIP_ON = {"CAXTON_GOSSIP_ENABLED": "true"}


def test_gossip_on_a_network_address_without_keys_refuses_to_start() -> None:
    error = error_of(None, {**GOSSIP_ON, "CAXTON_GOSSIP_BIND": "0.0.0.0:7946"}, {})
    assert error.key == "CAXTON_GOSSIP_BIND"
    assert "gossip.keys" in str(error)
    assert "gossip.insecure: true" in str(error)
    default_bind = error_of(None, GOSSIP_ON, {})  # the default bind is every interface
    assert default_bind.key == "gossip.bind_address"


@pytest.mark.parametrize(
    "environ",
    [
        {"CAXTON_GOSSIP_BIND": "127.0.0.1:7946"},
        {"CAXTON_GOSSIP_BIND": "localhost:7946"},
        {"CAXTON_GOSSIP_BIND": "[::1]:7946"},
        {"CAXTON_GOSSIP_KEYS": f"{KEY}, {generate_key()}"},
        {"CAXTON_GOSSIP_INSECURE": "true"},
    ],
)
def test_gossip_runs_on_loopback_with_keys_or_with_the_explicit_opt_out(
    environ: dict[str, str],
) -> None:
    config = load_config(None, {**GOSSIP_ON, **environ}, {})
    assert config.gossip.enabled


def test_a_bad_key_is_named_but_never_echoed() -> None:
    secret = KEY[:-8]  # a real key's prefix: must not reach a log
    error = error_of(None, {"CAXTON_GOSSIP_KEYS": secret}, {})
    assert error.key == "CAXTON_GOSSIP_KEYS"
    assert secret not in str(error)
    assert "32 random bytes" in str(error)
    twice = error_of(None, {"CAXTON_GOSSIP_KEYS": f"{KEY},{KEY}"}, {})
    assert "twice" in str(twice)


@pytest.mark.parametrize(
    ("setting", "text"),
    [("--http-bind", "8080"), ("--gossip-bind", "7946"), ("--statsd", "8125")],
)
def test_a_bare_port_is_refused_naming_the_expected_form(setting: str, text: str) -> None:
    path = next(s.path for s in SETTINGS if s.flag == setting)
    error = error_of(None, {}, {path: text})
    assert str(error) == f"{setting} = {text!r}: expected host:port, e.g. 127.0.0.1:{text}"
    with pytest.raises(ConfigError, match="host must be a name or an IP address"):
        parse_address("10:80", "k")  # inet_aton would take "10" for 0.0.0.10


def test_an_unknown_variable_is_named_with_the_nearest_valid_one() -> None:
    error = error_of(None, {"CAXTON_HTTP_PORT": "9000"}, {})
    assert str(error) == (
        "CAXTON_HTTP_PORT = '9000': unknown variable; did you mean CAXTON_HTTP_BIND? "
        "(CAXTON_ALLOW_UNKNOWN_ENV=1 ignores unknown CAXTON_* variables)"
    )
    assert "CAXTON_GOSSIP_SEEDS?" in str(error_of(None, {"CAXTON_GOSSIP_SEED": "a:1"}, {}))
    assert "CAXTON_NODE_NAME?" in str(error_of(None, {"CAXTON_NODENAME": "n"}, {}))
    nothing_near = error_of(None, {"CAXTON_XYZZY": "1"}, {})
    assert "did you mean" not in str(nothing_near)
    assert "no setting is read from it" in str(nothing_near)


def test_an_unknown_variable_that_may_hold_a_secret_is_not_echoed() -> None:
    error = error_of(None, {"CAXTON_GOSSIP_KEY": KEY}, {})
    assert KEY not in str(error)
    assert "did you mean CAXTON_GOSSIP_KEYS?" in str(error)


def test_other_variables_and_the_client_ones_are_not_settings_but_known() -> None:
    environ = {
        "CAXTON_HTTP_ADDR": "127.0.0.1:8080",  # caxton-actors members, join, ...
        "CAXTON_HTTP_TOKEN": "reader:secret",
        "CAXTON_ALLOW_UNKNOWN_ENV": "0",
        "CAXTONX": "not ours",
        "PATH": "/bin",
    }
    assert load_config(None, environ, {}).http.bind_address == Address("127.0.0.1", 8080)


def test_the_opt_out_ignores_unknown_variables_and_is_itself_checked() -> None:
    environ = {"CAXTON_HTTP_PORT": "9000", "CAXTON_ALLOW_UNKNOWN_ENV": "1"}
    assert load_config(None, environ, {}).http.bind_address.port == 8080
    error = error_of(None, {"CAXTON_ALLOW_UNKNOWN_ENV": "maybe"}, {})
    assert error.key == "CAXTON_ALLOW_UNKNOWN_ENV"


def test_kubernetes_service_links_are_ignored_and_only_those() -> None:
    """What a Service named caxton (ports 8080/TCP, named http) and one named
    caxton-gossip (7946/UDP) put in every pod of the namespace."""
    links = {
        "CAXTON_SERVICE_HOST": "10.96.0.12",
        "CAXTON_SERVICE_PORT": "8080",
        "CAXTON_SERVICE_PORT_HTTP": "8080",
        "CAXTON_PORT": "tcp://10.96.0.12:8080",
        "CAXTON_PORT_8080_TCP": "tcp://10.96.0.12:8080",
        "CAXTON_PORT_8080_TCP_PROTO": "tcp",
        "CAXTON_PORT_8080_TCP_PORT": "8080",
        "CAXTON_PORT_8080_TCP_ADDR": "10.96.0.12",
        "CAXTON_GOSSIP_SERVICE_HOST": "fd00::12",
        "CAXTON_GOSSIP_PORT": "udp://[fd00::12]:7946",
        "CAXTON_GOSSIP_PORT_7946_UDP_ADDR": "fd00::12",
    }
    load_config(None, links, {})
    typo = error_of(None, {**links, "CAXTON_GOSSIP_PORT": "7946"}, {})  # a person's, not k8s'
    assert "did you mean CAXTON_GOSSIP_BIND?" in str(typo)


def test_an_unknown_variable_stops_the_cli_with_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from caxton_actors import cli  # noqa: PLC0415

    monkeypatch.setenv("CAXTON_HTTP_PORT", "9000")
    assert cli.main(["run"]) == cli.EXIT_CONFIG
    assert capsys.readouterr().err == (
        "caxton-actors: config error: CAXTON_HTTP_PORT = '9000': unknown variable; did you "
        "mean CAXTON_HTTP_BIND? (CAXTON_ALLOW_UNKNOWN_ENV=1 ignores unknown CAXTON_* variables)\n"
    )


TOKEN = "ops:admin:0123456789abcdef-secret"


def test_tokens_come_from_the_file_or_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"caxton_config": {"http": {"tokens": [TOKEN]}}}))
    from_file = load_config(path, {}, {}).http.tokens
    from_env = load_config(None, {"CAXTON_HTTP_TOKENS": f"{TOKEN}, ci:read:abcdef0123456789"}, {})
    assert [(t.name, str(t.scope)) for t in from_file] == [("ops", "admin")]
    assert [(t.name, str(t.scope)) for t in from_env.http.tokens] == [
        ("ops", "admin"),
        ("ci", "read"),
    ]
    assert "0123456789abcdef" not in repr(from_env)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("ops:root:0123456789abcdef", "scope must be read, write or admin"),
        ("ops:read:short", "16 to 256"),
        ("ops:read", "16 to 256"),
        ("-ops:read:0123456789abcdef", "name:scope:secret"),
        (f"{TOKEN},{TOKEN}", "listed twice"),
        (f"{TOKEN},other:read:0123456789abcdef-secret", "share a secret"),
    ],
)
def test_a_bad_token_is_named_but_its_secret_never_echoed(text: str, reason: str) -> None:
    error = error_of(None, {"CAXTON_HTTP_TOKENS": text}, {})
    assert error.key == "CAXTON_HTTP_TOKENS"
    assert reason in str(error)
    assert "0123456789abcdef" not in str(error)


def test_the_api_on_a_network_address_needs_tokens_or_the_opt_out() -> None:
    error = error_of(None, {"CAXTON_HTTP_BIND": "0.0.0.0:8080"}, {})
    assert error.key == "CAXTON_HTTP_BIND"
    assert "http.tokens" in str(error)
    assert "http.insecure: true" in str(error)
    assert load_config(None, {"CAXTON_HTTP_BIND": "0.0.0.0:8080", "CAXTON_HTTP_TOKENS": TOKEN}, {})
    assert load_config(None, {"CAXTON_HTTP_BIND": "10.0.0.1:8080", "CAXTON_HTTP_INSECURE": "1"}, {})


def test_https_needs_both_files_and_they_must_exist(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("-")
    half = error_of(None, {"CAXTON_HTTP_TLS_CERT": str(cert)}, {})
    assert "both http.tls_cert and http.tls_key" in str(half)
    missing = error_of(
        None, {"CAXTON_HTTP_TLS_CERT": str(cert), "CAXTON_HTTP_TLS_KEY": "/nope"}, {}
    )
    assert missing.key == "CAXTON_HTTP_TLS_KEY"
    assert "no such file" in str(missing)


def test_allowed_hosts_are_names_without_ports() -> None:
    config = load_config(None, {"CAXTON_HTTP_ALLOWED_HOSTS": "Caxton.Internal, api"}, {})
    assert config.http.allowed_hosts == ("caxton.internal", "api")
    error = error_of(None, {"CAXTON_HTTP_ALLOWED_HOSTS": "caxton:8080"}, {})
    assert "without a port" in str(error)
