"""An in-process memo in front of the document cache, so a repeated hit needs no store round
trip: the hit path's time no longer depends on how busy the database server is.

Two maps, both bounded:

- artefact → sha256, per tenant. An artefact's bytes never change, so the mapping is true for
  as long as the artefact exists; an entry expires after ``artefact_ttl_s`` (and is dropped at
  once when this process deletes the artefact), so an artefact deleted on *another* server is
  answered from here for at most that long.
- (tenant, kind, sha256, options digest) → the cached result, kept as JSON bytes (decoded per
  hit, so callers never share a mutable result). A result for a content hash is the same
  wherever it is read, so these need no expiry; least recently used entries go first once
  ``max_bytes`` is reached.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import orjson

from faena.ports.artefacts import CacheKey

DEFAULT_MAX_BYTES = 32 * 1024 * 1024
DEFAULT_ARTEFACT_TTL_S = 30.0
MAX_ARTEFACTS = 100_000


class ResultMemo:
    def __init__(
        self,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        artefact_ttl_s: float = DEFAULT_ARTEFACT_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_bytes = max_bytes
        self.artefact_ttl_s = artefact_ttl_s
        self._clock = clock
        self._shas: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()
        self._results: OrderedDict[CacheKey, bytes] = OrderedDict()
        self._bytes = 0
        self.hits = 0

    def sha_of(self, tenant: str, artefact_id: str) -> str | None:
        key = (tenant, artefact_id)
        found = self._shas.get(key)
        if found is None:
            return None
        if found[1] < self._clock():
            del self._shas[key]
            return None
        return found[0]

    def remember_sha(self, tenant: str, artefact_id: str, sha256: str) -> None:
        if self.artefact_ttl_s <= 0:
            return
        key = (tenant, artefact_id)
        self._shas[key] = (sha256, self._clock() + self.artefact_ttl_s)
        self._shas.move_to_end(key)
        while len(self._shas) > MAX_ARTEFACTS:
            self._shas.popitem(last=False)

    def forget_artefact(self, tenant: str, artefact_id: str) -> None:
        """This process deleted it: never answer for it again."""
        self._shas.pop((tenant, artefact_id), None)

    def result(self, key: CacheKey) -> Any | None:
        found = self._results.get(key)
        if found is None:
            return None
        self._results.move_to_end(key)
        self.hits += 1
        return orjson.loads(found)

    def remember(self, key: CacheKey, result: Any) -> None:
        try:
            encoded = orjson.dumps(result)
        except TypeError:
            return
        if len(encoded) > self.max_bytes // 4:  # one huge document must not flush the rest
            return
        old = self._results.pop(key, None)
        if old is not None:
            self._bytes -= len(old)
        self._results[key] = encoded
        self._bytes += len(encoded)
        while self._bytes > self.max_bytes and self._results:
            _, gone = self._results.popitem(last=False)
            self._bytes -= len(gone)
