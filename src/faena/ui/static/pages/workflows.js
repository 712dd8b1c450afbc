"use strict";
// Workflows (definitions, versions, schedules) and their recent runs.
Faena.page(async ({ paths }) => {
  const { h, api, badge, when, fill } = Faena;
  if (!paths.has("/v1/workflows")) { Faena.flash("This server has no workflows API yet."); return; }
  const wf = (await api("/v1/workflows")).workflows;
  fill(document.querySelector("#workflows tbody"), wf.map((w) => h("tr", {},
    h("td", {}, h("a", { href: Faena.UI + "/workflows/" + encodeURIComponent(w.name) }, w.name)),
    h("td", { class: "num" }, String(w.latest_version)),
    h("td", {}, w.schedule ? `${w.schedule.cron}${w.schedule.paused ? " (paused)" : ""}` : "—"),
    h("td", {}, w.schedule ? when(w.schedule.next_fire_at) : ""), h("td", {}, when(w.updated_at)))), 5, "No workflows yet: faena workflow apply FILE.");
  async function runs() {
    const found = (await api("/v1/runs?limit=25")).runs;
    fill(document.querySelector("#runs tbody"), found.map(runRow), 6, "No runs yet.");
  }
  function runRow(r) {
    return h("tr", {}, h("td", {}, h("a", { href: Faena.UI + "/runs/" + r.id, class: "id" }, Faena.short(r.id))),
      h("td", {}, r.workflow), h("td", {}, badge(r.state)), h("td", {}, r.trigger || ""), h("td", {}, when(r.created_at)), h("td", {}, when(r.finished_at)));
  }
  await runs();
  Faena.events({ types: "run.state" }, Faena.debounce(runs, 1000));
});
