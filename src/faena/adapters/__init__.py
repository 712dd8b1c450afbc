"""Adapters: implementations of the ports, one backend each."""
