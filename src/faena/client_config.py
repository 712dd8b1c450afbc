"""Where a client finds its server and API key.

Arguments win; then ``FAENA_SERVER`` / ``FAENA_API_KEY``; then the defaults: the local server
and the admin key ``faena up`` wrote to ``$FAENA_HOME/admin.key`` (``FAENA_HOME`` defaults to
``./.faena``), so ``faena submit`` works right after ``faena up`` in the same directory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_SERVER = "http://127.0.0.1:8000"
DEFAULT_HOME = ".faena"
ADMIN_KEY_FILE = "admin.key"


@dataclass(frozen=True, slots=True)
class ClientConfig:
    server: str
    api_key: str | None


def resolve_config(
    server: str | None = None,
    api_key: str | None = None,
    env: Mapping[str, str] | None = None,
) -> ClientConfig:
    env = os.environ if env is None else env
    url = server or env.get("FAENA_SERVER") or DEFAULT_SERVER
    key = api_key or env.get("FAENA_API_KEY") or _read_admin_key(env)
    return ClientConfig(server=normalize_server(url), api_key=key or None)


def normalize_server(url: str) -> str:
    """``host:port`` → ``http://host:port``; no trailing slash."""
    url = url.strip()
    if "://" not in url:
        url = "http://" + url
    return url.rstrip("/")


def _read_admin_key(env: Mapping[str, str]) -> str | None:
    path = Path(env.get("FAENA_HOME") or DEFAULT_HOME) / ADMIN_KEY_FILE
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except (OSError, UnicodeDecodeError):
        return None
