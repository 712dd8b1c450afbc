"use strict";
// Workers: labels, capacity, live CPU/RAM and running jobs (refreshed every 5 s).
Faena.page(async ({ paths }) => {
  const { h, api, badge, when, fill } = Faena;
  if (!paths.has("/v1/workers")) { Faena.flash("This server has no workers API yet."); return; }
  async function load() {
    const found = (await api("/v1/workers")).workers;
    fill(document.querySelector("#workers tbody"), found.map((w) => h("tr", {},
      h("td", { class: "mono" }, w.id), h("td", {}, w.kind), h("td", {}, badge(w.live ? w.state : "disconnected")), h("td", {}, w.host),
      h("td", {}, Object.entries(w.labels).map(([k, v]) => `${k}=${v}`).join(", ")), h("td", { class: "num" }, String(w.capacity.slots)),
      h("td", { class: "num" }, String(w.running)), h("td", { class: "num" }, w.load.cpu_percent.toFixed(0) + "%"),
      h("td", { class: "num" }, w.load.memory_percent.toFixed(0) + "%"), h("td", {}, when(w.last_heartbeat)))), 10, "No workers.");
  }
  await load();
  setInterval(load, 5000);
});
