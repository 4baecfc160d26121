"""The container image and the Kubernetes manifests (Dockerfile, deploy/).

Every manifest is validated against the Kubernetes schemas of a fixed version, strictly
(an unknown field is an error) and offline, with kubernetes-validate. The kustomization is
rendered here with PyYAML: each resource file it lists, its namespace, its images, and the
ConfigMap and Secret its generators make (the Secret from secrets.env.example, since
secrets.env is the user's). Where kubectl is installed, its own `kubectl kustomize` output
is validated too. Then the facts a user relies on (docs/kubernetes.md): every CAXTON_*
variable is one the node knows and the pod's environment loads as a config, the probes,
the headless Service, the seeds, the security context, the Dockerfile's ports and health
check.
"""

from __future__ import annotations

import base64
import http.server
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from caxton_actors.config import SETTINGS, ConfigError, load_config
from caxton_actors.wire.keyring import generate_key

ROOT = Path(__file__).resolve().parents[2]
KUSTOMIZE = ROOT / "deploy" / "kubernetes"
DOCKERFILE = ROOT / "Dockerfile"
HEALTHCHECK = ROOT / "deploy" / "container" / "healthcheck.py"
# The oldest Kubernetes release the manifests promise to work on (docs/kubernetes.md).
KUBERNETES_VERSION = "1.31.0"

# The variables the manifests may set: the node's settings. The two advertise addresses
# are the pod's IP, from the downward API.
ADVERTISE = ("CAXTON_GOSSIP_ADVERTISE", "CAXTON_HTTP_ADVERTISE")
KNOWN = {s.env for s in SETTINGS if s.env is not None}

Doc = dict[str, Any]


def read_env_file(path: Path) -> dict[str, str]:
    """An env file as kustomize's generators read it: KEY=VALUE a line, no quoting; blank
    lines and lines starting with # skipped."""
    data: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: {line!r} is not KEY=VALUE"
        assert key not in data, f"{path.name}: {key} twice"
        data[key] = value
    return data


def load_kustomization() -> Doc:
    doc = yaml.safe_load((KUSTOMIZE / "kustomization.yaml").read_text())
    assert isinstance(doc, dict)
    return doc


def render() -> list[Doc]:
    """The objects `kubectl apply -k deploy/kubernetes` creates, generated names without
    their hash suffix."""
    kustomization = load_kustomization()
    docs: list[Doc] = []
    for resource in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((KUSTOMIZE / resource).read_text()) if d]
    for generator in kustomization.get("configMapGenerator", []):
        data: dict[str, str] = {}
        for name in generator["envs"]:
            data |= read_env_file(KUSTOMIZE / name)
        docs.append(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": generator["name"]}}
            | {"data": data}
        )
    for generator in kustomization.get("secretGenerator", []):
        data = {}
        for name in generator["envs"]:
            data |= read_env_file(KUSTOMIZE / f"{name}.example")
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        docs.append(
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": generator["name"]}}
            | {"type": "Opaque", "data": encoded}
        )
    images = {i["name"]: i for i in kustomization.get("images", [])}
    for doc in docs:
        if doc["kind"] != "Namespace" and "namespace" in kustomization:
            doc["metadata"]["namespace"] = kustomization["namespace"]
        for container in containers(doc):
            if container["image"] in images:
                image = images[container["image"]]
                name = image.get("newName", container["image"])
                container["image"] = f"{name}:{image['newTag']}"
    return docs


