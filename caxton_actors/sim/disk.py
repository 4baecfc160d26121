"""What a node's SQLite file would hold, for a simulated node to restart from.

The node writes its own agents before they enter the registry, and what the
registry stage hands it to persist (:class:`Persist`) behind the merge; a
restarted node loads both. This keeps the same, in memory, with the store's
rules (``registry/store.py``: records keyed by owner and key, a gone owner takes
its records along).
"""

from __future__ import annotations

from caxton_actors.engine.messages import Persist
from caxton_actors.registry.records import AgentRecord, Head


class Disk:
    def __init__(self) -> None:
        self.own: dict[str, AgentRecord] = {}
        """This node's agents by key, as the file gives them back (``Replica.restart``
        numbers them afresh)."""
        self._records: dict[tuple[str, str], AgentRecord] = {}
        self._owners: dict[str, tuple[Head, int]] = {}

    def persist(self, write: Persist) -> None:
        for owner in write.gone:
            self._owners.pop(owner, None)
            for key in [k for k in self._records if k[0] == owner]:
                del self._records[key]
        for key in write.forgotten:
            self._records.pop(key, None)
        for record in write.stored:
            self._records[(record.owner, record.key)] = record
        for head, floor in write.heads:
            self._owners[head.name] = (head, floor)

    def replica(self) -> tuple[list[AgentRecord], list[tuple[Head, int]]]:
        """Other owners' records, and each owner's head and floor."""
        return list(self._records.values()), list(self._owners.values())
