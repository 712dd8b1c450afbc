"use strict";
// Jobs: server-side pagination with cursors (older, newer, newest); filters live in the URL so
// links can be shared; a form submits a job and opens its page (state and log follow live).
Faena.page(async () => {
  const { h, api, badge, when, took, jobLink, fill } = Faena;
  const form = document.getElementById("filters");
  const tbody = document.querySelector("#jobs tbody");
  const PAGE = 50;
  const params = new URLSearchParams(location.search);
  for (const el of form.elements) if (el.name && params.has(el.name)) el.value = params.get(el.name);
  const stack = []; // cursors of the pages before this one
  let cursor = params.get("cursor");
  let next = null;
  const rows = new Map(); // job id -> its row, for live state updates

  // The filter form's local times, as the API's ISO 8601 (UTC) bounds.
  const iso = (local) => {
    const ms = Date.parse(local || "");
    return Number.isNaN(ms) ? null : new Date(ms).toISOString();
  };

  async function load() {
    const q = new URLSearchParams({ limit: String(PAGE) });
    for (const name of ["state", "kind", "queue", "label"]) if (params.get(name)) q.set(name, params.get(name).trim());
    if (iso(params.get("after"))) q.set("created_after", iso(params.get("after")));
    if (iso(params.get("before"))) q.set("created_before", iso(params.get("before")));
    if (cursor) q.set("cursor", cursor);
    const page = await api("/v1/jobs?" + q);
    next = page.next_cursor;
    rows.clear();
    fill(tbody, page.jobs.map(row), 7, "No jobs match.");
    document.getElementById("next").disabled = !next;
    document.getElementById("first").disabled = !cursor;
    document.getElementById("prev").disabled = !cursor;
    document.getElementById("page-info").textContent = `page ${stack.length + 1} · ${page.jobs.length} jobs`;
    document.getElementById("fresh").hidden = true;
  }

  function row(j) {
    const tr = h("tr", { "data-id": j.id },
      h("td", {}, jobLink(j.id)), h("td", {}, j.kind), h("td", {}, j.queue),
      h("td", { class: "state" }, badge(j.state)), h("td", { class: "num" }, `${j.attempts}/${j.max_attempts}`),
      h("td", {}, when(j.created_at)), h("td", { class: "num" }, took(j.started_at, j.finished_at)));
    rows.set(j.id, tr);
    return tr;
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const el of form.elements) if (el.name && el.name !== "id" && el.value) q.set(el.name, el.value);
    location.search = q.toString();
  });
  document.getElementById("clear").addEventListener("click", (e) => { e.preventDefault(); location.search = ""; });
  const open = () => {
    const id = form.elements.id.value.trim();
    if (id) location.href = Faena.UI + "/jobs/" + encodeURIComponent(id);
  };
  document.getElementById("go").addEventListener("click", open);
  form.elements.id.addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); open(); } });
  document.getElementById("next").addEventListener("click", () => { stack.push(cursor); cursor = next; load(); });
  document.getElementById("prev").addEventListener("click", () => { cursor = stack.pop() || null; load(); });
  document.getElementById("first").addEventListener("click", () => { stack.length = 0; cursor = null; load(); });
  document.getElementById("reload").addEventListener("click", load);

  submitting(document.getElementById("submit"));
  await load();
  Faena.events({ types: "job.state" }, (ev) => {
    const tr = rows.get(ev.job_id);
    if (tr) {
      tr.querySelector(".state").replaceChildren(badge(ev.data.state));
    } else if (!cursor && (ev.data.state === "queued" || (ev.data.state === "running" && ev.data.attempts === 1))) {
      // A new job: queued, or taken at once by an idle pool. Never reshuffle the page under the reader.
      document.getElementById("fresh").hidden = false;
    }
  });
});

// The submit form: checked here first (kind, payload JSON, priority range), then by the API,
// whose message is shown as it is (an unknown kind, a missing scope, ...).
function submitting(form) {
  const MAX_PRIORITY = 1000000; // as the API: a priority from -1,000,000 to 1,000,000
  const error = document.getElementById("submit-error");
  const button = form.querySelector("button[type=submit]");
  const f = form.elements;
  const refuse = (field, message) => {
    if (field) f[field].setAttribute("aria-invalid", "true");
    error.textContent = message;
    error.hidden = false;
  };
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.hidden = true;
    for (const name of ["kind", "queue", "priority", "payload"]) f[name].removeAttribute("aria-invalid");
    const kind = f.kind.value.trim();
    if (!kind) return refuse("kind", "Kind is required.");
    let payload = null;
    if (f.payload.value.trim()) {
      try { payload = JSON.parse(f.payload.value); } catch (err) { return refuse("payload", "Payload is not valid JSON: " + err.message); }
    }
    const priority = Number(f.priority.value.trim() || "0");
    if (!Number.isInteger(priority) || Math.abs(priority) > MAX_PRIORITY) {
      return refuse("priority", `Priority must be a whole number from -${MAX_PRIORITY} to ${MAX_PRIORITY}.`);
    }
    const body = { kind, payload, priority };
    if (f.queue.value.trim()) body.queue = f.queue.value.trim();
    button.disabled = true;
    try {
      const job = await Faena.api("/v1/jobs", { method: "POST", body });
      location.href = Faena.UI + "/jobs/" + encodeURIComponent(job.id);
    } catch (err) {
      refuse(null, err.message);
      button.disabled = false;
    }
  });
}
