"use strict";
// Workers: labels, capacity, live CPU/RAM and running jobs. Live over WS /v1/events: a
// worker.heartbeat updates its row in place; worker.connected, .draining and .disconnected
// read the list again. Workers recorded by another server sharing the store send their events
// there, not here: the list is also read again every 30 s for them.
Faena.page(async ({ paths }) => {
  const { h, api, badge, when, fill, debounce } = Faena;
  if (!paths.has("/v1/workers")) { Faena.flash("This server has no workers API yet."); return; }
  const tbody = document.querySelector("#workers tbody");
  const rows = new Map(); // worker id -> its row

  const percent = (v) => v.toFixed(0) + "%";
  const iso = (epoch) => new Date(epoch * 1000).toISOString();

  function row(w) {
    const tr = h("tr", { "data-id": w.id },
      h("td", { class: "mono" }, w.id), h("td", {}, w.kind), h("td", { class: "state" }, badge(w.live ? w.state : "disconnected")), h("td", {}, w.host),
      h("td", {}, Object.entries(w.labels).map(([k, v]) => `${k}=${v}`).join(", ")), h("td", { class: "num" }, String(w.capacity.slots)),
      h("td", { class: "num running" }, String(w.running)), h("td", { class: "num cpu" }, percent(w.load.cpu_percent)),
      h("td", { class: "num mem" }, percent(w.load.memory_percent)), h("td", { class: "beat" }, when(w.last_heartbeat)));
    rows.set(w.id, tr);
    return tr;
  }

  async function load() {
    const found = (await api("/v1/workers")).workers;
    rows.clear();
    fill(tbody, found.map(row), 10, "No workers.");
  }
  const reload = debounce(load, 300);

  function beat(ev) {
    const tr = rows.get(ev.data.worker_id);
    if (!tr) { reload(); return; }
    const d = ev.data;
    tr.querySelector(".state").replaceChildren(badge(d.state));
    tr.querySelector(".running").textContent = String(d.running);
    tr.querySelector(".cpu").textContent = percent(d.load.cpu_percent);
    tr.querySelector(".mem").textContent = percent(d.load.memory_percent);
    tr.querySelector(".beat").replaceChildren(when(iso(d.last_heartbeat)));
    tr.dataset.beats = String(Number(tr.dataset.beats || 0) + 1);
  }

  await load();
  Faena.events({ types: "worker.", onOpen: reload }, (ev) => (ev.type === "worker.heartbeat" ? beat(ev) : reload()));
  setInterval(load, 30000);
});
