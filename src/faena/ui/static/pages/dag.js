"use strict";
// Draws a workflow's steps as a DAG in SVG: columns by depth (longest path from a root),
// edges from each step's `needs`. states: step id -> state (optional).
function drawDag(container, steps, states, links) {
  const NS = "http://www.w3.org/2000/svg";
  const depth = new Map();
  const byId = new Map(steps.map((s) => [s.id, s]));
  const level = (id, seen = new Set()) => {
    if (depth.has(id)) return depth.get(id);
    if (seen.has(id)) return 0;
    seen.add(id);
    const needs = (byId.get(id) || {}).needs || [];
    const d = needs.length ? 1 + Math.max(...needs.map((n) => level(n, seen))) : 0;
    depth.set(id, d);
    return d;
  };
  steps.forEach((s) => level(s.id));
  const columns = [];
  for (const s of steps) (columns[depth.get(s.id)] ||= []).push(s.id);
  const NW = 150, NH = 46, GX = 60, GY = 18, P = 10;
  const rows = Math.max(1, ...columns.map((c) => c.length));
  const W = P * 2 + columns.length * NW + (columns.length - 1) * GX;
  const H = P * 2 + rows * NH + (rows - 1) * GY;
  const pos = new Map();
  columns.forEach((col, x) => col.forEach((id, y) => {
    const offset = ((rows - col.length) * (NH + GY)) / 2;
    pos.set(id, { x: P + x * (NW + GX), y: P + offset + y * (NH + GY) });
  }));
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.style.maxWidth = W + "px";
  const make = (tag, attrs, parent, text) => {
    const el = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (text !== undefined) el.textContent = text;
    (parent || svg).append(el);
    return el;
  };
  for (const s of steps) for (const n of s.needs || []) {
    const a = pos.get(n), b = pos.get(s.id);
    if (!a || !b) continue;
    const x1 = a.x + NW, y1 = a.y + NH / 2, x2 = b.x, y2 = b.y + NH / 2, mx = (x1 + x2) / 2;
    make("path", { d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, class: "edge" });
  }
  for (const s of steps) {
    const p = pos.get(s.id), state = (states && states[s.id]) || "none";
    const parent = links && links[s.id] ? make("a", { href: links[s.id] }) : svg;
    const g = make("g", { class: "node n-" + state, "data-step": s.id, "data-state": state, transform: `translate(${p.x},${p.y})` }, parent);
    make("rect", { width: NW, height: NH }, g);
    make("text", { x: 10, y: 19 }, g, s.id.length > 20 ? s.id.slice(0, 19) + "…" : s.id);
    make("text", { x: 10, y: 36, class: "sub" }, g, states ? state : s.kind || "");
  }
  container.replaceChildren(svg);
}
