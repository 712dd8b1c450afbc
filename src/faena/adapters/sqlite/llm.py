"""The LlmStore on SQLite, mixed into ``SqliteStore``: writes on the writer thread in
``BEGIN IMMEDIATE`` transactions (so a budget check-and-reserve is atomic across processes),
reads on the reader thread."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from faena.adapters import llm_rows as rows
from faena.adapters.sqlite.connection import transaction
from faena.domain.llm import (
    Budget,
    CallRecord,
    ProviderConfig,
    RoutingPolicy,
    UsageRow,
    roll_period,
)
from faena.ports.llm import BudgetScopes, ReserveParams, ReserveResult, SettleParams, UsageParams

A = TypeVar("A")
T = TypeVar("T")

UPSERT_PROVIDER = """INSERT INTO llm_providers (tenant, name, doc, created_at, updated_at)
    VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant, name)
    DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at"""
PROVIDER = "SELECT tenant, name, doc, created_at, updated_at FROM llm_providers"
UPSERT_POLICY = """INSERT INTO llm_policies (tenant, name, doc, updated_at) VALUES (?, ?, ?, ?)
    ON CONFLICT (tenant, name) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at"""
POLICY = "SELECT tenant, name, doc, updated_at FROM llm_policies"
UPSERT_BUDGET = f"""INSERT INTO llm_budgets ({rows.BUDGET_COLUMNS}) VALUES ({", ".join("?" * 10)})
    ON CONFLICT (tenant, scope, name) DO UPDATE SET limit_usd = excluded.limit_usd,
    period = excluded.period, on_exhausted = excluded.on_exhausted,
    downgrade_model = excluded.downgrade_model, updated_at = excluded.updated_at"""
BUDGET = f"SELECT {rows.BUDGET_COLUMNS} FROM llm_budgets"
MATCHING = (
    f"""{BUDGET} WHERE tenant = ? AND (scope = 'tenant' OR (scope = 'workflow' AND name = ?))"""
)
SET_SPENT = """UPDATE llm_budgets SET spent_usd = ?, period_start = ?
    WHERE tenant = ? AND scope = ? AND name = ?"""
INSERT_CALL = f"""INSERT INTO llm_calls ({rows.CALL_COLUMNS}) VALUES ({", ".join("?" * 15)})
    ON CONFLICT DO NOTHING"""
CALL = f"SELECT {rows.CALL_COLUMNS} FROM llm_calls"
GROUPS = {
    "model": "provider || '/' || model",
    "provider": "provider",
    "job": "coalesce(job_id, '-')",
    "workflow": "coalesce(workflow, '-')",
    "day": "date(created_at, 'unixepoch')",
}


def _put_provider(conn: sqlite3.Connection, p: ProviderConfig) -> None:
    conn.execute(
        UPSERT_PROVIDER, (p.tenant, p.name, rows.provider_doc(p), p.created_at, p.updated_at)
    )


def _put_policy(conn: sqlite3.Connection, p: RoutingPolicy) -> None:
    conn.execute(UPSERT_POLICY, (p.tenant, p.name, rows.policy_doc(p), p.updated_at))


def _put_budget(conn: sqlite3.Connection, b: Budget) -> Budget:
    with transaction(conn):
        conn.execute(UPSERT_BUDGET, rows.budget_row(b))
        row = conn.execute(
            f"{BUDGET} WHERE tenant = ? AND scope = ? AND name = ?", (b.tenant, b.scope, b.name)
        ).fetchone()
    return rows.budget(row)


def _delete(conn: sqlite3.Connection, arg: tuple[str, tuple[Any, ...]]) -> bool:
    return conn.execute(arg[0], arg[1]).rowcount > 0


def _rolled(conn: sqlite3.Connection, scopes: BudgetScopes, now: float) -> list[Budget]:
    found = conn.execute(MATCHING, (scopes.tenant, scopes.workflow)).fetchall()
    return [roll_period(rows.budget(r), now) for r in found]


def _reserve(conn: sqlite3.Connection, p: ReserveParams) -> ReserveResult:
    with transaction(conn):
        matching = _rolled(conn, p.scopes, p.now)
        exhausted = tuple(b for b in matching if b.spent_usd >= b.limit_usd)
        if exhausted:
            return ReserveResult(exhausted)
        conn.executemany(
            SET_SPENT,
            [(b.spent_usd + p.amount, b.period_start, b.tenant, b.scope, b.name) for b in matching],
        )
    return ReserveResult()


def _settle_in(conn: sqlite3.Connection, p: SettleParams) -> None:
    conn.executemany(
        SET_SPENT,
        [
            (max(0.0, b.spent_usd + p.delta), b.period_start, b.tenant, b.scope, b.name)
            for b in _rolled(conn, p.scopes, p.now)
        ],
    )


def _settle(conn: sqlite3.Connection, p: SettleParams) -> None:
    with transaction(conn):
        _settle_in(conn, p)


def _record(conn: sqlite3.Connection, arg: tuple[CallRecord, SettleParams | None]) -> bool:
    record, settle = arg
    with transaction(conn):
        if settle is not None:
            _settle_in(conn, settle)
        return conn.execute(INSERT_CALL, rows.call_row(record)).rowcount > 0


def _usage(conn: sqlite3.Connection, p: UsageParams) -> list[UsageRow]:
    key = GROUPS[p.group_by]
    sql = f"""SELECT {key} AS k, count(*), sum(tokens_in), sum(tokens_out), sum(cost)
        FROM llm_calls WHERE tenant = ? AND created_at >= ? GROUP BY k ORDER BY k"""
    return [
        UsageRow(str(r[0]), int(r[1]), int(r[2]), int(r[3]), round(float(r[4]), 10))
        for r in conn.execute(sql, (p.tenant, p.since)).fetchall()
    ]


def _select(conn: sqlite3.Connection, arg: tuple[str, tuple[Any, ...]]) -> list[Any]:
    return conn.execute(arg[0], arg[1]).fetchall()


class SqliteLlm:
    """The :class:`~faena.ports.llm.LlmStore` operations of the SQLite store."""

    if TYPE_CHECKING:

        async def _write(self, op: Callable[[sqlite3.Connection, A], T], arg: A) -> T: ...

        async def _read(self, op: Callable[[sqlite3.Connection, A], T], arg: A) -> T: ...

    async def put_llm_provider(self, config: ProviderConfig) -> None:
        await self._write(_put_provider, config)

    async def get_llm_provider(self, tenant: str, name: str) -> ProviderConfig | None:
        found = await self._read(
            _select, (f"{PROVIDER} WHERE tenant = ? AND name = ?", (tenant, name))
        )
        return rows.provider(*found[0]) if found else None

    async def list_llm_providers(self, tenant: str) -> list[ProviderConfig]:
        found = await self._read(_select, (f"{PROVIDER} WHERE tenant = ? ORDER BY name", (tenant,)))
        return [rows.provider(*r) for r in found]

    async def delete_llm_provider(self, tenant: str, name: str) -> bool:
        sql = "DELETE FROM llm_providers WHERE tenant = ? AND name = ?"
        return await self._write(_delete, (sql, (tenant, name)))

    async def put_llm_policy(self, policy: RoutingPolicy) -> None:
        await self._write(_put_policy, policy)

    async def get_llm_policy(self, tenant: str, name: str) -> RoutingPolicy | None:
        found = await self._read(
            _select, (f"{POLICY} WHERE tenant = ? AND name = ?", (tenant, name))
        )
        return rows.policy(*found[0]) if found else None

    async def list_llm_policies(self, tenant: str) -> list[RoutingPolicy]:
        found = await self._read(_select, (f"{POLICY} WHERE tenant = ? ORDER BY name", (tenant,)))
        return [rows.policy(*r) for r in found]

    async def delete_llm_policy(self, tenant: str, name: str) -> bool:
        sql = "DELETE FROM llm_policies WHERE tenant = ? AND name = ?"
        return await self._write(_delete, (sql, (tenant, name)))

    async def put_llm_budget(self, budget: Budget) -> Budget:
        return await self._write(_put_budget, budget)

    async def list_llm_budgets(self, tenant: str) -> list[Budget]:
        sql = f"{BUDGET} WHERE tenant = ? ORDER BY scope, name"
        return [rows.budget(r) for r in await self._read(_select, (sql, (tenant,)))]

    async def delete_llm_budget(self, tenant: str, scope: str, name: str) -> bool:
        sql = "DELETE FROM llm_budgets WHERE tenant = ? AND scope = ? AND name = ?"
        return await self._write(_delete, (sql, (tenant, scope, name)))

    async def reserve_llm_budget(self, params: ReserveParams) -> ReserveResult:
        return await self._write(_reserve, params)

    async def settle_llm_budget(self, params: SettleParams) -> None:
        await self._write(_settle, params)

    async def record_llm_call(self, record: CallRecord, settle: SettleParams | None = None) -> bool:
        return await self._write(_record, (record, settle))

    async def find_llm_call(self, tenant: str, job_id: str, call_index: int) -> CallRecord | None:
        sql = f"{CALL} WHERE tenant = ? AND job_id = ? AND call_index = ?"
        found = await self._read(_select, (sql, (tenant, job_id, call_index)))
        return rows.call(found[0]) if found else None

    async def list_llm_calls(self, tenant: str, job_id: str) -> list[CallRecord]:
        sql = f"{CALL} WHERE tenant = ? AND job_id = ? ORDER BY call_index, created_at"
        return [rows.call(r) for r in await self._read(_select, (sql, (tenant, job_id)))]

    async def llm_usage(self, params: UsageParams) -> list[UsageRow]:
        return await self._read(_usage, params)
