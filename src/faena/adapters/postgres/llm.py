"""The LlmStore on PostgreSQL, mixed into ``PostgresStore``. A budget reservation locks the
tenant's matching budget rows (``FOR UPDATE``) in one transaction, so two servers cannot both
spend the last of a budget.

Configuration, usage and call listings run under row-level security (``_tenant_connection``,
migration 0010's policies); the per-call path (replay lookup, reservation, settlement, record)
runs as the owner with its own ``WHERE tenant =``, to stay one round trip each."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from faena.adapters import llm_rows as rows
from faena.domain.llm import (
    Budget,
    CallRecord,
    ProviderConfig,
    RoutingPolicy,
    UsageRow,
    roll_period,
)
from faena.ports.llm import BudgetScopes, ReserveParams, ReserveResult, SettleParams, UsageParams

UPSERT_PROVIDER = """INSERT INTO llm_providers (tenant, name, doc, created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant, name)
    DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at"""
PROVIDER = "SELECT tenant, name, doc, created_at, updated_at FROM llm_providers"
UPSERT_POLICY = """INSERT INTO llm_policies (tenant, name, doc, updated_at)
    VALUES ($1, $2, $3, $4)
    ON CONFLICT (tenant, name) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at"""
POLICY = "SELECT tenant, name, doc, updated_at FROM llm_policies"
UPSERT_BUDGET = f"""INSERT INTO llm_budgets ({rows.BUDGET_COLUMNS})
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
    ON CONFLICT (tenant, scope, name) DO UPDATE SET limit_usd = excluded.limit_usd,
    period = excluded.period, on_exhausted = excluded.on_exhausted,
    downgrade_model = excluded.downgrade_model, updated_at = excluded.updated_at
    RETURNING {rows.BUDGET_COLUMNS}"""
BUDGET = f"SELECT {rows.BUDGET_COLUMNS} FROM llm_budgets"
MATCHING = f"""{BUDGET} WHERE tenant = $1
    AND (scope = 'tenant' OR (scope = 'workflow' AND name = $2))
    ORDER BY scope, name FOR UPDATE"""
SET_SPENT = """UPDATE llm_budgets SET spent_usd = $1, period_start = $2
    WHERE tenant = $3 AND scope = $4 AND name = $5"""
INSERT_CALL = f"""INSERT INTO llm_calls ({rows.CALL_COLUMNS})
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
    ON CONFLICT DO NOTHING"""
CALL = f"SELECT {rows.CALL_COLUMNS} FROM llm_calls"
GROUPS = {
    "model": "provider || '/' || model",
    "provider": "provider",
    "job": "coalesce(job_id, '-')",
    "workflow": "coalesce(workflow, '-')",
    "day": "to_char(to_timestamp(created_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
}


class PostgresLlm:
    """The :class:`~faena.ports.llm.LlmStore` operations of the PostgreSQL store."""

    if TYPE_CHECKING:

        def _connection(self, doing: str) -> AbstractAsyncContextManager[Any]: ...

        def _tenant_connection(
            self, tenant: str, doing: str
        ) -> AbstractAsyncContextManager[Any]: ...

    async def put_llm_provider(self, config: ProviderConfig) -> None:
        p = config
        async with self._tenant_connection(p.tenant, "storing an LLM provider") as conn:
            await conn.execute(
                UPSERT_PROVIDER, p.tenant, p.name, rows.provider_doc(p), p.created_at, p.updated_at
            )

    async def get_llm_provider(self, tenant: str, name: str) -> ProviderConfig | None:
        async with self._tenant_connection(tenant, "reading an LLM provider") as conn:
            r = await conn.fetchrow(f"{PROVIDER} WHERE tenant = $1 AND name = $2", tenant, name)
        return rows.provider(*r) if r is not None else None

    async def list_llm_providers(self, tenant: str) -> list[ProviderConfig]:
        async with self._tenant_connection(tenant, "listing LLM providers") as conn:
            found = await conn.fetch(f"{PROVIDER} WHERE tenant = $1 ORDER BY name", tenant)
        return [rows.provider(*r) for r in found]

    async def delete_llm_provider(self, tenant: str, name: str) -> bool:
        sql = "DELETE FROM llm_providers WHERE tenant = $1 AND name = $2"
        return await self._delete(sql, tenant, name)

    async def put_llm_policy(self, policy: RoutingPolicy) -> None:
        p = policy
        async with self._tenant_connection(p.tenant, "storing an LLM policy") as conn:
            await conn.execute(UPSERT_POLICY, p.tenant, p.name, rows.policy_doc(p), p.updated_at)

    async def get_llm_policy(self, tenant: str, name: str) -> RoutingPolicy | None:
        async with self._tenant_connection(tenant, "reading an LLM policy") as conn:
            r = await conn.fetchrow(f"{POLICY} WHERE tenant = $1 AND name = $2", tenant, name)
        return rows.policy(*r) if r is not None else None

    async def list_llm_policies(self, tenant: str) -> list[RoutingPolicy]:
        async with self._tenant_connection(tenant, "listing LLM policies") as conn:
            found = await conn.fetch(f"{POLICY} WHERE tenant = $1 ORDER BY name", tenant)
        return [rows.policy(*r) for r in found]

    async def delete_llm_policy(self, tenant: str, name: str) -> bool:
        sql = "DELETE FROM llm_policies WHERE tenant = $1 AND name = $2"
        return await self._delete(sql, tenant, name)

    async def put_llm_budget(self, budget: Budget) -> Budget:
        async with self._tenant_connection(budget.tenant, "storing an LLM budget") as conn:
            r = await conn.fetchrow(UPSERT_BUDGET, *rows.budget_row(budget))
        return rows.budget(r)

    async def list_llm_budgets(self, tenant: str) -> list[Budget]:
        async with self._tenant_connection(tenant, "listing LLM budgets") as conn:
            found = await conn.fetch(f"{BUDGET} WHERE tenant = $1 ORDER BY scope, name", tenant)
        return [rows.budget(r) for r in found]

    async def delete_llm_budget(self, tenant: str, scope: str, name: str) -> bool:
        sql = "DELETE FROM llm_budgets WHERE tenant = $1 AND scope = $2 AND name = $3"
        return await self._delete(sql, tenant, scope, name)

    async def reserve_llm_budget(self, params: ReserveParams) -> ReserveResult:
        async with self._connection("reserving an LLM budget") as conn, conn.transaction():
            matching = await _locked(conn, params.scopes, params.now)
            exhausted = tuple(b for b in matching if b.spent_usd >= b.limit_usd)
            if exhausted:
                return ReserveResult(exhausted)
            if matching:
                await conn.executemany(
                    SET_SPENT,
                    [
                        (b.spent_usd + params.amount, b.period_start, b.tenant, b.scope, b.name)
                        for b in matching
                    ],
                )
        return ReserveResult()

    async def settle_llm_budget(self, params: SettleParams) -> None:
        async with self._connection("settling an LLM budget") as conn, conn.transaction():
            await _settle(conn, params)

    async def record_llm_call(self, record: CallRecord, settle: SettleParams | None = None) -> bool:
        async with self._connection("recording an LLM call") as conn, conn.transaction():
            if settle is not None:
                await _settle(conn, settle)
            status = await conn.execute(INSERT_CALL, *rows.call_row(record))
        return bool(status.endswith(" 1"))

    async def find_llm_call(self, tenant: str, job_id: str, call_index: int) -> CallRecord | None:
        sql = f"{CALL} WHERE tenant = $1 AND job_id = $2 AND call_index = $3"
        async with self._connection("reading an LLM call") as conn:
            r = await conn.fetchrow(sql, tenant, job_id, call_index)
        return rows.call(r) if r is not None else None

    async def list_llm_calls(self, tenant: str, job_id: str) -> list[CallRecord]:
        sql = f"{CALL} WHERE tenant = $1 AND job_id = $2 ORDER BY call_index, created_at"
        async with self._tenant_connection(tenant, "listing LLM calls") as conn:
            found = await conn.fetch(sql, tenant, job_id)
        return [rows.call(r) for r in found]

    async def llm_usage(self, params: UsageParams) -> list[UsageRow]:
        key = GROUPS[params.group_by]
        sql = f"""SELECT {key} AS k, count(*), sum(tokens_in), sum(tokens_out), sum(cost)
            FROM llm_calls WHERE tenant = $1 AND created_at >= $2 GROUP BY k ORDER BY k"""
        async with self._tenant_connection(params.tenant, "summing LLM usage") as conn:
            found = await conn.fetch(sql, params.tenant, params.since)
        return [
            UsageRow(str(r[0]), int(r[1]), int(r[2]), int(r[3]), round(float(r[4]), 10))
            for r in found
        ]

    async def _delete(self, sql: str, tenant: str, *args: Any) -> bool:
        async with self._tenant_connection(tenant, "deleting an LLM setting") as conn:
            status = await conn.execute(sql, tenant, *args)
        return bool(status != "DELETE 0")


async def _settle(conn: Any, params: SettleParams) -> None:
    matching = await _locked(conn, params.scopes, params.now)
    if matching:
        await conn.executemany(
            SET_SPENT,
            [
                (max(0.0, b.spent_usd + params.delta), b.period_start, b.tenant, b.scope, b.name)
                for b in matching
            ],
        )


async def _locked(conn: Any, scopes: BudgetScopes, now: float) -> list[Budget]:
    found = await conn.fetch(MATCHING, scopes.tenant, scopes.workflow)
    return [roll_period(rows.budget(r), now) for r in found]
