"""Time-ordered identifiers.

Job ids are UUIDv7 strings: they sort by creation time as text, which gives cursor pagination
and FIFO order for free, and they are unique across servers without coordination.
"""

from __future__ import annotations

import os
import threading
import time

_ENTROPY_BYTES = 8192  # one draw from the OS per 1,024 ids


class _Uuid7Generator:
    """The 62 random bits of each id come from the OS in blocks of 1,024 ids rather than a
    system call per id (which also gives up the GIL: under load that cost more than the rest
    of a submit's id work). A forked child drops the block it inherited, so parent and child
    never hand out the same bits."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._seq = 0
        self._entropy = b""
        self._used = 0
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._forget_entropy)

    def _forget_entropy(self) -> None:
        self._lock = threading.Lock()
        self._entropy, self._used = b"", 0

    def _random_bytes(self, n: int) -> bytes:
        """``n`` bytes of OS randomness, never handed out twice (under the lock)."""
        if self._used + n > len(self._entropy):
            self._entropy, self._used = os.urandom(max(n, _ENTROPY_BYTES)), 0
        start, self._used = self._used, self._used + n
        return self._entropy[start : self._used]

    def _next_stamp(self) -> tuple[int, int]:
        ms = time.time_ns() // 1_000_000
        if ms <= self._last_ms:
            self._seq += 1
            if self._seq > 0xFFF:  # counter exhausted: borrow the next millisecond
                self._last_ms += 1
                self._seq = 0
            ms = self._last_ms
        else:
            self._last_ms = ms
            self._seq = 0
        return ms, self._seq

    def many(self, n: int) -> list[str]:
        """``n`` ids (batch submits make thousands at once)."""
        with self._lock:
            stamps = [self._next_stamp() for _ in range(n)]
            entropy = self._random_bytes(8 * n)
        out = []
        for i, (ms, seq) in enumerate(stamps):
            rand = int.from_bytes(entropy[8 * i : 8 * i + 8], "big") & 0x3FFF_FFFF_FFFF_FFFF
            value = (ms << 80) | (0x7 << 76) | (seq << 64) | (0b10 << 62) | rand
            h = f"{value:032x}"
            out.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
        return out

    def __call__(self) -> str:
        return self.many(1)[0]


new_id = _Uuid7Generator()
"""A UUIDv7 string, monotonic within this process (a 12-bit counter orders same-ms ids)."""

new_ids = new_id.many
"""``n`` UUIDv7 strings in creation order."""
