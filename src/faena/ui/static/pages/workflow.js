"use strict";
// One workflow: schedule, versions, its steps as a DAG, and its runs.
Faena.page(async ({ data }) => {
  const { h, api, badge, when, fill } = Faena;
  const name = data.name;
  let w;
  try {
    w = await api("/v1/workflows/" + encodeURIComponent(name));
  } catch (e) {  // another tenant's workflow is a 404 like a missing one
    if (e.status === 404) { Faena.flash(`${e.message} in this tenant.`); return; }
    throw e;
  }
  const s = w.schedule;
  const kv = (k, v) => h("tr", {}, h("th", {}, k), h("td", {}, v || "—"));
  document.getElementById("schedule").replaceChildren(...(s
    ? [kv("cron", s.cron), kv("timezone", s.timezone), kv("paused", s.paused ? "yes" : "no"), kv("next run", when(s.next_fire_at))]
    : [kv("schedule", "none (runs on demand or by trigger)")]));
  fill(document.querySelector("#versions tbody"), w.versions.map((v) => h("tr", {}, h("td", {}, "v" + v.version), h("td", {}, when(v.created_at)))), 2);
  drawDag(document.getElementById("dag"), (w.definition && w.definition.steps) || [], null, null);
  const runs = (await api("/v1/runs?limit=50&workflow=" + encodeURIComponent(name))).runs;
  fill(document.querySelector("#runs tbody"), runs.map((r) => h("tr", {},
    h("td", {}, h("a", { href: Faena.UI + "/runs/" + r.id, class: "id" }, Faena.short(r.id))), h("td", { class: "num" }, "v" + r.version),
    h("td", {}, badge(r.state)), h("td", {}, r.trigger || ""), h("td", {}, when(r.created_at)), h("td", {}, when(r.finished_at)))), 6, "No runs yet.");
});
