"""A2A AgentCards: what validate() accepts (exactly what the SDK's resolver reads back,
plus the spec's REQUIRED fields), the field each refusal names, and terms() on hostile text."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import httpx
import pytest
import ujson
from a2a.client.card_resolver import A2ACardResolver, parse_agent_card
from a2a.server.request_handlers.response_helpers import agent_card_to_dict
from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill
from google.protobuf.json_format import MessageToDict  # type: ignore[import-untyped]

from caxton_actors.registry.cards import (
    MAX_CARD_BYTES,
    MAX_TERM_LENGTH,
    CardError,
    CardTerms,
    terms,
    validate,
    words,
)

# A recipe agent's card in the A2A 1.0 shape, as an A2A framework would publish it.
RECIPE_CARD: dict[str, Any] = {
    "name": "Recipe Agent",
    "description": "Finds recipes for the ingredients you have and scales them to servings.",
    "version": "1.4.0",
    "supportedInterfaces": [
        {
            "url": "https://recipes.example.com/a2a/v1",
            "protocolBinding": "JSONRPC",
            "protocolVersion": "1.0",
        },
        {
            "url": "https://recipes.example.com/a2a/rest",
            "protocolBinding": "HTTP+JSON",
            "protocolVersion": "1.0",
        },
    ],
    "provider": {"organization": "Example Kitchens", "url": "https://example.com"},
    "documentationUrl": "https://recipes.example.com/docs",
    "capabilities": {"streaming": True, "pushNotifications": False},
    "securitySchemes": {
        "bearer": {"httpAuthSecurityScheme": {"scheme": "Bearer", "bearerFormat": "JWT"}}
    },
    "securityRequirements": [{"schemes": {"bearer": {"list": []}}}],
    "defaultInputModes": ["text/plain", "application/json"],
    "defaultOutputModes": ["text/plain", "application/json"],
    "skills": [
        {
            "id": "find_recipe",
            "name": "Find a recipe",
            "description": "Finds recipes that use the given ingredients.",
            "tags": ["cooking", "recipes", "ingredients"],
            "examples": ["What can I cook with eggs, spinach and feta?"],
        },
        {
            "id": "scale_recipe",
            "name": "Scale a recipe",
            "description": "Rescales a recipe's quantities to a number of servings.",
            "tags": ["cooking", "scaling"],
            "inputModes": ["application/json"],
        },
    ],
}

# The same agent in the A2A 0.3 shape, which the SDK's resolver still reads.
RECIPE_CARD_V03: dict[str, Any] = {
    "protocolVersion": "0.3.0",
    "name": "Recipe Agent",
    "description": "Finds recipes for the ingredients you have.",
    "url": "https://recipes.example.com/a2a/v1",
    "preferredTransport": "JSONRPC",
    "additionalInterfaces": [{"url": "https://recipes.example.com/grpc", "transport": "GRPC"}],
    "version": "1.4.0",
    "capabilities": {"streaming": True},
    "securitySchemes": {"key": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
    "security": [{"key": []}],
    "defaultInputModes": ["text/plain"],
    "defaultOutputModes": ["text/plain"],
    "skills": [
        {
            "id": "find_recipe",
            "name": "Find a recipe",
            "description": "Finds recipes that use the given ingredients.",
            "tags": ["cooking"],
        }
    ],
}


def card(**changes: Any) -> dict[str, Any]:
    """The recipe card with top-level fields replaced (``None``: removed)."""
    result = copy.deepcopy(RECIPE_CARD)
    for key, value in changes.items():
        if value is None:
            del result[key]
        else:
            result[key] = value
    return result


def skill(**changes: Any) -> dict[str, Any]:
    """The recipe card whose first skill has these fields replaced (``None``: removed)."""
    result = card()
    for key, value in changes.items():
        if value is None:
            del result["skills"][0][key]
        else:
            result["skills"][0][key] = value
    return result


def refusal(value: object) -> CardError:
    with pytest.raises(CardError) as caught:
        validate(value)
    return caught.value


def test_a_valid_card_round_trips_as_registered() -> None:
    text = validate(RECIPE_CARD)
    assert ujson.loads(text) == RECIPE_CARD
    assert "https://recipes.example.com" in text  # slashes not escaped
    found = terms(text)
    assert found == CardTerms(
        name="Recipe Agent",
        skills=("find_recipe", "scale_recipe"),
        tags=("cooking", "recipes", "ingredients", "scaling"),
        words=tuple(words(RECIPE_CARD["name"] + " " + RECIPE_CARD["description"])),
    )
    assert {"recipe", "agent", "ingredients", "servings"} <= set(found.words)


def test_validate_leaves_the_given_card_alone() -> None:
    given = copy.deepcopy(RECIPE_CARD_V03)
    validate(given)
    assert given == RECIPE_CARD_V03  # the SDK's parser rewrites a copy, not this


def test_the_a2a_0_3_shape_is_accepted() -> None:
    assert terms(validate(RECIPE_CARD_V03)).skills == ("find_recipe",)


def test_a_card_the_sdk_built_validates() -> None:
    built = AgentCard(
        name="Recipe Agent",
        description="Finds recipes.",
        version="2.0.0",
        supported_interfaces=[
            AgentInterface(
                url="http://localhost:9999/",
                protocol_binding="JSONRPC",
                protocol_version="1.0",
            )
        ],
        capabilities=AgentCapabilities(streaming=True),
        default_input_modes=["text"],
        default_output_modes=["text"],
        skills=[
            AgentSkill(id="find", name="Find", description="Finds.", tags=["cooking"]),
        ],
    )
    assert terms(validate(MessageToDict(built))).tags == ("cooking",)


def test_a_card_the_sdk_serves_validates() -> None:
    # What an SDK server publishes: the 1.0 fields merged with the 0.3 ones.
    served = agent_card_to_dict(parse_agent_card(copy.deepcopy(RECIPE_CARD_V03)))
    assert "url" in served
    assert "supportedInterfaces" in served
    assert terms(validate(served)).name == "Recipe Agent"


def test_the_sdk_resolver_reads_back_what_validate_returned() -> None:
    text = validate(RECIPE_CARD_V03)

    def serve(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/agents/recipes/.well-known/agent-card.json"
        return httpx.Response(200, text=text, headers={"content-type": "application/json"})

    async def resolve() -> AgentCard:
        async with httpx.AsyncClient(transport=httpx.MockTransport(serve)) as client:
            resolver = A2ACardResolver(client, base_url="http://node/agents/recipes")
            return await resolver.get_agent_card()

    resolved = asyncio.run(resolve())
    assert resolved.name == "Recipe Agent"
    assert resolved.supported_interfaces[0].url == "https://recipes.example.com/a2a/v1"


@pytest.mark.parametrize(
    "field",
    [
        "name",
        "description",
        "version",
        "capabilities",
        "defaultInputModes",
        "defaultOutputModes",
        "skills",
        "supportedInterfaces",
    ],
)
def test_each_missing_required_field_is_named(field: str) -> None:
    error = refusal(card(**{field: None}))
    assert error.field == f"card.{field}"
    assert str(error).startswith(f"card.{field}: ")


@pytest.mark.parametrize("field", ["id", "name", "description", "tags"])
def test_each_missing_skill_field_is_named(field: str) -> None:
    assert refusal(skill(**{field: None})).field == f"card.skills[0].{field}"


@pytest.mark.parametrize("field", ["url", "protocolBinding", "protocolVersion"])
def test_each_missing_interface_field_is_named(field: str) -> None:
    value = card()
    del value["supportedInterfaces"][1][field]
    assert refusal(value).field == f"card.supportedInterfaces[1].{field}"


def test_empty_lists_and_strings_count_as_missing() -> None:
    assert refusal(card(skills=[])).field == "card.skills"
    assert refusal(card(name="")).field == "card.name"
    assert refusal(skill(tags=[])).field == "card.skills[0].tags"


def test_a_0_3_card_without_url_names_it() -> None:
    value = copy.deepcopy(RECIPE_CARD_V03)
    del value["url"]
    error = refusal(value)
    assert error.field == "card.supportedInterfaces"
    assert "url" in str(error)


def test_a_0_3_card_fault_names_the_0_3_field() -> None:
    value = copy.deepcopy(RECIPE_CARD_V03)
    value["preferredTransport"] = ""
    assert refusal(value).field == "card.preferredTransport"
    value = copy.deepcopy(RECIPE_CARD_V03)
    value["additionalInterfaces"][0]["url"] = ""
    assert refusal(value).field == "card.additionalInterfaces[0].url"
    value = copy.deepcopy(RECIPE_CARD_V03)
    value["url"] = 7
    assert str(refusal(value)) == "card.url: must be a string"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (skill(id=5), "card.skills[0].id: must be a string"),
        (skill(tags="cooking"), "card.skills[0].tags: must be a list"),
        (skill(tags=["cooking", 3]), "card.skills[0].tags[1]: must be a string"),
        (card(skills={"id": "x"}), "card.skills: must be a list"),
        (card(skills=["find_recipe"]), "card.skills[0]: must be an object"),
        (card(name=["Recipe"]), "card.name: must be a string"),
        (card(capabilities=3), "card.capabilities: must be an object"),
        (
            card(capabilities={"streaming": "yes"}),
            "card.capabilities.streaming: must be true or false",
        ),
        (card(defaultInputModes="text"), "card.defaultInputModes: must be a list"),
        (card(securitySchemes={"bearer": 1}), "card.securitySchemes[bearer]: must be an object"),
    ],
)
def test_wrong_types_name_the_field(value: dict[str, Any], message: str) -> None:
    assert str(refusal(value)) == message


def test_a_fault_only_the_sdk_sees_is_still_refused_with_its_field() -> None:
    both = {"httpAuthSecurityScheme": {"scheme": "Bearer"}, "mtlsSecurityScheme": {}}
    error = refusal(card(securitySchemes={"bearer": both}))
    assert error.field == "card.securitySchemes"  # its ParseError names no map key
    assert "oneof" in str(error)


def test_a_required_field_in_a_map_value_is_named_with_its_key() -> None:
    error = refusal(card(securitySchemes={"key": {"type": "apiKey", "in": "header"}}))
    assert str(error) == "card.securitySchemes[key].apiKeySecurityScheme.name: is required"


def test_skill_ids_and_tags_have_a_length_limit() -> None:
    longest = "x" * MAX_TERM_LENGTH
    assert terms(validate(skill(id=longest, tags=[longest]))).skills[0] == longest
    error = refusal(skill(id=longest + "x"))
    assert error.field == "card.skills[0].id"
    assert str(MAX_TERM_LENGTH) in str(error)
    assert refusal(skill(tags=["cooking", ""])).field == "card.skills[0].tags[1]"


def test_an_oversize_card_is_refused_with_the_limit() -> None:
    error = refusal(card(description="x" * MAX_CARD_BYTES))
    assert error.field == "card"
    assert str(MAX_CARD_BYTES) in str(error)
    # The limit counts UTF-8 bytes: 6,000 three-byte characters are 18,000 bytes.
    assert str(MAX_CARD_BYTES) in str(refusal(card(description="€" * 6000)))


@pytest.mark.parametrize("value", [None, "card", ["name"], 3, b"{}"])
def test_a_non_object_is_refused(value: object) -> None:
    assert str(refusal(value)) == "card: must be a JSON object"


@pytest.mark.parametrize(
    "value",
    [
        card(iconUrl=float("nan")),
        card(name="Recipe \ud800"),
        card(signatures={1, 2}),
    ],
)
def test_what_is_not_json_text_is_refused(value: dict[str, Any]) -> None:
    assert refusal(value).field == "card"


def test_deep_nesting_is_refused() -> None:
    nested: dict[str, Any] = {}
    inner = nested
    for _ in range(200):  # Struct values nest freely; protobuf stops at 100
        inner["a"] = {}
        inner = inner["a"]
    extension = {"uri": "https://example.com/ext", "params": nested}
    error = refusal(card(capabilities={"extensions": [extension]}))
    assert error.field.startswith("card.capabilities")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        '"a string"',
        "[1, 2]",
        "null",
        '{"name": "x", "description": "y", "skills": {"id": "a"}}',
        '{"name": "x", "description": "y", "skills": [7]}',
        '{"name": "x", "description": "y", "skills": [{"id": "a", "tags": "t"}]}',
        '{"name": "x", "description": "y", "skills": [{"id": 1, "tags": ["t"]}]}',
        '{"name": 5, "description": "y", "skills": []}',
        '{"name": "x", "description": "y", "skills": []}',
        '{"name": "x"} trailing',
        "[" * 5000 + "]" * 5000,
        '{"a":' * 3000 + "1" + "}" * 3000,
        '"' + "x" * 10_000_000 + '"',
        '{"name": "\\ud800"}',
        "{" + '"k":1e999,' * 10 + '"name":"x"}',
    ],
)
def test_terms_refuses_hostile_text_with_card_error_only(text: str) -> None:
    with pytest.raises(CardError):
        terms(text)


def test_terms_refuses_text_that_is_not_text() -> None:
    with pytest.raises(CardError):
        terms(ujson.dumps(RECIPE_CARD).encode())  # type: ignore[arg-type]


def test_capabilities_are_slugged_to_the_agent_id_pattern() -> None:
    found = CardTerms(
        name="x",
        skills=("find_recipe", "Plan a Meal!", "--hidden", "@@@", "café crème"),
        tags=("cooking", "find_recipe", "v1.2:beta@eu", "   "),
        words=(),
    )
    assert found.capabilities() == (
        "find_recipe",
        "Plan-a-Meal-",
        "hidden",
        "caf-cr-me",
        "cooking",
        "v1.2:beta@eu",
    )


def test_capabilities_are_at_most_64_of_at_most_128_characters() -> None:
    found = CardTerms("x", tuple(f"skill-{i}" for i in range(100)), ("y" * 200,), ())
    capabilities = found.capabilities()
    assert capabilities == tuple(f"skill-{i}" for i in range(64))
    assert CardTerms("x", ("-" + "y" * 200,), (), ()).capabilities() == ("y" * 128,)


def test_words_are_lowercase_distinct_and_in_order() -> None:
    text = "Recipe agent: finds RECIPES, recipes & a plan_b for 2 cooks; naïve Crème brûlée x2"
    assert words(text) == [
        "recipe",
        "agent",
        "finds",
        "recipes",
        "plan",
        "for",
        "cooks",
        "naïve",
        "crème",
        "brûlée",
        "x2",
    ]
    assert words("") == []
    assert words("a b c") == []


def test_words_are_capped() -> None:
    many = " ".join(f"w{i}" for i in range(2000))
    assert words(many) == [f"w{i}" for i in range(512)]
    assert words("y" * (MAX_TERM_LENGTH + 1) + " ok") == ["ok"]
