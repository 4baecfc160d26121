"""A2A AgentCards: the check a card passes to be registered, and the terms it is found by.

A card is stored and served back as the compact JSON text it was registered as, so
``validate`` judges that very text with the official SDK's own card parser, the one
``A2ACardResolver`` runs on a fetched card: a card registered on any node is one the
resolver can read (a card that arrives by gossip was validated by its owner; here it is
only read for its terms, as untrusted text). That parser also takes the A2A 0.3 shape
(``url``, ``preferredTransport``, ``additionalInterfaces``) and maps it onto 1.0's
``supportedInterfaces``, so both shapes are accepted. Protobuf parsing checks types but
not the fields the spec marks REQUIRED; the SDK's ``validate_proto_required_fields`` adds
those.

The SDK costs about 180 ms of imports, so only ``validate`` imports it, on first use;
``terms`` reads what a peer gossiped with ujson alone and trusts none of it.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ujson

if TYPE_CHECKING:
    from google.protobuf.descriptor import (  # type: ignore[import-untyped]
        Descriptor,
        FieldDescriptor,
    )

MAX_CARD_BYTES = 16 * 1024
"""The most a card may take as compact JSON (UTF-8 bytes)."""

MAX_TERM_LENGTH = 128
"""The longest skill id or tag; also the longest word ``words`` keeps."""

MAX_CAPABILITIES = 64
MAX_WORDS = 512

_WORD = re.compile(r"[^\W_]+")
_NOT_ID = re.compile(r"[^A-Za-z0-9._:@-]+")
_FAILED_FIELD = re.compile(r"Failed to parse (\w+) field: ")
_SNAKE = re.compile(r"_([a-z0-9])")
_MAP_KEY = re.compile(r"(\[[^\]]*\])")


class CardError(ValueError):
    """A card that is not one: ``field`` is its path from ``card``, e.g. ``card.skills[0].id``."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class CardTerms:
    """What the registry indexes of a card."""

    name: str
    skills: tuple[str, ...]
    tags: tuple[str, ...]
    words: tuple[str, ...]
    """Distinct, in a tuple (a fifth of a set's size), each string interned: one copy of a
    word for the whole registry. A replica of 10,000 cards of 1.7 KiB grew by 6.4 KiB an
    agent beyond the cards' text with sets of fresh strings, and grows by 2.2 KiB."""

    def capabilities(self) -> tuple[str, ...]:
        """Skill ids then tags, as capabilities for a PUT that gives none: each made to fit
        the agent-id pattern, the empty ones dropped, at most ``MAX_CAPABILITIES``."""
        found: dict[str, None] = {}
        for term in self.skills + self.tags:
            slug = _NOT_ID.sub("-", term).lstrip("._:@-")[:MAX_TERM_LENGTH]
            if slug:
                found[slug] = None
                if len(found) == MAX_CAPABILITIES:
                    break
        return tuple(found)


NO_TERMS = CardTerms("", (), (), ())
"""An agent without a card."""


def words(text: str) -> list[str]:
    """Lowercase words of letters and digits, distinct, in order: the one tokenizer for a
    card's name and description and for a ``q`` query, so they meet on the same words.
    One-letter words match too much to be worth indexing; words longer than
    ``MAX_TERM_LENGTH`` and those past the first ``MAX_WORDS`` are dropped, so a hostile
    description cannot blow up an index."""
    found: dict[str, None] = {}
    for match in _WORD.finditer(text.lower()):
        word = match.group()
        if 1 < len(word) <= MAX_TERM_LENGTH:
            found[sys.intern(word)] = None
            if len(found) == MAX_WORDS:
                break
    return list(found)


