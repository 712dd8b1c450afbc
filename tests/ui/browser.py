"""What the browser tests share: signing in and saving a page's screenshot."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.ui.server import UiServer


def sign_in(page: Any, server: UiServer, key: str | None = None) -> None:
    page.goto(server.url + "/ui/")
    page.wait_for_url(re.compile(r"/ui/login"))
    page.fill("#key", key or server.api_key)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/ui/$"))


def shot(page: Any, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def navigations(page: Any) -> list[str]:
    """The URLs the tab's main frame navigates to from now on (a live page makes none)."""
    seen: list[str] = []

    def navigated(frame: Any) -> None:
        if frame is page.main_frame:
            seen.append(frame.url)

    page.on("framenavigated", navigated)
    return seen


def requests_to(page: Any, path: str) -> list[str]:
    """The URLs of the requests the tab makes to ``path`` (query included) from now on."""
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url) if path in r.url else None)
    return seen
