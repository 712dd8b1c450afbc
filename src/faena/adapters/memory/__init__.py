"""The in-memory store: the reference JobStore, shipped to users through ``faena.testing``."""

from faena.adapters.memory.store import MemoryStore

__all__ = ["MemoryStore"]
