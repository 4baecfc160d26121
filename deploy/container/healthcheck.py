"""The container's HEALTHCHECK: GET /health on this node's own HTTP API.

Exit 0 when the node answers 200, 1 otherwise (Docker and Podman read only the status).
The address comes from CAXTON_HTTP_BIND as the node reads it; a node bound to every
address (0.0.0.0, ::) is asked on loopback. With CAXTON_HTTP_TLS_CERT set the API speaks
TLS only, so this asks over HTTPS without checking the certificate: the peer is this
container, and the certificate names the Service, not 127.0.0.1. /health needs no token.
Standard library only: the slim image has no curl.
"""

import ipaddress
import os
import ssl
import sys
import urllib.request


def main() -> int:
    bind = os.environ.get("CAXTON_HTTP_BIND") or "127.0.0.1:8080"
    host, _, port = bind.rpartition(":")
    host = host.strip("[]")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is None or ip.is_unspecified:
        host = "::1" if ip is not None and ip.version == 6 else "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    tls = bool(os.environ.get("CAXTON_HTTP_TLS_CERT"))
    context = ssl._create_unverified_context() if tls else None
    url = f"{'https' if tls else 'http'}://{host}:{port}/health"
    try:
        with urllib.request.urlopen(url, timeout=4, context=context) as reply:
            return 0 if reply.status == 200 else 1
    except OSError as exc:  # URLError and HTTPError are OSErrors
        print(f"caxton healthcheck: {url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
