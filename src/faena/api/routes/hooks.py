"""Inbound webhooks (``POST /v1/hooks/{token}``, no API key: the token is the credential, with
an optional HMAC signature) and outbound webhook subscriptions and their deliveries."""

# No `from __future__ import annotations`: FastAPI reads these signatures at definition time.

from typing import Annotated

import pydantic
from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from faena.api.auth import TENANT_KEY, Authenticator
from faena.api.body import read_json, validate
from faena.api.responses import JsonResponse
from faena.api.routes.jobs import ERRORS
from faena.api.routes.workflows import SCOPE_WORKFLOWS_READ, SCOPE_WORKFLOWS_WRITE
from faena.api.workflow_json import delivery_to_json, subscription_to_json
from faena.domain.auth import Principal
from faena.domain.errors import ValidationError
from faena.domain.runs import DeliveryState
from faena.services.deliveries import Webhooks
from faena.services.triggers import InboundHooks


class SubscriptionIn(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)

    url: str = pydantic.Field(min_length=1, max_length=2000)
    events: list[str] = pydantic.Field(default_factory=lambda: ["*"])


SUBSCRIPTION_IN = pydantic.TypeAdapter(SubscriptionIn)


def hooks_router(hooks: InboundHooks, webhooks: Webhooks, auth: Authenticator) -> APIRouter:
    router = APIRouter(tags=["webhooks"], responses=ERRORS)
    Reader = Annotated[Principal, Depends(auth.require(SCOPE_WORKFLOWS_READ))]
    Writer = Annotated[Principal, Depends(auth.require(SCOPE_WORKFLOWS_WRITE))]

    @router.post("/v1/hooks/{token}", status_code=202, summary="Start a run from a webhook")
    async def receive(token: str, request: Request) -> Response:
        run, created = await hooks.receive(token, await request.body(), request.headers)
        request.scope[TENANT_KEY] = run.tenant  # the audit entry belongs to the hook's tenant
        body = {
            "run_id": run.id,
            "workflow": run.workflow,
            "state": run.state.value,
            "created": created,
        }
        return JsonResponse(body, status_code=202 if created else 200)

    @router.post("/v1/subscriptions", status_code=201, summary="Subscribe a URL to events")
    async def subscribe(request: Request, principal: Writer) -> Response:
        sub_in = validate(SUBSCRIPTION_IN, await read_json(request))
        sub = await webhooks.subscribe(principal.tenant, sub_in.url, sub_in.events)
        return JsonResponse(subscription_to_json(sub, secret=True), status_code=201)

    @router.get("/v1/subscriptions", summary="List webhook subscriptions")
    async def list_subscriptions(principal: Reader) -> Response:
        found = await webhooks.subscriptions(principal.tenant)
        return JsonResponse({"subscriptions": [subscription_to_json(s) for s in found]})

    @router.delete("/v1/subscriptions/{subscription_id}", status_code=204)
    async def unsubscribe(subscription_id: str, principal: Writer) -> Response:
        await webhooks.unsubscribe(principal.tenant, subscription_id)
        return Response(status_code=204)

    @router.get("/v1/deliveries", summary="Webhook deliveries, newest first")
    async def list_deliveries(
        principal: Reader,
        state: Annotated[str | None, Query(description="pending, delivered or dead")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> Response:
        try:
            wanted = None if not state else DeliveryState(state)
        except ValueError:
            raise ValidationError("query.state: use pending, delivered or dead") from None
        found = await webhooks.deliveries(principal.tenant, wanted, limit)
        return JsonResponse({"deliveries": [delivery_to_json(d) for d in found]})

    @router.post("/v1/deliveries/{delivery_id}/redrive", summary="Retry a dead delivery")
    async def redrive(delivery_id: str, principal: Writer) -> Response:
        return JsonResponse(delivery_to_json(await webhooks.redrive(principal.tenant, delivery_id)))

    return router
