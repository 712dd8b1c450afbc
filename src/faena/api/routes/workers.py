"""``/v1/workers``: the workers the deployment knows (scope ``jobs:read``), and the tokens remote
workers connect with (``/v1/workers/tokens``, scope ``workers``).

A tenant sees only the workers bound to it (connected with its worker tokens); the operator
(the ``default`` tenant) sees its own and the shared ones: local pools and workers on shared
tokens, which serve every tenant."""

# No `from __future__ import annotations`: FastAPI reads these signatures at definition time.

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from starlette.responses import Response

from faena.api.auth import SCOPE_ADMIN, SCOPE_READ, Authenticator
from faena.api.body import read_body
from faena.api.responses import JsonResponse
from faena.api.routes.jobs import ERRORS
from faena.api.schemas import body_schema, iso
from faena.domain.auth import Principal
from faena.domain.errors import Forbidden
from faena.domain.tenants import OPERATOR_TENANT
from faena.domain.workers import WorkerInfo, WorkerToken
from faena.services.worker_registry import WorkerRegistry
from faena.services.worker_tokens import SHARED_REFUSED, WorkerTokens

SCOPE_WORKERS = "workers"


class TokenIn(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200)]
    shared: bool = Field(
        default=False,
        description="a token whose workers serve every tenant; only an admin key of the "
        "operator's tenant (default) may create one",
    )


TOKEN_IN = TypeAdapter(TokenIn)


class WorkerOut(BaseModel):
    id: str
    kind: str = Field(description="local (a server's pool) or remote (faena worker)")
    state: str = Field(description="connected, draining or disconnected")
    live: bool
    kinds: list[str]
    labels: dict[str, str]
    capacity: dict[str, float]
    load: dict[str, float]
    running: int = Field(description="jobs running there now, of every tenant it serves")
    running_jobs: list[str] = Field(
        description="ids of the caller's tenant's jobs running there, newest first"
    )
    version: str
    host: str
    server: str
    tenant: str | None = Field(
        description="the only tenant whose jobs it runs; null for a shared worker (a local "
        "pool, or a worker on a shared token: it serves every tenant)"
    )
    started_at: str | None
    last_heartbeat: str | None
    idle_kinds: list[str] = Field(
        description="kinds this remote worker offers that no job was submitted for lately "
        "(an hour, as far as this server saw); [] for local pools"
    )


class WorkerListOut(BaseModel):
    workers: list[WorkerOut]


class WorkerTokenOut(BaseModel):
    id: str
    tenant: str
    name: str
    prefix: str
    shared: bool = Field(description="its workers serve every tenant, not only this one")
    created_at: str | None
    revoked_at: str | None


class CreatedWorkerTokenOut(WorkerTokenOut):
    token: str = Field(description="the token itself: shown once")


class WorkerTokenListOut(BaseModel):
    tokens: list[WorkerTokenOut]


def worker_to_json(w: WorkerInfo, live: bool) -> dict[str, Any]:
    return {
        "id": w.id,
        "kind": w.kind.value,
        "state": w.state.value,
        "live": live,
        "kinds": sorted(w.kinds),
        "labels": w.labels,
        "capacity": {
            "slots": w.capacity.slots,
            "cpu_cores": w.capacity.cpu_cores,
            "memory_mb": w.capacity.memory_mb,
        },
        "load": {"cpu_percent": w.load.cpu_percent, "memory_percent": w.load.memory_percent},
        "running": w.load.running,
        "version": w.version,
        "host": w.host,
        "server": w.server,
        "tenant": w.tenant,
        "started_at": iso(w.started_at),
        "last_heartbeat": iso(w.last_heartbeat),
    }


def token_to_json(t: WorkerToken) -> dict[str, Any]:
    return {
        "id": t.id,
        "tenant": t.tenant,
        "name": t.name,
        "prefix": t.prefix,
        "shared": t.shared,
        "created_at": iso(t.created_at),
        "revoked_at": iso(t.revoked_at),
    }


def workers_router(
    registry: WorkerRegistry, tokens: WorkerTokens, auth: Authenticator
) -> APIRouter:
    router = APIRouter(prefix="/v1/workers", tags=["workers"], responses=ERRORS)
    Reader = Annotated[Principal, Depends(auth.require(SCOPE_READ))]
    Manager = Annotated[Principal, Depends(auth.require(SCOPE_WORKERS))]

    @router.get("", response_model=WorkerListOut, summary="List workers (live and recent)")
    async def list_workers(principal: Reader) -> Response:
        now = registry.clock.now()
        found = await registry.recorded(principal.tenant)
        running = await registry.running_jobs(principal.tenant)
        out = []
        for w in found:
            body = worker_to_json(w, w.is_live(now, registry.live_ttl_s))
            body["idle_kinds"] = registry.idle_kinds(w) if body["live"] else []
            body["running_jobs"] = running.get(w.id, []) if body["live"] else []
            out.append(body)
        return JsonResponse({"workers": out})

    @router.post(
        "/tokens",
        status_code=201,
        response_model=CreatedWorkerTokenOut,
        summary="Create a worker token",
        openapi_extra=body_schema(TOKEN_IN),
    )
    async def create_token(request: Request, principal: Manager) -> Response:
        token_in = await read_body(request, TOKEN_IN)
        if token_in.shared and not (
            principal.tenant == OPERATOR_TENANT and principal.has_scope(SCOPE_ADMIN)
        ):
            raise Forbidden(SHARED_REFUSED)
        created = await tokens.create(principal.tenant, token_in.name, shared=token_in.shared)
        return JsonResponse({**token_to_json(created.token), "token": created.plaintext}, 201)

    @router.get("/tokens", response_model=WorkerTokenListOut, summary="List worker tokens")
    async def list_tokens(principal: Manager) -> Response:
        found = await tokens.list(principal.tenant)
        return JsonResponse({"tokens": [token_to_json(t) for t in found]})

    @router.delete(
        "/tokens/{token_id}",
        response_model=WorkerTokenOut,
        summary="Revoke a worker token (its workers are disconnected)",
    )
    async def revoke_token(token_id: str, principal: Manager) -> Response:
        return JsonResponse(token_to_json(await tokens.revoke(principal.tenant, token_id)))

    return router
