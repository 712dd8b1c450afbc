"use strict";
// One job: details, payload, result or error, its log (followed live over SSE while it runs),
// cancel and retry. Live state comes from WS /v1/events filtered to this job.
Faena.page(async ({ data }) => {
  const { h, api, badge, took, flash } = Faena;
  const id = data.jobId;
  const path = "/v1/jobs/" + encodeURIComponent(id);
  const log = document.getElementById("log");
  let job = null;
  let following = false;

  function show(j) {
    job = j;
    document.title = `${j.kind} ${Faena.short(j.id)} · faena`;
    document.getElementById("job-kind").textContent = j.kind;
    const state = document.getElementById("job-state");
    state.textContent = j.state;
    state.className = "badge s-" + j.state;
    const terminal = ["succeeded", "failed", "cancelled"].includes(j.state);
    document.getElementById("cancel").hidden = terminal;
    document.getElementById("retry").hidden = !(j.state === "failed" || j.state === "cancelled");
    const kv = (k, v) => h("tr", {}, h("th", {}, k), h("td", {}, v === null || v === undefined || v === "" ? "—" : v));
    const labels = Object.entries(j.labels || {}).map(([k, v]) => `${k}=${v}`).join(", ");
    document.getElementById("details").replaceChildren(
      kv("state", badge(j.state)), kv("queue", j.queue), kv("attempts", `${j.attempts} of ${j.max_attempts}`),
      kv("priority", String(j.priority)), kv("worker", j.worker_id), kv("created", fmt(j.created_at)),
      kv("run at", fmt(j.run_at)), kv("started", fmt(j.started_at)), kv("finished", fmt(j.finished_at)),
      kv("waited", j.started_at ? took(j.run_at && j.run_at > j.created_at ? j.run_at : j.created_at, j.started_at) : ""),
      kv("ran", took(j.started_at, j.finished_at)), kv("timeout", j.timeout_s ? j.timeout_s + " s" : ""),
      kv("labels", labels), kv("idempotency key", j.idempotency_key), kv("placement", j.placement),
      kv("parent", j.parent_id ? Faena.jobLink(j.parent_id) : ""));
    document.getElementById("payload").textContent = JSON.stringify(j.payload, null, 2);
    const failed = Boolean(j.error);
    document.getElementById("result-title").textContent = failed ? "Error" : "Result";
    const result = document.getElementById("result");
    result.textContent = failed ? j.error + (j.result !== null ? "\n\n" + JSON.stringify(j.result, null, 2) : "") : JSON.stringify(j.result, null, 2);
    result.classList.toggle("error", failed);
  }
  const fmt = (iso) => (iso ? new Date(iso).toLocaleString() : "");

  // The jobs this one spawned (an agent's tool calls), oldest first; the card shows only if any.
  async function children() {
    const page = await api(`/v1/jobs?parent_id=${encodeURIComponent(id)}&limit=200`);
    const card = document.getElementById("children-card");
    card.hidden = !page.jobs.length;
    Faena.fill(document.querySelector("#children tbody"), page.jobs.slice().reverse().map((c) => h("tr", {},
      h("td", {}, Faena.jobLink(c.id)), h("td", {}, c.kind), h("td", {}, badge(c.state)),
      h("td", {}, c.error ? h("span", { class: "error" }, c.error) : ""))), 4);
  }

  function append(chunk) {
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 30;
    log.append(h("span", { class: chunk.stream, "data-seq": chunk.seq }, chunk.data));
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  // GET .../logs?follow=true is Server-Sent Events; EventSource cannot send the key, so the
  // stream is read with fetch and parsed here (event:, data:, id: lines; blank line ends one).
  async function follow() {
    if (following) return;
    following = true;
    let after = 0;
    const status = document.getElementById("log-state");
    try {
      while (true) {
        status.textContent = "following…";
        const res = await fetch(`${path}/logs?follow=true&after=${after}`, { headers: { Authorization: "Bearer " + Faena.key() } });
        if (!res.ok || !res.body) throw new Error("log stream: HTTP " + res.status);
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "", ended = false;
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let cut;
          while ((cut = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, cut);
            buf = buf.slice(cut + 2);
            const ev = {};
            for (const line of block.split("\n")) {
              const i = line.indexOf(":");
              if (i > 0) ev[line.slice(0, i)] = line.slice(i + 1).trimStart();
            }
            if (ev.event === "log") { const c = JSON.parse(ev.data); after = c.cursor; append(c); }
            if (ev.event === "end") ended = true;
          }
        }
        if (ended) break;
        await new Promise((r) => setTimeout(r, 1000)); // connection dropped: resume after `after`
      }
      status.textContent = log.childNodes.length ? "complete" : "no output";
    } catch (e) {
      status.textContent = e.message;
    } finally {
      following = false;
    }
  }

  async function act(what) {
    try {
      show(await api(`${path}/${what}`, { method: "POST" }));
      flash(what === "cancel" ? "Job cancelled." : "Job queued again.", "info");
      if (what === "retry") { log.replaceChildren(); follow(); }
    } catch (e) {
      flash(e.message);
    }
  }
  document.getElementById("cancel").addEventListener("click", () => act("cancel"));
  document.getElementById("retry").addEventListener("click", () => act("retry"));

  try {
    show(await api(path));
  } catch (e) {
    if (e.status === 404) {
      flash("No job " + id + " in this tenant.");
      for (const el of document.querySelectorAll("main section, main .actions, #job-id")) el.hidden = true;
      document.getElementById("job-kind").textContent = "Job not found";
      document.getElementById("job-state").hidden = true;
      return;
    }
    throw e;
  }
  follow();
  children();
  const refresh = Faena.debounce(async () => { show(await api(path)); await children(); }, 200);
  Faena.events({ jobId: id, types: "job.state" }, refresh);
});
