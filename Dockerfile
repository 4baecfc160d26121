# caxton-actors: one node per container.
#
#   docker build -t caxton-actors:0.1.0 .          (or: podman build --format docker ...)
#   docker run --rm -p 8080:8080 -e CAXTON_HTTP_TOKENS="ops:admin:$(openssl rand -hex 24)" \
#       -v caxton-data:/var/lib/caxton caxton-actors:0.1.0
#
# The image serves the HTTP API on 0.0.0.0:8080, so a node started without
# CAXTON_HTTP_TOKENS refuses to start (exit 2): give it tokens (or CAXTON_HTTP_INSECURE=true
# on a network of your own). Gossip is off until CAXTON_GOSSIP_ENABLED=true, and then needs
# CAXTON_GOSSIP_KEYS (caxton-actors keys generate). docs/kubernetes.md runs three of them.
#
# PYTHON_IMAGE is any Debian-based image with python3.11 (3.11 or later) and its venv
# module; the official slim image by default. EXTRAS installs state tool clients into the
# image, e.g. --build-arg EXTRAS=redis,postgres (none by default).
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ARG EXTRAS=
WORKDIR /src
COPY pyproject.toml setup.cfg README.md ./
COPY caxton_actors ./caxton_actors
# The package and every dependency as wheels.
RUN python -m venv /opt/build \
    && /opt/build/bin/pip install --no-cache-dir --upgrade pip wheel \
    && /opt/build/bin/pip wheel --no-cache-dir --wheel-dir /wheels ".${EXTRAS:+[$EXTRAS]}"
# The image's environment: those wheels alone, installed offline into a virtual environment
# of its own (the base's Python may be the distribution's, which refuses installs into
# itself), without pip. Built on the same base as the final stage, so it runs there as is.
RUN python -m venv /opt/caxton \
    && /opt/caxton/bin/pip install --no-cache-dir --no-index /wheels/*.whl \
    && /opt/caxton/bin/pip uninstall -y pip

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="caxton-actors" \
      org.opencontainers.image.description="Cluster coordination for agent platforms: SQLite state, SWIM gossip, HTTP API" \
      org.opencontainers.image.licenses="MIT"

# tini as PID 1: it passes SIGTERM and SIGINT on to the node (which then leaves the
# cluster gracefully) and reaps zombies, which a Python PID 1 does not: an MCP state tool
# configured with a `command` runs as a child process of the node.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 caxton \
    && useradd --system --uid 10001 --gid caxton --no-create-home \
       --home-dir /var/lib/caxton --shell /usr/sbin/nologin caxton \
    && install -d -o caxton -g caxton -m 0750 /var/lib/caxton

# Only the environment crosses over: no wheel, source, compiler or pip cache in the image.
COPY --from=builder /opt/caxton /opt/caxton
COPY deploy/container/healthcheck.py /opt/caxton/healthcheck.py

ENV PATH=/opt/caxton/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CAXTON_SQLITE_PATH=/var/lib/caxton/caxton.db \
    CAXTON_HTTP_BIND=0.0.0.0:8080 \
    CAXTON_GOSSIP_BIND=0.0.0.0:7946

# The SQLite file, its WAL, its lock and the gossip keyring (all beside one another).
VOLUME ["/var/lib/caxton"]
WORKDIR /var/lib/caxton
USER 10001:10001

EXPOSE 7946/udp 7946/tcp 8080

# Docker and Podman (with --format docker) run it; Kubernetes ignores it and uses the
# StatefulSet's probes instead.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "/opt/caxton/healthcheck.py"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["tini", "--", "caxton-actors"]
CMD ["run"]
