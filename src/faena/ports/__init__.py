"""Ports: the interfaces services depend on and adapters implement."""
