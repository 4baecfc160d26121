"""What a lookup or a watch asks of the registry: one scope, and terms that all must hold.

One object, so that a page (``Replica.page``) and a watch (``registry/watch.py``) select
agents by the same rule: a page walks the indexes of these terms, a watch tests each
change against them with :meth:`Query.matches`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from caxton_actors.registry.cards import CardTerms
from caxton_actors.registry.records import DEFAULT_SCOPE

CAPABILITY, SKILL, TAG, WORD = INDEXED = ("capability", "skill", "tag", "word")
"""The kinds of term the replica indexes."""


@dataclass(frozen=True, slots=True)
class Query:
    scope: str = DEFAULT_SCOPE
    capability: str | None = None
    skill: str | None = None
    tag: str | None = None
    words: tuple[str, ...] = ()
    """Words of the card's name and description (``cards.words``): every one must be there."""

    def terms(self) -> Iterator[tuple[str, str]]:
        """(kind, term) of each condition, as the replica indexes them."""
        for kind, term in ((CAPABILITY, self.capability), (SKILL, self.skill), (TAG, self.tag)):
            if term is not None:
                yield kind, term
        for word in self.words:
            yield WORD, word

    def matches(self, scope: str, capabilities: tuple[str, ...], terms: CardTerms) -> bool:
        """Whether an agent of ``scope`` with these capabilities and card terms is in."""
        return (
            scope == self.scope
            and (self.capability is None or self.capability in capabilities)
            and (self.skill is None or self.skill in terms.skills)
            and (self.tag is None or self.tag in terms.tags)
            and all(word in terms.words for word in self.words)
        )
