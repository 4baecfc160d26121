"""One type for a host and port, from configuration to the wire."""

from __future__ import annotations

from typing import NamedTuple


class Address(NamedTuple):
    """A host and port.

    From configuration the host may be a name, resolved only when it is used
    (``wire/seeds.py``); in the member table and on the wire it is an IP literal.
    A tuple, so sockets take it as it is.
    """

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
