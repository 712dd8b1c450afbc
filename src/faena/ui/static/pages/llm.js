"use strict";
// The tenant's LLM budgets (spent this period), usage by model over 30 days, and providers.
Faena.page(async ({ paths }) => {
  const { h, api } = Faena;
  if (!paths.has("/v1/llm/usage")) { Faena.flash("This server has no LLM layer."); return; }
  const since = Math.floor(Date.now() / 1000) - 30 * 86400;
  const [budgets, usage, providers] = await Promise.all([
    api("/v1/llm/budgets"), api(`/v1/llm/usage?group_by=model&since=${since}`), api("/v1/llm/providers"),
  ]);
  const usd = (x) => Number(x).toFixed(4);
  Faena.fill(document.querySelector("#budgets tbody"), budgets.budgets.map((b) => h("tr", {},
    h("td", {}, b.scope === "tenant" ? "tenant" : `workflow ${b.name}`), h("td", {}, b.period),
    h("td", { class: "num" }, usd(b.spent_usd)), h("td", { class: "num" }, usd(b.limit_usd)),
    h("td", { class: "num" }, b.limit_usd > 0 ? `${Math.round(100 * b.remaining_usd / b.limit_usd)} %` : "-"),
    h("td", {}, b.on_exhausted === "downgrade" ? `use ${b.downgrade_model}` : "refuse"))), 6, "No budgets.");
  const rows = [...usage.groups, { key: "total", ...usage.total }];
  Faena.fill(document.querySelector("#usage tbody"), usage.groups.length ? rows.map((g) => h("tr", {},
    h("td", {}, g.key), h("td", { class: "num" }, String(g.calls)), h("td", { class: "num" }, String(g.tokens_in)),
    h("td", { class: "num" }, String(g.tokens_out)), h("td", { class: "num" }, usd(g.cost_usd)))) : [], 5, "No calls yet.");
  Faena.fill(document.querySelector("#providers tbody"), providers.providers.map((p) => h("tr", {},
    h("td", {}, p.name), h("td", {}, p.kind), h("td", {}, p.base_url), h("td", {}, p.api_key_secret || "-"),
    h("td", {}, Object.keys(p.models).join(", ") || "-"))), 5, "No providers.");
});
