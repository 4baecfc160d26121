"""Who may call the HTTP API: bearer tokens with a scope, as Consul's ACL tokens.

Pure: no Falcon, so that the configuration can parse tokens before anything is imported
or started. A token is ``name:scope:secret``; the name is what logs and errors show, the
secret is never shown. Scopes nest: ``admin`` may do what ``write`` may, ``write`` what
``read`` may.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from enum import IntEnum

# A secret shorter than this is guessable; one longer is a mistake (a pasted file).
MIN_SECRET_LENGTH = 16
MAX_SECRET_LENGTH = 256
MAX_TOKENS = 64
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_SECRET = re.compile(r"[!-+\--~]+")  # printable ASCII but space and comma (it separates tokens)
BEARER = "bearer "


class Scope(IntEnum):
    """What a token may do; a higher scope includes the lower ones."""

    READ = 1  # every GET
    WRITE = 2  # agents, their state, conversations, correlations
    ADMIN = 3  # cluster join and leave, gossip keys

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Token:
    name: str
    scope: Scope
    secret: str = field(repr=False)  # never in a log line or an error


class TokenError(ValueError):
    """A token that cannot be used; the message never holds the secret."""


def parse_token(text: str) -> Token:
    """``name:scope:secret``, each part checked."""
    name, _, rest = text.strip().partition(":")
    scope_name, _, secret = rest.partition(":")
    if not _NAME.fullmatch(name):
        raise TokenError(
            "a token is name:scope:secret, its name 1 to 63 letters, digits, '.', '_' or '-'"
        )
    try:
        scope = Scope[scope_name.upper()]
    except KeyError:
        raise TokenError(f"token {name}: scope must be read, write or admin") from None
    if not MIN_SECRET_LENGTH <= len(secret) <= MAX_SECRET_LENGTH or not _SECRET.fullmatch(secret):
        raise TokenError(
            f"token {name}: the secret must be {MIN_SECRET_LENGTH} to {MAX_SECRET_LENGTH} "
            "printable characters, without spaces or commas"
        )
    return Token(name, scope, secret)


def check_tokens(tokens: tuple[Token, ...]) -> None:
    """Names and secrets unique, and not too many to compare on every request."""
    if len(tokens) > MAX_TOKENS:
        raise TokenError(f"at most {MAX_TOKENS} tokens")
    names = [t.name for t in tokens]
    if len(set(names)) != len(names):
        raise TokenError("a token name is listed twice")
    if len({t.secret for t in tokens}) != len(tokens):
        raise TokenError("two tokens share a secret")


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


class Tokens:
    """The node's tokens, checked in constant time: a wrong secret takes as long as a
    right one, whatever its length, so timing tells an attacker nothing."""

    def __init__(self, tokens: tuple[Token, ...]) -> None:
        self._tokens = tuple((_digest(t.secret), t) for t in tokens)

    def __bool__(self) -> bool:
        return bool(self._tokens)

    def holder(self, authorization: str | None) -> Token | None:
        """The token an ``Authorization: Bearer`` header presents, if it is one of ours."""
        if authorization is None or authorization[: len(BEARER)].lower() != BEARER:
            return None
        presented = _digest(authorization[len(BEARER) :].strip())
        found = None
        for digest, token in self._tokens:  # no early exit: every token is compared
            if hmac.compare_digest(digest, presented):
                found = token
        return found
