"""The LlmStore in memory, mixed into :class:`~faena.adapters.memory.store.MemoryStore`.
Every operation runs without awaiting, so each is atomic on the event loop."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from faena.domain.llm import (
    Budget,
    CallRecord,
    ProviderConfig,
    RoutingPolicy,
    UsageRow,
    budget_applies,
    roll_period,
    usage_key,
)
from faena.ports.llm import (
    BudgetScopes,
    ReserveParams,
    ReserveResult,
    SettleParams,
    UsageParams,
)


@dataclass
class _LlmState:
    providers: dict[tuple[str, str], ProviderConfig] = field(default_factory=dict)
    policies: dict[tuple[str, str], RoutingPolicy] = field(default_factory=dict)
    budgets: dict[tuple[str, str, str], Budget] = field(default_factory=dict)
    calls: list[CallRecord] = field(default_factory=list)
    by_key: dict[tuple[str, str, int], CallRecord] = field(default_factory=dict)


class MemoryLlm:
    """The :class:`~faena.ports.llm.LlmStore` operations of the in-memory store."""

    def _llm(self) -> _LlmState:
        state = self.__dict__.get("_llm_state")
        if state is None:
            state = self.__dict__["_llm_state"] = _LlmState()
        return state

    async def put_llm_provider(self, config: ProviderConfig) -> None:
        providers = self._llm().providers
        old = providers.get((config.tenant, config.name))
        if old is not None:
            config = replace(config, created_at=old.created_at)
        providers[(config.tenant, config.name)] = config

    async def get_llm_provider(self, tenant: str, name: str) -> ProviderConfig | None:
        return self._llm().providers.get((tenant, name))

    async def list_llm_providers(self, tenant: str) -> list[ProviderConfig]:
        return [p for k, p in sorted(self._llm().providers.items()) if k[0] == tenant]

    async def delete_llm_provider(self, tenant: str, name: str) -> bool:
        return self._llm().providers.pop((tenant, name), None) is not None

    async def put_llm_policy(self, policy: RoutingPolicy) -> None:
        self._llm().policies[(policy.tenant, policy.name)] = policy

    async def get_llm_policy(self, tenant: str, name: str) -> RoutingPolicy | None:
        return self._llm().policies.get((tenant, name))

    async def list_llm_policies(self, tenant: str) -> list[RoutingPolicy]:
        return [p for k, p in sorted(self._llm().policies.items()) if k[0] == tenant]

    async def delete_llm_policy(self, tenant: str, name: str) -> bool:
        return self._llm().policies.pop((tenant, name), None) is not None

    async def put_llm_budget(self, budget: Budget) -> Budget:
        budgets = self._llm().budgets
        key = (budget.tenant, budget.scope, budget.name)
        old = budgets.get(key)
        if old is not None:
            budget = replace(budget, spent_usd=old.spent_usd, period_start=old.period_start)
        budgets[key] = budget
        return budget

    async def list_llm_budgets(self, tenant: str) -> list[Budget]:
        return [b for k, b in sorted(self._llm().budgets.items()) if k[0] == tenant]

    async def delete_llm_budget(self, tenant: str, scope: str, name: str) -> bool:
        return self._llm().budgets.pop((tenant, scope, name), None) is not None

    def _matching(self, scopes: BudgetScopes, now: float) -> list[Budget]:
        budgets = self._llm().budgets
        found = []
        for key, old in budgets.items():
            if budget_applies(old, scopes.tenant, scopes.workflow):
                budgets[key] = roll_period(old, now)
                found.append(budgets[key])
        return found

    async def reserve_llm_budget(self, params: ReserveParams) -> ReserveResult:
        matching = self._matching(params.scopes, params.now)
        exhausted = tuple(b for b in matching if b.spent_usd >= b.limit_usd)
        if exhausted:
            return ReserveResult(exhausted)
        budgets = self._llm().budgets
        for b in matching:
            budgets[(b.tenant, b.scope, b.name)] = replace(b, spent_usd=b.spent_usd + params.amount)
        return ReserveResult()

    async def settle_llm_budget(self, params: SettleParams) -> None:
        budgets = self._llm().budgets
        for b in self._matching(params.scopes, params.now):
            budgets[(b.tenant, b.scope, b.name)] = replace(
                b, spent_usd=max(0.0, b.spent_usd + params.delta)
            )

    async def record_llm_call(self, record: CallRecord, settle: SettleParams | None = None) -> bool:
        if settle is not None:
            await self.settle_llm_budget(settle)
        state = self._llm()
        if record.job_id is not None:
            key = (record.tenant, record.job_id, record.call_index)
            if key in state.by_key:
                return False
            state.by_key[key] = record
        state.calls.append(record)
        return True

    async def find_llm_call(self, tenant: str, job_id: str, call_index: int) -> CallRecord | None:
        return self._llm().by_key.get((tenant, job_id, call_index))

    async def list_llm_calls(self, tenant: str, job_id: str) -> list[CallRecord]:
        calls = [c for c in self._llm().calls if c.tenant == tenant and c.job_id == job_id]
        return sorted(calls, key=lambda c: c.call_index)

    async def llm_usage(self, params: UsageParams) -> list[UsageRow]:
        rows: dict[str, list[float]] = {}
        for c in self._llm().calls:
            if c.tenant != params.tenant or c.created_at < params.since:
                continue
            acc = rows.setdefault(usage_key(c, params.group_by), [0, 0, 0, 0.0])
            acc[0] += 1
            acc[1] += c.tokens_in
            acc[2] += c.tokens_out
            acc[3] += c.cost
        return [
            UsageRow(k, int(v[0]), int(v[1]), int(v[2]), round(v[3], 10))
            for k, v in sorted(rows.items())
        ]
