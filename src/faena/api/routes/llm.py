"""``/v1/llm``: a tenant's providers, routing policies and budgets (scope ``admin`` to change,
``jobs:read`` to read), its usage and the recorded calls of a job. The routes only translate
HTTP; :mod:`faena.services.llm` decides and :mod:`faena.domain.llm_parse` checks bodies."""

# No `from __future__ import annotations`: FastAPI reads these signatures at definition time.

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from faena.api.auth import SCOPE_ADMIN, SCOPE_READ, Authenticator
from faena.api.body import read_json
from faena.api.responses import JsonResponse
from faena.api.routes.jobs import ERRORS
from faena.domain.auth import Principal
from faena.domain.errors import ValidationError
from faena.domain.llm import Budget, CallRecord, ProviderConfig, RoutingPolicy
from faena.domain.llm_parse import parse_budget, parse_policy, parse_provider
from faena.ports.clock import Clock, SystemClock
from faena.services.llm import LlmService


def provider_json(p: ProviderConfig) -> dict[str, Any]:
    return {
        "name": p.name,
        "kind": p.kind,
        "base_url": p.base_url,
        "api_key_secret": p.api_key_secret,
        "models": {
            m: {"input_per_mtok": price.input_per_mtok, "output_per_mtok": price.output_per_mtok}
            for m, price in p.models.items()
        },
        "timeout_s": p.timeout_s,
        "max_retries": p.max_retries,
        "created_at": _iso(p.created_at),
        "updated_at": _iso(p.updated_at),
    }


def policy_json(p: RoutingPolicy) -> dict[str, Any]:
    return {
        "name": p.name,
        "tiers": [
            {
                "model": t.model,
                "fallbacks": list(t.fallbacks),
                "max_prompt_chars": t.max_prompt_chars,
            }
            for t in p.tiers
        ],
        "updated_at": _iso(p.updated_at),
    }


def budget_json(b: Budget) -> dict[str, Any]:
    return {
        "scope": b.scope,
        "name": b.name,
        "limit_usd": b.limit_usd,
        "spent_usd": round(b.spent_usd, 6),
        "remaining_usd": round(max(0.0, b.limit_usd - b.spent_usd), 6),
        "period": b.period,
        "period_start": _iso(b.period_start) if b.period_start else None,
        "on_exhausted": b.on_exhausted,
        "downgrade_model": b.downgrade_model,
    }


def call_json(c: CallRecord) -> dict[str, Any]:
    return {
        "id": c.id,
        "job_id": c.job_id,
        "attempt": c.attempt,
        "call_index": c.call_index,
        "provider": c.provider,
        "model": c.model,
        "tokens_in": c.tokens_in,
        "tokens_out": c.tokens_out,
        "cost_usd": c.cost,
        "latency_ms": c.latency_ms,
        "workflow": c.workflow,
        "request_hash": c.request_hash,
        "guardrails": c.response.get("guardrails", []),
        "created_at": _iso(c.created_at),
    }


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat().replace("+00:00", "Z")


