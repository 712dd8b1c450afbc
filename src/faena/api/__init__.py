"""The HTTP API: a FastAPI app built by :func:`create_app` around the services."""

from faena.api.app import create_app

__all__ = ["create_app"]
