"use strict";
// The tenant's audit log (GET /v1/audit, scope audit:read): newest first, filtered by action,
// outcome, key prefix and time, older pages by cursor. A server without the audit API (404) or
// a key without the scope (403) gets a clear message instead of an empty table. Live over
// WS /v1/events (audit.written, sent only to keys with audit:read): the first page is read
// again as entries are written; with older pages shown, a notice offers to.
Faena.page(async () => {
  const { h, api, when, fill, flash } = Faena;
  const form = document.getElementById("filters");
  const tbody = document.querySelector("#audit tbody");
  const more = document.getElementById("more");
  const params = new URLSearchParams(location.search);
  for (const name of ["action", "outcome", "key_prefix"]) {
    if (params.has(name)) form.elements[name].value = params.get(name);
  }
  let cursor = null;
  let shown = [];
  let paged = false; // older pages appended: do not reshuffle them under the reader
  const fresh = document.getElementById("fresh");

  function query() {
    const q = new URLSearchParams({ limit: "100" });
    for (const name of ["action", "outcome", "key_prefix"]) {
      const v = form.elements[name].value.trim();
      if (v) q.set(name, v);
    }
    for (const name of ["since", "until"]) {  // datetime-local is local time: send it as UTC
      const v = form.elements[name].value;
      if (v) q.set(name, new Date(v).toISOString());
    }
    if (cursor) q.set("cursor", cursor);
    return q;
  }

  function row(e) {
    const outcome = e.outcome === "ok" ? "succeeded" : e.outcome === "denied" ? "cancelled" : "failed";
    return h("tr", { "data-outcome": e.outcome },
      h("td", {}, when(e.at)), h("td", { class: "mono" }, e.action), h("td", { class: "mono" }, e.target || ""),
      h("td", {}, h("span", { class: "badge s-" + outcome }, e.outcome)), h("td", { class: "num" }, e.status == null ? "" : String(e.status)),
      h("td", { class: "mono" }, e.key_prefix || ""), h("td", { class: "mono" }, e.client_ip || ""),
      h("td", {}, e.detail == null ? "" : typeof e.detail === "object" ? JSON.stringify(e.detail) : String(e.detail)));
  }

  async function load(append) {
    let body;
    try {
      body = await api("/v1/audit?" + query());
    } catch (e) {
      more.hidden = true;
      if (e.status === 404) { fill(tbody, [], 8, "Not available: this server has no audit log (GET /v1/audit)."); flash("The audit log is not available on this server."); return; }
      if (e.status === 403) { fill(tbody, [], 8, "Not available to this key: it needs the audit:read scope."); flash(e.message); return; }
      throw e;
    }
    const entries = body.entries || [];
    shown = append ? shown.concat(entries) : entries;
    paged = Boolean(append);
    if (!append) fresh.hidden = true;
    fill(tbody, shown.map(row), 8, "No entries match.");
    cursor = body.next_cursor || null;
    more.hidden = !cursor;
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    cursor = null;
    const q = query();
    q.delete("limit");
    history.replaceState(null, "", location.pathname + (q.toString() ? "?" + q : ""));
    flash("");
    await load(false);
  });
  more.addEventListener("click", () => load(true));
  const reload = Faena.debounce(() => { cursor = null; return load(false); }, 500);
  document.getElementById("reload").addEventListener("click", reload);
  await load(false);
  Faena.events({ types: "audit.written" }, () => {
    if (paged) fresh.hidden = false;
    else reload();
  });
});
