// faena dashboard: the shared part of every page. Plain JavaScript, no build step.
// Each page has its own script in pages/; they call Faena.page(async (ctx) => { ... }).
"use strict";

const Faena = (() => {
  const KEY = "faena.key";
  const FEATURES = "faena.features";
  const UI = "/ui";

  const key = () => sessionStorage.getItem(KEY);

  function signOut() {
    sessionStorage.removeItem(KEY);
    sessionStorage.removeItem(FEATURES);
    sessionStorage.removeItem("faena.tenant");
    location.href = UI + "/login";
  }

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  // The JSON API with the signed-in key. 401 signs out; other errors throw ApiError.
  async function api(path, opts = {}) {
    const headers = { Authorization: "Bearer " + (opts.key || key()), Accept: "application/json" };
    let body = opts.body;
    if (body !== undefined) {  // the API refuses a body without a Content-Type (415)
      if (typeof body !== "string") body = JSON.stringify(body);
      headers["Content-Type"] = "application/json";
    }
    const res = await fetch(path, { method: opts.method || "GET", headers, body });
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    if (!res.ok) {
      const err = (data && data.error) || {};
      if (res.status === 401 && !opts.key) signOut();
      throw new ApiError(res.status, err.code || "http_" + res.status, err.message || res.statusText);
    }
    return data;
  }

  // Which API routes this server has (others' features appear as they land).
  async function features() {
    const cached = sessionStorage.getItem(FEATURES);
    if (cached) return new Set(JSON.parse(cached));
    const res = await fetch("/openapi.json");
    const paths = res.ok ? Object.keys((await res.json()).paths || {}) : [];
    sessionStorage.setItem(FEATURES, JSON.stringify(paths));
    return new Set(paths);
  }

  // h("a", {href: "/x", class: "y"}, "text", child) — text is always escaped.
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "text") el.textContent = v;
      else el.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  const badge = (state) => h("span", { class: "badge s-" + state }, state);
  const jobLink = (id) => h("a", { href: UI + "/jobs/" + encodeURIComponent(id), class: "id" }, short(id));
  const short = (id) => (id && id.length > 13 ? id.slice(0, 8) + "…" + id.slice(-4) : id || "");

  function ago(iso) {
    if (!iso) return "";
    const s = (Date.now() - Date.parse(iso)) / 1000;
    if (s < 0) return "in " + span(-s);
    if (s < 5) return "just now";
    return span(s) + " ago";
  }
  function span(s) {
    if (s < 60) return Math.round(s) + " s";
    if (s < 3600) return Math.floor(s / 60) + " min";
    if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
    return Math.floor(s / 86400) + " d";
  }
  const when = (iso) => (iso ? h("span", { title: new Date(iso).toLocaleString() }, ago(iso)) : "");

  function took(start, end) {
    if (!start) return "";
    const s = ((end ? Date.parse(end) : Date.now()) - Date.parse(start)) / 1000;
    if (s < 1) return Math.round(s * 1000) + " ms";
    if (s < 60) return s.toFixed(1) + " s";
    return span(s);
  }

  function flash(message, kind) {
    const el = document.getElementById("flash");
    el.textContent = message;
    el.className = "flash" + (kind ? " " + kind : "");
    el.hidden = !message;
  }

  function fill(tbody, rows, columns, empty) {
    tbody.replaceChildren();
    if (!rows.length) {
      tbody.append(h("tr", {}, h("td", { colspan: columns, class: "empty" }, empty || "Nothing here yet.")));
      return;
    }
    tbody.append(...rows);
  }

  function debounce(fn, ms) {
    let timer = null;
    return (...args) => {
      if (timer) return;
      timer = setTimeout(() => { timer = null; fn(...args); }, ms);
    };
  }

  // Live events over WS /v1/events (the key goes in the first message, not the URL).
  // Reconnects with backoff; the header's "● live" shows whether the stream is up.
  function events(filter, onEvent) {
    const params = new URLSearchParams();
    if (filter.types) params.set("types", filter.types);
    if (filter.jobId) params.set("job_id", filter.jobId);
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const url = proto + "//" + location.host + "/v1/events?" + params;
    let delay = 500;
    let closed = false;
    let socket = null;
    const live = document.getElementById("live");
    if (live) live.hidden = false;
    function connect() {
      socket = new WebSocket(url);
      socket.onopen = () => socket.send(JSON.stringify({ token: key() }));
      socket.onmessage = (m) => {
        const ev = JSON.parse(m.data);
        if (ev.type === "hello") {
          delay = 500;
          if (live) live.className = "live on";
          sessionStorage.setItem("faena.tenant", ev.tenant);
          showTenant();
          if (filter.onOpen) filter.onOpen();
        } else if (ev.type === "error") {
          if (ev.error && ev.error.code === "unauthorized") signOut();
        } else if (ev.type !== "ping") {
          onEvent(ev);
        }
      };
      socket.onclose = () => {
        if (live) live.className = "live off";
        if (closed) return;
        setTimeout(connect, delay);
        delay = Math.min(delay * 2, 10000);
      };
    }
    connect();
    return { close() { closed = true; socket && socket.close(); } };
  }

  function showTenant() {
    const t = document.getElementById("tenant");
    const tenant = sessionStorage.getItem("faena.tenant");
    if (t && tenant) t.textContent = "tenant " + tenant;
  }

  // Every page but the sign-in one: needs a key, shows the nav entries the server supports.
  function page(body) {
    const run = async () => {
      if (!key()) { location.href = UI + "/login?next=" + encodeURIComponent(location.pathname + location.search); return; }
      document.getElementById("signout").addEventListener("click", signOut);
      showTenant();
      const paths = await features();
      for (const a of document.querySelectorAll("nav a[data-needs]")) a.hidden = !paths.has(a.dataset.needs);
      try {
        await body({ paths, data: document.body.dataset });
      } catch (e) {
        flash(e.message || String(e));
        throw e;
      }
    };
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", run);
    else run();
  }

  return { UI, KEY, key, api, ApiError, features, h, badge, jobLink, short, when, ago, took, flash, fill, debounce, events, page, signOut };
})();