def _since(value: str | None) -> float:
    if value is None or value == "":
        return 0.0
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(
            f"since must be epoch seconds or an ISO 8601 time, not {value!r}"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def llm_router(service: LlmService, auth: Authenticator, clock: Clock | None = None) -> APIRouter:
    router = APIRouter(tags=["llm"], responses=ERRORS)
    Reader = Annotated[Principal, Depends(auth.require(SCOPE_READ))]
    Admin = Annotated[Principal, Depends(auth.require(SCOPE_ADMIN))]
    now = (clock or SystemClock()).now

    @router.put("/v1/llm/providers/{name}", summary="Add or replace an LLM provider")
    async def put_provider(name: str, request: Request, principal: Admin) -> Response:
        config = parse_provider(principal.tenant, name, await read_json(request), now())
        return JsonResponse(provider_json(await service.put_provider(config)))

    @router.get("/v1/llm/providers", summary="The tenant's LLM providers")
    async def list_providers(principal: Reader) -> Response:
        found = await service.list_providers(principal.tenant)
        return JsonResponse({"providers": [provider_json(p) for p in found]})

    @router.get("/v1/llm/providers/{name}", summary="One LLM provider")
    async def get_provider(name: str, principal: Reader) -> Response:
        return JsonResponse(provider_json(await service.get_provider(principal.tenant, name)))

    @router.delete("/v1/llm/providers/{name}", summary="Remove a provider")
    async def delete_provider(name: str, principal: Admin) -> Response:
        await service.delete_provider(principal.tenant, name)
        return JsonResponse({"deleted": "provider", "name": name})

    @router.put("/v1/llm/policies/{name}", summary="Add or replace a routing policy")
    async def put_policy(name: str, request: Request, principal: Admin) -> Response:
        policy = parse_policy(principal.tenant, name, await read_json(request), now())
        return JsonResponse(policy_json(await service.put_policy(policy)))

    @router.get("/v1/llm/policies", summary="The tenant's routing policies")
    async def list_policies(principal: Reader) -> Response:
        found = await service.list_policies(principal.tenant)
        return JsonResponse({"policies": [policy_json(p) for p in found]})

    @router.get("/v1/llm/policies/{name}", summary="One routing policy")
    async def get_policy(name: str, principal: Reader) -> Response:
        return JsonResponse(policy_json(await service.get_policy(principal.tenant, name)))

    @router.delete("/v1/llm/policies/{name}", summary="Remove a policy")
    async def delete_policy(name: str, principal: Admin) -> Response:
        await service.delete_policy(principal.tenant, name)
        return JsonResponse({"deleted": "policy", "name": name})

    @router.put(
        "/v1/llm/budgets",
        summary='Set budgets: {"budgets": [{scope, name, limit_usd, period, on_exhausted}]}',
    )
    async def put_budgets(request: Request, principal: Admin) -> Response:
        body = await read_json(request)
        raw = body.get("budgets") if isinstance(body, dict) else None
        if not isinstance(raw, list) or not raw:
            raise ValidationError('body must be {"budgets": [ ... ]} with at least one budget')
        budgets = [parse_budget(principal.tenant, b, now()) for b in raw]
        saved = await service.put_budgets(budgets)
        return JsonResponse({"budgets": [budget_json(b) for b in saved]})

    @router.get("/v1/llm/budgets", summary="Budgets with what is spent this period")
    async def list_budgets(principal: Reader) -> Response:
        found = await service.list_budgets(principal.tenant)
        return JsonResponse({"budgets": [budget_json(b) for b in found]})

    @router.delete("/v1/llm/budgets/{scope}/{name}", summary="Remove a budget")
    async def delete_budget(scope: str, name: str, principal: Admin) -> Response:
        await service.delete_budget(principal.tenant, scope, name)
        return JsonResponse({"deleted": "budget", "scope": scope, "name": name})

    @router.get("/v1/llm/usage", summary="Tokens and cost of the tenant's LLM calls, grouped")
    async def usage(
        principal: Reader,
        since: Annotated[str | None, Query()] = None,
        group_by: Annotated[str, Query()] = "model",
    ) -> Response:
        rows = await service.usage(principal.tenant, since=_since(since), group_by=group_by)
        total = {
            "calls": sum(r.calls for r in rows),
            "tokens_in": sum(r.tokens_in for r in rows),
            "tokens_out": sum(r.tokens_out for r in rows),
            "cost_usd": round(sum(r.cost for r in rows), 6),
        }
        return JsonResponse(
            {
                "group_by": group_by,
                "groups": [
                    {
                        "key": r.key,
                        "calls": r.calls,
                        "tokens_in": r.tokens_in,
                        "tokens_out": r.tokens_out,
                        "cost_usd": round(r.cost, 6),
                    }
                    for r in rows
                ],
                "total": total,
            }
        )

    @router.get("/v1/llm/calls", summary="The recorded LLM calls of a job")
    async def calls(principal: Reader, job_id: Annotated[str, Query(min_length=1)]) -> Response:
        found = await service.calls(principal.tenant, job_id)
        return JsonResponse({"calls": [call_json(c) for c in found]})

    return router


def include_llm(app: Any, llm: LlmService | None, auth: Authenticator) -> None:
    """Mount ``/v1/llm`` when the server has an LLM service."""
    if llm is not None:
        app.include_router(llm_router(llm, auth))
