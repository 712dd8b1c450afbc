"use strict";
// Overview: status, jobs per state, throughput chart, queues, workers, recent failures.
Faena.page(async ({ paths }) => {
  const { h, api, badge, when, jobLink, fill } = Faena;
  const STATES = ["queued", "scheduled", "running", "succeeded", "failed", "cancelled"];
  const HOUR = 3600 * 1000, MINUTE = 60 * 1000, SAMPLE_PAGES = 4;
  const buckets = new Map(); // minute start (ms) -> {ok, bad}

  async function stats() {
    const s = await api("/v1/stats");
    document.getElementById("states").replaceChildren(
      ...STATES.map((st) =>
        h("a", { class: "stat " + st, href: Faena.UI + "/jobs?state=" + st, "data-state": st },
          h("div", { class: "n" }, String(s.by_state[st] || 0)), h("div", { class: "l" }, st))));
    const rows = Object.entries(s.by_queue).map(([q, c]) =>
      h("tr", {}, h("td", {}, h("a", { href: Faena.UI + "/jobs?queue=" + encodeURIComponent(q) }, q)),
        ...["queued", "scheduled", "running", "failed"].map((st) => h("td", { class: "num" }, String(c[st] || 0)))));
    fill(document.querySelector("#queues tbody"), rows, 5, "No jobs yet.");
  }

  async function health() {
    const res = await fetch("/readyz");
    const body = await res.json();
    const status = document.getElementById("status");
    status.textContent = res.ok ? "ready" : "not ready";
    status.className = "badge " + (res.ok ? "s-ok" : "s-bad");
    const checks = body.checks || {};
    const rows = Object.entries(checks).map(([k, v]) =>
      h("tr", {}, h("th", {}, k), h("td", {}, v === "ok" ? badge("ok") : h("span", { class: "error" }, v))));
    if (!rows.length) rows.push(h("tr", {}, h("th", {}, "store"), h("td", {}, res.ok ? badge("ok") : body.error.message)));
    if (body.schema_version !== undefined) rows.push(h("tr", {}, h("th", {}, "schema version"), h("td", {}, String(body.schema_version))));
    document.getElementById("health").replaceChildren(...rows);
  }

  async function workers() {
    if (!paths.has("/v1/workers")) return;
    let found;
    try { found = (await api("/v1/workers")).workers; } catch (e) { return; } // no scope: hide
    document.getElementById("workers-card").hidden = false;
    const rows = found.filter((w) => w.live).map((w) => h("tr", {},
      h("td", { class: "mono" }, w.id), h("td", {}, badge(w.state)), h("td", { class: "num" }, String(w.running)),
      h("td", { class: "num" }, w.load.cpu_percent.toFixed(0) + "%"), h("td", { class: "num" }, w.load.memory_percent.toFixed(0) + "%")));
    fill(document.querySelector("#workers tbody"), rows, 5, "No live workers.");
  }

  async function failures() {
    const page = await api("/v1/jobs?state=failed&limit=8");
    const rows = page.jobs.map((j) => h("tr", {}, h("td", {}, jobLink(j.id)), h("td", {}, j.kind), h("td", {}, j.queue),
      h("td", { class: "error" }, (j.error || "").slice(0, 120)), h("td", {}, when(j.finished_at))));
    fill(document.querySelector("#failures tbody"), rows, 5, "No failures. ✓");
  }

  // The chart samples the newest finished jobs through the ordinary list API (at most
  // SAMPLE_PAGES × 500), then counts live events as they come.
  async function throughput() {
    const since = Date.now() - HOUR;
    let cursor = null, pages = 0, capped = false;
    buckets.clear();
    do {
      const q = new URLSearchParams({ state: "succeeded,failed", limit: "500" });
      if (cursor) q.set("cursor", cursor);
      const page = await api("/v1/jobs?" + q);
      let old = false;
      for (const j of page.jobs) {
        if (Date.parse(j.created_at) < since) old = true;
        if (j.finished_at && Date.parse(j.finished_at) >= since) count(Date.parse(j.finished_at), j.state === "failed");
      }
      cursor = old ? null : page.next_cursor;
      pages += 1;
      capped = Boolean(cursor) && pages >= SAMPLE_PAGES;
    } while (cursor && pages < SAMPLE_PAGES);
    document.getElementById("chart-note").textContent = capped
      ? "Sampled from the newest " + pages * 500 + " finished jobs, then live." : "";
    draw();
  }

  function count(ms, bad) {
    const key = Math.floor(ms / MINUTE) * MINUTE;
    const b = buckets.get(key) || { ok: 0, bad: 0 };
    if (bad) b.bad += 1; else b.ok += 1;
    buckets.set(key, b);
  }

  function draw() {
    const NS = "http://www.w3.org/2000/svg";
    const W = 600, H = 190, L = 34, B = 18, n = 60;
    const now = Math.floor(Date.now() / MINUTE) * MINUTE;
    const data = [];
    for (let i = n - 1; i >= 0; i--) data.push(buckets.get(now - i * MINUTE) || { ok: 0, bad: 0 });
    const max = Math.max(1, ...data.map((d) => d.ok + d.bad));
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.setAttribute("role", "img");
    const total = data.reduce((a, d) => a + d.ok + d.bad, 0), bad = data.reduce((a, d) => a + d.bad, 0);
    svg.setAttribute("aria-label", `${total} jobs finished in the last hour, ${bad} failed`);
    const add = (tag, attrs, text) => {
      const el = document.createElementNS(NS, tag);
      for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
      if (text !== undefined) el.textContent = text;
      svg.append(el);
    };
    const bw = (W - L) / n, ph = H - B - 6;
    for (const f of [0, 0.5, 1]) {
      const y = 6 + ph * (1 - f);
      add("line", { x1: L, x2: W, y1: y, y2: y, class: "axis" });
      add("text", { x: L - 4, y: y + 3, "text-anchor": "end" }, String(Math.round(max * f)));
    }
    data.forEach((d, i) => {
      const x = L + i * bw + 1, hOk = (d.ok / max) * ph, hBad = (d.bad / max) * ph;
      if (d.ok) add("rect", { x, width: bw - 2, y: 6 + ph - hOk, height: hOk, class: "bar-ok" });
      if (d.bad) add("rect", { x, width: bw - 2, y: 6 + ph - hOk - hBad, height: hBad, class: "bar-bad" });
    });
    ["-60 min", "-30 min", "now"].forEach((t, i) => add("text", { x: L + (i * (W - L)) / 2, y: H - 4, "text-anchor": ["start", "middle", "end"][i] }, t));
    const rate = total ? ((bad / total) * 100).toFixed(1) : "0.0";
    const legend = Faena.h("p", { class: "small muted" }, `${total} finished · ${bad} failed · error rate ${rate}%`);
    document.getElementById("chart").replaceChildren(svg, legend);
  }

  await Promise.all([stats(), health(), workers(), failures(), throughput()]);
  const refresh = Faena.debounce(() => { stats(); failures(); draw(); }, 1000);
  Faena.events({ types: "job.state" }, (ev) => {
    const st = ev.data.state;
    if (st === "succeeded" || st === "failed") count(Date.now(), st === "failed");
    refresh();
  });
  setInterval(() => { health(); workers(); draw(); }, 10000);
});
