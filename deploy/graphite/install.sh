#!/usr/bin/env bash
# What bench/dashboard.py needs, on Debian (bookworm): Graphite's carbon and graphite-web
# from Debian, node and npm, and the statsd daemon from npm into deploy/graphite/node_modules
# (git-ignored). As root, or with sudo for the apt-get line.
set -euo pipefail
cd "$(dirname "$0")"
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q graphite-carbon graphite-web nodejs npm
# --omit=optional: statsd's optional modern-syslog is a native build that nothing here uses.
npm ci --omit=optional --no-audit --no-fund
