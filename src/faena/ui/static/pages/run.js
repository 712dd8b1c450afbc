"use strict";
// One run: the DAG with each step's live state, each step's output, error and jobs (links to
// the job pages), and each step's logs inline (read again as steps finish; a step's jobs'
// output is fetched once it stopped changing, i.e. when the step is finished).
Faena.page(async ({ data }) => {
  const { h, api, badge, took, fill, flash } = Faena;
  const id = data.runId;
  let definition = null;

  async function load() {
    const run = await api("/v1/runs/" + encodeURIComponent(id));
    document.getElementById("run-title").textContent = `${run.workflow} v${run.version}`;
    const back = document.getElementById("back");
    back.href = Faena.UI + "/workflows/" + encodeURIComponent(run.workflow);
    back.textContent = "‹ " + run.workflow;
    const st = document.getElementById("run-state");
    st.textContent = run.state;
    st.className = "badge s-" + run.state;
    document.getElementById("cancel").hidden = ["succeeded", "failed", "cancelled"].includes(run.state);
    if (!definition) {
      const v = await api(`/v1/workflows/${encodeURIComponent(run.workflow)}/versions/${run.version}`);
      definition = (v.definition && v.definition.steps) || [];
    }
    const states = Object.fromEntries(run.steps.map((s) => [s.id, s.state]));
    const links = Object.fromEntries(run.steps.filter((s) => s.jobs && s.jobs.length).map((s) => [s.id, Faena.UI + "/jobs/" + s.jobs[s.jobs.length - 1]]));
    drawDag(document.getElementById("dag"), definition.length ? definition : run.steps, states, links);
    fill(document.querySelector("#steps tbody"), run.steps.map((s) => h("tr", {},
      h("td", {}, s.id), h("td", {}, badge(s.state)), h("td", { class: "num" }, String(s.attempts)),
      h("td", {}, ...(s.jobs || []).map((j) => [Faena.jobLink(j), " "]),
        ...(s.children && s.children.length ? [h("div", { class: "children muted" }, "child jobs: ",
          ...s.children.map((c) => [Faena.jobLink(c.id), " ", c.kind, " ", badge(c.state), " "]))] : [])),
      h("td", {}, s.error ? h("span", { class: "error" }, s.error) : h("code", {}, s.output === null || s.output === undefined ? "" : JSON.stringify(s.output).slice(0, 200))),
      h("td", {}, took(s.started_at, s.finished_at)))), 6);
    document.getElementById("inputs").textContent = JSON.stringify(run.inputs, null, 2);
    await stepLogs(run);
  }

  // Logs per step: a <details> per step that has jobs, each job's chunks in a <pre>. A finished
  // step's logs are read once and kept; a running step's are read again on each refresh.
  const logsDone = new Map();
  async function jobLog(jobId) {
    const out = [];
    let after = 0;
    for (let page = 0; page < 20; page++) {  // at most 20,000 chunks per job inline
      const body = await api(`/v1/jobs/${encodeURIComponent(jobId)}/logs?after=${after}`);
      out.push(...body.chunks);
      if (body.chunks.length < 1000) break;
      after = body.next_cursor;
    }
    return out;
  }
  async function stepLogs(run) {
    const box = document.getElementById("step-logs");
    const open = new Set([...box.querySelectorAll("details[open]")].map((d) => d.dataset.step));
    const blocks = [];
    for (const s of run.steps) {
      const jobs = (s.jobs || []).filter(Boolean);
      if (!jobs.length) continue;
      let logs = logsDone.get(s.id);
      if (!logs) {
        logs = await Promise.all(jobs.map(async (j) => ({ job: j, chunks: await jobLog(j) })));
        if (["succeeded", "failed", "cancelled", "skipped"].includes(s.state)) logsDone.set(s.id, logs);
      }
      const lines = logs.reduce((n, l) => n + l.chunks.length, 0);
      blocks.push(h("details", { class: "step-log", "data-step": s.id, open: open.has(s.id) || s.state === "failed" },
        h("summary", {}, s.id, " ", badge(s.state), h("span", { class: "muted" }, ` ${lines} chunk${lines === 1 ? "" : "s"}`)),
        ...logs.map((l) => h("div", {},
          logs.length > 1 ? h("p", { class: "muted" }, "job ", Faena.jobLink(l.job)) : null,
          h("pre", { class: "log" }, ...(l.chunks.length ? l.chunks.map((c) => h("span", { class: c.stream }, c.data)) : [h("span", { class: "muted" }, "(no output)")]))))));
    }
    box.replaceChildren(...(blocks.length ? blocks : [h("p", { class: "muted" }, "No step has run yet.")]));
  }
  document.getElementById("cancel").addEventListener("click", async () => {
    try { await api(`/v1/runs/${encodeURIComponent(id)}/cancel`, { method: "POST" }); await load(); } catch (e) { flash(e.message); }
  });
  try {
    await load();
  } catch (e) {  // another tenant's run is a 404 like a missing one
    if (e.status === 404) { flash(`${e.message} in this tenant.`); return; }
    throw e;
  }
  const reload = Faena.debounce(load, 300);
  Faena.events({ types: "run.state,step.state", onOpen: reload }, (ev) => {
    if (ev.data && ev.data.run_id === id) reload(); // the tenant's other runs: not this page
  });
});
