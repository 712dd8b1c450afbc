"""Time-ordered identifiers.

Job ids are UUIDv7 strings: they sort by creation time as text, which gives cursor pagination
and FIFO order for free, and they are unique across servers without coordination.
"""

from __future__ import annotations

import os
import threading
import time


class _Uuid7Generator:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._seq = 0

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
        """``n`` ids with one draw of randomness (batch submits make thousands at once)."""
        entropy = os.urandom(8 * n)
        with self._lock:
            stamps = [self._next_stamp() for _ in range(n)]
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
