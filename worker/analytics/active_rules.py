"""The rules document workers route with now: the active version in Redis, else the rules file.

Reports read experiment weights from it and ``routeq suggest`` writes its proposals on top of
it, so both must see what the workers see: with no active version, that is ``$ROUTEQ_RULES`` or
the shipped rules (as ``worker/serve.py`` loads them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from producer_client.keys import Keys
from worker.shipped import rules_file


@dataclass(frozen=True)
class ActiveRules:
    doc: Mapping[str, Any]
    number: int | None  # the active version in Redis; None: the rules file
    source: str  # for people: "rules version 3 (Redis)" or the file's path

    def experiment(self, name: str) -> Mapping[str, Any] | None:
        """The experiment block named ``name``, as written in the document."""
        for raw in self.doc.get("experiments") or ():
            if isinstance(raw, Mapping) and raw.get("name") == name:
                return raw
        return None


async def active_rules(redis: Redis, keys: Keys) -> ActiveRules:
    from worker.rules_store import RulesStore

    store = RulesStore(redis, keys)
    number = await store.active()
    if number is not None:
        stored = await store.get(number)
        return ActiveRules(stored.doc, number, f"rules version {number} (Redis)")
    path = rules_file()
    return ActiveRules(orjson.loads(path.read_bytes()), None, str(path))
