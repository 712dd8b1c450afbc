"use strict";
// One workflow: schedule, versions, its steps as a DAG, and its runs. Live over WS /v1/events:
// a run of it changing state (run.state) or a new version (workflow.applied) reads it again.
Faena.page(async ({ data }) => {
  const { h, api, badge, when, fill } = Faena;
  const name = data.name;
  const kv = (k, v) => h("tr", {}, h("th", {}, k), h("td", {}, v || "—"));

  async function load() {
    const w = await api("/v1/workflows/" + encodeURIComponent(name));
    const s = w.schedule;
    document.getElementById("schedule").replaceChildren(...(s
      ? [kv("cron", s.cron), kv("timezone", s.timezone), kv("paused", s.paused ? "yes" : "no"), kv("next run", when(s.next_fire_at))]
      : [kv("schedule", "none (runs on demand or by trigger)")]));
    fill(document.querySelector("#versions tbody"), w.versions.map((v) => h("tr", {}, h("td", {}, "v" + v.version), h("td", {}, when(v.created_at)))), 2);
    drawDag(document.getElementById("dag"), (w.definition && w.definition.steps) || [], null, null);
    const runs = (await api("/v1/runs?limit=50&workflow=" + encodeURIComponent(name))).runs;
    fill(document.querySelector("#runs tbody"), runs.map((r) => h("tr", { "data-run": r.id, "data-state": r.state },
      h("td", {}, h("a", { href: Faena.UI + "/runs/" + r.id, class: "id" }, Faena.short(r.id))), h("td", { class: "num" }, "v" + r.version),
      h("td", {}, badge(r.state)), h("td", {}, r.trigger || ""), h("td", {}, when(r.created_at)), h("td", {}, when(r.finished_at)))), 6, "No runs yet.");
  }

  try {
    await load();
  } catch (e) {  // another tenant's workflow is a 404 like a missing one
    if (e.status === 404) { Faena.flash(`${e.message} in this tenant.`); return; }
    throw e;
  }
  const reload = Faena.debounce(load, 300);
  Faena.events({ types: "run.state,workflow.applied", onOpen: reload }, (ev) => {
    if (ev.data && ev.data.workflow === name) reload();
  });
});
