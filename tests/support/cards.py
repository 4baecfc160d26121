"""A2A AgentCards for tests: one valid sample, and variants of it by name and skills."""

from __future__ import annotations

import copy
from typing import Any

RECIPE_CARD: dict[str, Any] = {
    "name": "Recipe Agent",
    "description": "Finds recipes for the ingredients you have.",
    "version": "1.0.0",
    "supportedInterfaces": [
        {"url": "http://127.0.0.1:9999/a2a", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}
    ],
    "capabilities": {},
    "defaultInputModes": ["text/plain"],
    "defaultOutputModes": ["text/plain"],
    "skills": [
        {
            "id": "find-recipe",
            "name": "Find a recipe",
            "description": "A recipe that uses the ingredients given.",
            "tags": ["cooking", "recipes"],
            "examples": ["What can I cook with eggs and spinach?"],
        }
    ],
}


def card(name: str, skills: list[tuple[str, list[str]]]) -> dict[str, Any]:
    """RECIPE_CARD renamed, described as ``The {name} agent.``, with these (id, tags) skills."""
    built = copy.deepcopy(RECIPE_CARD)
    built["name"] = name
    built["description"] = f"The {name} agent."
    built["skills"] = [
        {
            "id": skill_id,
            "name": skill_id.replace("-", " ").capitalize(),
            "description": f"{name}: {skill_id}.",
            "tags": tags,
            "examples": [f"Please {skill_id.replace('-', ' ')}."],
        }
        for skill_id, tags in skills
    ]
    return built