def containers(doc: Doc) -> list[Doc]:
    if doc["kind"] not in ("StatefulSet", "Deployment", "DaemonSet"):
        return []
    spec = doc["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def validate(doc: Doc) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def one(docs: list[Doc], kind: str, name: str) -> Doc:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


@pytest.fixture(scope="module")
def docs() -> list[Doc]:
    return render()


@pytest.fixture(scope="module")
def statefulset(docs: list[Doc]) -> Doc:
    return one(docs, "StatefulSet", "caxton")


@pytest.fixture(scope="module")
def pod(statefulset: Doc) -> Doc:
    spec = statefulset["spec"]["template"]["spec"]
    assert isinstance(spec, dict)
    return spec


@pytest.fixture(scope="module")
def container(pod: Doc) -> Doc:
    (only,) = pod["containers"]
    assert isinstance(only, dict)
    return only


@pytest.fixture(scope="module")
def env(container: Doc) -> dict[str, Doc]:
    return {e["name"]: e for e in container["env"]}


def literal(env: dict[str, Doc], name: str) -> str:
    value = env[name]["value"]
    assert isinstance(value, str)
    return value


# -- the schemas ---------------------------------------------------------------------------


def test_every_resource_file_is_in_the_kustomization() -> None:
    listed = load_kustomization()["resources"]
    on_disk = sorted(p.name for p in KUSTOMIZE.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == on_disk


def test_every_rendered_object_is_valid_for_kubernetes(docs: list[Doc]) -> None:
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == [
        "ConfigMap",
        "Namespace",
        "PodDisruptionBudget",
        "Secret",
        "Service",
        "Service",
        "StatefulSet",
    ]
    for doc in docs:
        validate(doc)


def test_validation_is_strict(statefulset: Doc) -> None:
    """A misspelt field is an error, not a field Kubernetes would silently drop."""
    typo = yaml.safe_load(yaml.safe_dump(statefulset))
    typo["spec"]["template"]["spec"]["enableServiceLink"] = False
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(typo)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_kustomize_output_is_valid(tmp_path: Path, docs: list[Doc]) -> None:
    """What kustomize itself renders (hash-suffixed names, references rewritten) is as
    valid, and holds the same objects."""
    tree = shutil.copytree(KUSTOMIZE, tmp_path / "kubernetes")
    shutil.copy(tree / "secrets.env.example", tree / "secrets.env")
    out = subprocess.run(
        ["kubectl", "kustomize", str(tree)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    rendered = [d for d in yaml.safe_load_all(out.stdout) if d]
    for doc in rendered:
        validate(doc)

    def names(objects: list[Doc]) -> list[tuple[str, str]]:
        hashed = re.compile(r"-[a-z0-9]{10}$")
        return sorted((d["kind"], hashed.sub("", d["metadata"]["name"])) for d in objects)

    assert names(rendered) == names(docs)
    kubectl_set = next(d for d in rendered if d["kind"] == "StatefulSet")
    text = yaml.safe_dump(kubectl_set)
    for generated in ("caxton-config", "caxton-secrets"):
        assert re.search(rf"name: {generated}-[a-z0-9]{{10}}\n", text), generated


# -- what the pods are told ---------------------------------------------------------------


def test_every_caxton_variable_is_a_setting(env: dict[str, Doc], docs: list[Doc]) -> None:
    config_map = one(docs, "ConfigMap", "caxton-config")
    secret = one(docs, "Secret", "caxton-secrets")
    names = [*env, *config_map["data"], *secret["data"]]
    assert all(n.startswith("CAXTON_") for n in names), names
    assert set(names) <= KNOWN, set(names) - KNOWN


def test_references_name_what_the_kustomization_generates(
    container: Doc, env: dict[str, Doc], docs: list[Doc]
) -> None:
    (source,) = container["envFrom"]
    assert source == {"configMapRef": {"name": "caxton-config"}}
    secret = one(docs, "Secret", "caxton-secrets")
    for name in ("CAXTON_GOSSIP_KEYS", "CAXTON_HTTP_TOKENS"):
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "caxton-secrets"
        assert ref["key"] in secret["data"]
    assert (KUSTOMIZE / ".gitignore").read_text().splitlines().count("secrets.env") == 1


def test_the_downward_api_names_the_node_and_its_addresses(env: dict[str, Doc]) -> None:
    def field(name: str) -> str:
        path = env[name]["valueFrom"]["fieldRef"]["fieldPath"]
        assert isinstance(path, str)
        return path

    assert field("CAXTON_NODE_NAME") == "metadata.name"
    for name in ADVERTISE:
        assert field(name) == "status.podIP"


def pod_environ(env: dict[str, Doc], docs: list[Doc], volume: Path) -> dict[str, str]:
    """The environment of caxton-0 as Kubernetes builds it, with real secrets, and its
    volume (not mounted here) at ``volume``."""
    environ = dict(one(docs, "ConfigMap", "caxton-config")["data"])
    environ |= {n: e["value"] for n, e in env.items() if "value" in e}
    environ |= {
        "CAXTON_NODE_NAME": "caxton-0",
        "CAXTON_GOSSIP_ADVERTISE": "10.244.1.7",
        "CAXTON_HTTP_ADVERTISE": "10.244.1.7",
        "CAXTON_GOSSIP_KEYS": generate_key(),
        "CAXTON_HTTP_TOKENS": f"ops:admin:{'a1' * 24},app:write:{'b2' * 24}",
        "CAXTON_SQLITE_PATH": str(volume / PurePosixPath(sqlite_path(env)).name),
    }
    return environ


def sqlite_path(env: dict[str, Doc]) -> str:
    return literal(env, "CAXTON_SQLITE_PATH")


def test_the_pods_environment_loads_as_a_node_config(
    env: dict[str, Doc], docs: list[Doc], statefulset: Doc, tmp_path: Path
) -> None:
    config = load_config(None, pod_environ(env, docs, tmp_path), {})
    assert config.node_name == "caxton-0"
    assert config.gossip.enabled
    assert config.gossip.keys
    assert config.http.tokens
    assert str(config.http.bind_address) == "0.0.0.0:8080"
    assert config.gossip.bind_address.port == 7946
    assert str(config.gossip.advertise_address) == "10.244.1.7:0"  # 0: the bound port
    assert str(config.http.advertise_address) == "10.244.1.7:0"
    replicas = statefulset["spec"]["replicas"]
    headless = statefulset["spec"]["serviceName"]
    assert [str(s) for s in config.gossip.seed_nodes] == [
        f"caxton-{i}.{headless}:7946" for i in range(replicas)
    ]
    # A graceful leave (about three gossip periods) and the HTTP drain fit in the grace.
    grace = statefulset["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert 3 * config.gossip.gossip_interval + config.drain_timeout + 10 <= grace


@pytest.mark.parametrize("variable", ["CAXTON_GOSSIP_KEYS", "CAXTON_HTTP_TOKENS"])
def test_the_example_secrets_are_refused(
    variable: str, env: dict[str, Doc], docs: list[Doc], tmp_path: Path
) -> None:
    """secrets.env.example's placeholders stop a node, naming the variable: a copy left
    unchanged can never run a cluster on a published key or token."""
    environ = pod_environ(env, docs, tmp_path)
    environ[variable] = read_env_file(KUSTOMIZE / "secrets.env.example")[variable]
    with pytest.raises(ConfigError, match=variable):
        load_config(None, environ, {})


def test_the_database_is_on_the_volume_claim(
    env: dict[str, Doc], container: Doc, statefulset: Doc
) -> None:
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert sqlite_path(env) == "/var/lib/caxton/caxton.db"
    assert str(PurePosixPath(sqlite_path(env)).parent) == mounts[claim["metadata"]["name"]]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_the_statefulset_is_three_parallel_pods(statefulset: Doc, pod: Doc) -> None:
    spec = statefulset["spec"]
    assert spec["replicas"] == 3
    assert spec["podManagementPolicy"] == "Parallel"
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    assert pod["terminationGracePeriodSeconds"] >= 20


def test_probes_ask_the_health_routes_on_the_http_port(container: Doc, env: dict[str, Doc]) -> None:
    ports = {p["name"]: (p["containerPort"], p["protocol"]) for p in container["ports"]}
    http_port = int(literal(env, "CAXTON_HTTP_BIND").rpartition(":")[2])
    assert ports["http"] == (http_port, "TCP")
    for probe, path in (
        ("readinessProbe", "/health/ready"),
        ("livenessProbe", "/health"),
        ("startupProbe", "/health"),
    ):
        get = container[probe]["httpGet"]
        assert get["path"] == path, probe
        assert ports[get["port"]] == (http_port, "TCP"), probe
        assert get.get("scheme", "HTTP") == "HTTP", probe


def test_gossip_ports_are_udp_and_tcp(
    container: Doc, env: dict[str, Doc], docs: list[Doc], statefulset: Doc
) -> None:
    gossip = int(literal(env, "CAXTON_GOSSIP_BIND").rpartition(":")[2])
    ports = {(p["containerPort"], p["protocol"]) for p in container["ports"]}
    assert {(gossip, "UDP"), (gossip, "TCP")} <= ports
    headless = one(docs, "Service", statefulset["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    assert {(p["port"], p["protocol"]) for p in headless["spec"]["ports"]} == {
        (gossip, "UDP"),
        (gossip, "TCP"),
    }
    labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert headless["spec"]["selector"].items() <= labels.items()


def test_the_api_service_and_the_allowed_hosts(docs: list[Doc], statefulset: Doc) -> None:
    api = one(docs, "Service", "caxton")
    assert [(p["port"], p["targetPort"]) for p in api["spec"]["ports"]] == [(8080, "http")]
    assert (
        api["spec"]["selector"].items()
        <= statefulset["spec"]["template"]["metadata"]["labels"].items()
    )
    # Clients in the cluster call the Service by name: the node must answer those names.
    namespace = load_kustomization()["namespace"]
    hosts = one(docs, "ConfigMap", "caxton-config")["data"]["CAXTON_HTTP_ALLOWED_HOSTS"]
    assert set(hosts.split(",")) == {
        "caxton",
        f"caxton.{namespace}",
        f"caxton.{namespace}.svc",
        f"caxton.{namespace}.svc.cluster.local",
    }


def test_the_pod_is_restricted(pod: Doc, container: Doc, docs: list[Doc]) -> None:
    assert pod["enableServiceLinks"] is False
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    context = container["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    # The image's user is the pod's.
    user = re.search(r"^USER (\d+):(\d+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert user is not None
    assert pod["securityContext"]["runAsUser"] == int(user[1]) != 0
    namespace = one(docs, "Namespace", load_kustomization()["namespace"])
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_disruption_budget_covers_the_pods(docs: list[Doc], statefulset: Doc) -> None:
    budget = one(docs, "PodDisruptionBudget", "caxton")
    assert budget["spec"]["maxUnavailable"] == 1
    labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_the_statsd_address_is_configuration() -> None:
    """CAXTON_STATSD lives in config.env (shipped commented out: metrics off)."""
    text = (KUSTOMIZE / "config.env").read_text()
    assert re.search(r"^# CAXTON_STATSD=\S+:\d+$", text, re.MULTILINE)


# -- the image -----------------------------------------------------------------------------


def dockerfile_lines() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    return [ln.strip() for ln in joined.splitlines() if ln.strip() and not ln.startswith("#")]


def test_the_dockerfile(env: dict[str, Doc]) -> None:
    lines = dockerfile_lines()
    assert len([ln for ln in lines if ln.startswith("FROM ")]) == 2  # builder, then the image
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in lines
    assert any("pip wheel" in ln for ln in lines)
    assert any(re.search(r"pip install --no-cache-dir .*/wheels/\*\.whl", ln) for ln in lines)
    assert "EXPOSE 7946/udp 7946/tcp 8080" in lines
    assert 'VOLUME ["/var/lib/caxton"]' in lines
    assert f"CAXTON_SQLITE_PATH={sqlite_path(env)}" in " ".join(lines)
    assert 'ENTRYPOINT ["tini", "--", "caxton-actors"]' in lines
    (check,) = [ln for ln in lines if ln.startswith("HEALTHCHECK ")]
    assert check.endswith('CMD ["python", "/opt/caxton/healthcheck.py"]')
    assert "/health" in HEALTHCHECK.read_text()
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignored[ignored.index("*") + 1 :].count("!deploy/container/healthcheck.py") == 1


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[int]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def run_healthcheck(bind: str) -> int:
    out = subprocess.run(
        [sys.executable, str(HEALTHCHECK)],
        env={"CAXTON_HTTP_BIND": bind},
        capture_output=True,
        timeout=30,
        check=False,
    )
    return out.returncode


def test_the_healthcheck_asks_health_on_the_bound_port(health_server: int) -> None:
    assert run_healthcheck(f"0.0.0.0:{health_server}") == 0
    assert run_healthcheck(f"127.0.0.1:{health_server}") == 0
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    assert run_healthcheck(f"0.0.0.0:{port}") == 1
