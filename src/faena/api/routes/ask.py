"""``POST /v1/ask``: a sentence → the workflow that fits, its inputs, and (``execute``) a run."""

# No `from __future__ import annotations`: FastAPI reads these signatures at definition time.

from typing import Annotated, Any

import pydantic
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from faena.api.auth import Authenticator
from faena.api.body import read_json, validate
from faena.api.errors import ApiError
from faena.api.responses import JsonResponse
from faena.api.routes.jobs import ERRORS
from faena.api.workflow_json import run_to_json
from faena.domain.auth import Principal
from faena.services.ask import AskService, Plan

SCOPE_READ = "workflows:read"
SCOPE_WRITE = "workflows:write"


class AskIn(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)

    text: str = pydantic.Field(min_length=1, max_length=2000)
    execute: bool = False
    inputs: dict[str, Any] = pydantic.Field(default_factory=dict)


ASK_IN = pydantic.TypeAdapter(AskIn)


def plan_to_json(plan: Plan) -> dict[str, Any]:
    return {
        "workflow": plan.workflow,
        "version": plan.version,
        "similarity": plan.similarity,
        "confirmed_by": plan.confirmed_by,
        "inputs": plan.inputs,
        "missing_inputs": plan.missing_inputs,
        "candidates": [
            {"workflow": c.workflow, "version": c.version, "similarity": c.similarity}
            for c in plan.candidates
        ],
        "executed": plan.run is not None,
        "run": None if plan.run is None else run_to_json(plan.run),
    }


def ask_router(service: AskService, auth: Authenticator) -> APIRouter:
    router = APIRouter(tags=["ask"], responses=ERRORS)
    Reader = Annotated[Principal, Depends(auth.require(SCOPE_READ))]

    @router.post(
        "/v1/ask",
        summary="Pick the workflow a sentence asks for, fill its inputs; optionally start it",
    )
    async def ask(request: Request, principal: Reader) -> Response:
        body = validate(ASK_IN, await read_json(request))
        if body.execute and not principal.has_scope(SCOPE_WRITE):
            raise ApiError(403, "forbidden", f"execute needs the {SCOPE_WRITE!r} scope")
        plan = await service.ask(
            principal.tenant,
            body.text,
            inputs=body.inputs,
            execute=body.execute,
            principal=principal,
        )
        status = 201 if plan.run is not None else 200
        return JsonResponse(plan_to_json(plan), status_code=status)

    return router
