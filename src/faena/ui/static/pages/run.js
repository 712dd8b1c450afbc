"use strict";
// One run: the DAG with each step's live state, each step's output, error and jobs (links to
// the job pages, which show the logs).
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
      h("td", {}, ...(s.jobs || []).map((j) => [Faena.jobLink(j), " "])),
      h("td", {}, s.error ? h("span", { class: "error" }, s.error) : h("code", {}, s.output === null || s.output === undefined ? "" : JSON.stringify(s.output).slice(0, 200))),
      h("td", {}, took(s.started_at, s.finished_at)))), 6);
    document.getElementById("inputs").textContent = JSON.stringify(run.inputs, null, 2);
  }
  document.getElementById("cancel").addEventListener("click", async () => {
    try { await api(`/v1/runs/${encodeURIComponent(id)}/cancel`, { method: "POST" }); await load(); } catch (e) { flash(e.message); }
  });
  await load();
  Faena.events({ types: "run.state,step.state" }, Faena.debounce(load, 300));
});
