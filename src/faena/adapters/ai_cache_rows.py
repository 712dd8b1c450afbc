"""Row conversions shared by the SQL adapters of the semantic cache: vectors are stored as
float32 little-endian bytes (1.5 KB for 384 dimensions), values as JSON."""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Sequence
from typing import Any

import orjson

from faena.ports.ai_cache import CacheEntry

COLUMNS = "seq, tenant, namespace, key, text, model, vector, value, created_at, expires_at"


def pack(vector: Sequence[float]) -> bytes:
    return struct.pack(f"<{len(vector)}f", *vector)


def unpack(data: bytes) -> array[float]:
    """The stored bytes as an ``array('f')``: loading 100,000 vectors this way costs no Python
    float objects, and NumPy reads the array's buffer directly."""
    vector = array("f", data)
    if sys.byteorder == "big":  # stored little-endian
        vector.byteswap()
    return vector


def entry(row: Any) -> CacheEntry:
    value = row[7]
    return CacheEntry(
        seq=int(row[0]),
        tenant=row[1],
        namespace=row[2],
        key=row[3],
        text=row[4],
        model=row[5],
        vector=unpack(bytes(row[6])),
        value=orjson.loads(value) if isinstance(value, (str, bytes)) else value,
        created_at=float(row[8]),
        expires_at=None if row[9] is None else float(row[9]),
    )
