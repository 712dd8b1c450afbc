"""Routes of the dashboard: page shells and static assets, nothing tenant-specific.

The pages carry no data: the browser signs in with an API key (kept in ``sessionStorage``)
and every page fetches what it shows from the ``/v1`` JSON API with that key, so the
dashboard sees exactly what the key's tenant and scopes allow and holds no logic of its own.
Assets ship in the package (``faena/ui/static``): no CDN, works offline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

HERE = Path(__file__).parent
PREFIX = "/ui"
# The key lives in sessionStorage: no inline script, no third-party origin may run here.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

# path → (template, navigation entry it highlights, title)
PAGES: dict[str, tuple[str, str, str]] = {
    "": ("overview.html", "overview", "Overview"),
    "/login": ("login.html", "", "Sign in"),
    "/jobs": ("jobs.html", "jobs", "Jobs"),
    "/jobs/{job_id}": ("job.html", "jobs", "Job"),
    "/workflows": ("workflows.html", "workflows", "Workflows"),
    "/workflows/{name}": ("workflow.html", "workflows", "Workflow"),
    "/runs/{run_id}": ("run.html", "workflows", "Run"),
    "/workers": ("workers.html", "workers", "Workers"),
    "/audit": ("audit.html", "audit", "Audit"),
    "/llm": ("llm.html", "llm", "LLM"),
}


def templates() -> Environment:
    return Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def mount_ui(app: FastAPI) -> None:
    """Add ``/ui`` (pages) and ``/ui/static`` (assets) to ``app``, outside the OpenAPI schema."""
    from faena import __version__

    env = templates()

    def page(template: str, nav: str, title: str) -> Any:
        compiled = env.get_template(template)

        async def render(request: Request) -> Response:
            html = compiled.render(
                nav=nav,
                title=title,
                version=__version__,
                prefix=PREFIX,
                params=dict(request.path_params),
            )
            return HTMLResponse(html, headers=SECURITY_HEADERS)

        return render

    async def to_overview(request: Request) -> Response:
        return RedirectResponse(f"{PREFIX}/", status_code=308)

    app.router.routes.append(Route(PREFIX, to_overview, include_in_schema=False))
    for path, (template, nav, title) in PAGES.items():
        app.router.routes.append(
            Route(
                f"{PREFIX}{path or '/'}",
                page(template, nav, title),
                methods=["GET"],
                include_in_schema=False,
            )
        )
    app.router.routes.append(
        Mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="ui-static")
    )
