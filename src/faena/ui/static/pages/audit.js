"use strict";
// Audit log (when the server has one): a table of entries, filtered by text.
Faena.page(async ({ paths }) => {
  const { h, api } = Faena;
  if (!paths.has("/v1/audit")) { Faena.flash("This server has no audit log yet."); return; }
  const body = await api("/v1/audit?limit=500");
  const entries = Array.isArray(body) ? body : body.entries || body.events || body.audit || [];
  const columns = entries.length ? Object.keys(entries[0]) : [];
  document.querySelector("#audit thead").replaceChildren(h("tr", {}, ...columns.map((c) => h("th", {}, c))));
  const rows = entries.map((e) => ({ text: JSON.stringify(e).toLowerCase(),
    tr: h("tr", {}, ...columns.map((c) => h("td", {}, typeof e[c] === "object" && e[c] !== null ? JSON.stringify(e[c]) : String(e[c] ?? "")))) }));
  const tbody = document.querySelector("#audit tbody");
  const show = (q) => Faena.fill(tbody, rows.filter((r) => !q || r.text.includes(q)).map((r) => r.tr), Math.max(columns.length, 1), "No entries.");
  show("");
  document.getElementById("filters").elements.q.addEventListener("input", (e) => show(e.target.value.toLowerCase()));
});
