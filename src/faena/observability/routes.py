"""``GET /metrics``: the Prometheus text format, without authentication (like ``/healthz``;
restrict it at the network or proxy if the numbers are sensitive)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from faena.observability.metrics import CONTENT_TYPE, Metrics


def metrics_router(metrics: Metrics) -> APIRouter:
    router = APIRouter()

    @router.get(
        "/metrics",
        tags=["health"],
        summary="Prometheus metrics (no auth)",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE: {}}}},
    )
    async def scrape() -> Response:
        return Response(await metrics.render(), media_type=CONTENT_TYPE)

    return router