def validate(value: object) -> str:
    """The card as compact JSON text, or ``CardError`` naming the first field at fault."""
    if not isinstance(value, dict):
        raise CardError("card", "must be a JSON object")
    try:
        text = ujson.dumps(value, ensure_ascii=False, escape_forward_slashes=False, allow_nan=False)
    except (OverflowError, TypeError, ValueError) as exc:
        raise CardError("card", f"is not JSON: {exc}") from None
    data = _load(text)
    _check_with_sdk(text, data)
    _read(data)
    return text


def terms(card: str) -> CardTerms:
    """The terms of card text ``validate`` returned or a peer sent; ``CardError`` if it
    is malformed in any way."""
    if not isinstance(card, str):
        raise CardError("card", "must be JSON text")
    return _read(_load(card))


def _load(text: str) -> dict[str, Any]:
    """Card text as an object, refused past the size limit before it is parsed."""
    size = len(text)  # never more than its UTF-8 length: a cheap first cut
    if size <= MAX_CARD_BYTES:
        try:
            size = len(text.encode())
        except UnicodeEncodeError:
            raise CardError("card", "is not valid UTF-8 text") from None
    if size > MAX_CARD_BYTES:
        raise CardError(
            "card", f"is {size} bytes as compact JSON, over the limit of {MAX_CARD_BYTES}"
        )
    try:
        data = ujson.loads(text)
    except (ValueError, OverflowError) as exc:
        raise CardError("card", f"is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise CardError("card", "must be a JSON object")
    return data


def _read(data: dict[str, Any]) -> CardTerms:
    """The terms of a parsed card, checking every field they come from."""
    name = _string(data, "name", "card.name")
    description = _string(data, "description", "card.description")
    skills = data.get("skills")
    if not isinstance(skills, list) or not skills:
        raise CardError("card.skills", "must be a list of at least one skill")
    ids: dict[str, None] = {}
    tags: dict[str, None] = {}
    for i, skill in enumerate(skills):
        path = f"card.skills[{i}]"
        if not isinstance(skill, dict):
            raise CardError(path, "must be an object")
        ids[_term(skill.get("id"), f"{path}.id")] = None
        skill_tags = skill.get("tags")
        if not isinstance(skill_tags, list) or not skill_tags:
            raise CardError(f"{path}.tags", "must be a list of at least one tag")
        for j, tag in enumerate(skill_tags):
            tags[_term(tag, f"{path}.tags[{j}]")] = None
    return CardTerms(name, tuple(ids), tuple(tags), tuple(words(f"{name} {description}")))


def _string(data: dict[str, Any], key: str, path: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise CardError(path, "must be a non-empty string")
    return value


def _term(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise CardError(path, "must be a string")
    if not 1 <= len(value) <= MAX_TERM_LENGTH:
        raise CardError(path, f"must be 1 to {MAX_TERM_LENGTH} characters")
    return sys.intern(value)  # skill ids and tags repeat across agents: one copy each


def _check_with_sdk(text: str, data: dict[str, Any]) -> None:
    """Parse ``text`` as ``A2ACardResolver`` does (to a fresh copy: the parser rewrites
    what it is given), then check the fields the spec marks REQUIRED; ``data`` is the same
    card, to name a field at fault."""
    # About 180 ms of imports (a2a.client pulls httpx and pydantic), paid by the first card.
    from a2a.client.card_resolver import parse_agent_card  # noqa: PLC0415
    from a2a.types import AgentCard  # noqa: PLC0415
    from a2a.utils.errors import InvalidParamsError  # noqa: PLC0415
    from a2a.utils.proto_utils import validate_proto_required_fields  # noqa: PLC0415
    from google.protobuf.json_format import ParseError  # type: ignore[import-untyped]  # noqa: PLC0415

    try:
        card = parse_agent_card(ujson.loads(text))
    except ParseError as exc:
        found = _locate(data, AgentCard.DESCRIPTOR, "card") or _legacy(data)
        raise _parse_error(str(exc)) if found is None else CardError(*found) from None
    try:
        validate_proto_required_fields(card)
    except InvalidParamsError as exc:
        first = (exc.data or {}).get("errors", [{}])[0]
        path = _json_path(str(first.get("field", "")), data)
        raise CardError(path, "is required" + _required_hint(path)) from None


def _required_hint(path: str) -> str:
    return " (or, in the A2A 0.3 shape, url)" if path == "card.supportedInterfaces" else ""


def _parse_error(message: str) -> CardError:
    """The SDK's own words when the fields could not be told apart: its ParseError names
    the chain of fields (``Failed to parse skills field: Failed to parse id field: ...``)
    but not list indices."""
    chain = _FAILED_FIELD.findall(message)
    reason = _FAILED_FIELD.sub("", message).rstrip(".") or "does not parse"
    return CardError(".".join(["card", *chain]), reason)


def _locate(data: object, desc: Descriptor, path: str) -> tuple[str, str] | None:
    """The first value whose JSON type does not fit its field, walking as protobuf's JSON
    parser does (unknown keys and nulls skipped), to name the field with its indices."""
    if not isinstance(data, dict):
        return path, "must be an object"
    for key, value in data.items():
        field = desc.fields_by_camelcase_name.get(key) or desc.fields_by_name.get(key)
        if field is None or value is None:
            continue
        where = f"{path}.{key}"
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            if not isinstance(value, dict):
                return where, "must be an object"
            items = [(f"{where}[{k}]", v) for k, v in value.items()]  # as the SDK names them
            field = entry.fields_by_name["value"]
        elif field.is_repeated:
            if not isinstance(value, list):
                return where, "must be a list"
            items = [(f"{where}[{i}]", v) for i, v in enumerate(value)]
        else:
            items = [(where, value)]
        for item_path, item in items:
            found = _locate_value(item, field, item_path)
            if found:
                return found
    return None


def _locate_value(value: object, field: FieldDescriptor, path: str) -> tuple[str, str] | None:
    if field.type == field.TYPE_MESSAGE:
        if field.message_type.full_name.startswith("google.protobuf."):
            return None  # Struct and its kin: any JSON at all
        return _locate(value, field.message_type, path)
    if field.type == field.TYPE_STRING and not isinstance(value, str):
        return path, "must be a string"
    if field.type == field.TYPE_BOOL and not isinstance(value, bool):
        return path, "must be true or false"
    return None


def _legacy(data: dict[str, Any]) -> tuple[str, str] | None:
    """The A2A 0.3 connection fields the SDK maps onto ``supportedInterfaces``."""
    for key in ("url", "preferredTransport", "protocolVersion"):
        if key in data and not isinstance(data[key], str):
            return f"card.{key}", "must be a string"
    extra = data.get("additionalInterfaces") or []
    if not isinstance(extra, list):
        return "card.additionalInterfaces", "must be a list"
    for i, iface in enumerate(extra):
        if not isinstance(iface, dict):
            return f"card.additionalInterfaces[{i}]", "must be an object"
    return None


def _json_path(proto_path: str, data: dict[str, Any]) -> str:
    """``card.`` + the SDK's snake_case field path in the card's own JSON names, and, for
    a card in the 0.3 shape, the 0.3 field an interface was made from."""
    parts = _MAP_KEY.split(proto_path)
    path = "".join(p if p.startswith("[") else _SNAKE.sub(lambda m: m[1].upper(), p) for p in parts)
    legacy = re.fullmatch(r"supportedInterfaces\[(\d+)\]\.(\w+)", path)
    if legacy and "supportedInterfaces" not in data:
        index, name = int(legacy[1]), legacy[2]
        if name == "protocolVersion":
            return "card.protocolVersion"
        if index == 0:
            return "card." + {"url": "url", "protocolBinding": "preferredTransport"}.get(name, name)
        name = {"protocolBinding": "transport"}.get(name, name)
        return f"card.additionalInterfaces[{index - 1}].{name}"
    return f"card.{path}" if path else "card"
