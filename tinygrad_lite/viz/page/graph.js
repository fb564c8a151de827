/* tl.viz.html page script. Inlined once per graph inside an IIFE and bound to its own root element, so several
   graphs on one notebook page never share ids or state. It reads the JSON model the Python side embedded and
   never fetches anything. */
function tlvizInit(root) {
  "use strict";
  if (!root || root.dataset.ready) return;
  const $ = (sel) => root.querySelector(sel);
  const model = JSON.parse($(".tlviz-data").textContent);
  const view = $(".tlviz-view"), canvas = $(".tlviz-canvas"), panel = $(".tlviz-details");
  const search = $(".tlviz-search"), count = $(".tlviz-count");
  const state = { x: 0, y: 0, k: 1, selected: null, collapsed: new Set(), insets: new Map() };
  const fwd = new Map(), back = new Map();
  for (const [s, d] of model.edges) {
    if (!fwd.has(s)) fwd.set(s, []);
    if (!back.has(d)) back.set(d, []);
    fwd.get(s).push(d);
    back.get(d).push(s);
  }
  const inside = new Map();  // key of a node in a collapsed call's interior -> key of that call's node
  root.querySelectorAll("script[type='text/x-tlviz-svg']").forEach((s) => {
    for (const m of s.textContent.matchAll(/data-key="([^"]+)"/g)) inside.set(m[1], s.dataset.key);
  });

  /* ---------- pan and zoom ---------- */
  function apply() {
    canvas.style.transform = `translate(${state.x}px, ${state.y}px) scale(${state.k})`;
    root.dataset.zoom = state.k.toFixed(4);
  }
  function zoomAt(factor, cx, cy) {
    const k = Math.min(8, Math.max(0.02, state.k * factor));
    state.x = cx - (cx - state.x) * (k / state.k);
    state.y = cy - (cy - state.y) * (k / state.k);
    state.k = k;
    apply();
  }
  function fit() {
    const svg = canvas.querySelector("svg");
    const w = svg.width.baseVal.value || 1, h = svg.height.baseVal.value || 1;
    const vw = view.clientWidth || 800, vh = view.clientHeight || 600;
    state.k = Math.min(vw / w, vh / h, 2) * 0.96;
    state.x = (vw - w * state.k) / 2;
    state.y = Math.max(4, (vh - h * state.k) / 2);
    apply();
  }
  function centerOn(el) {
    const r = el.getBoundingClientRect(), v = view.getBoundingClientRect();
    state.x += v.left + v.width / 2 - (r.left + r.width / 2);
    state.y += v.top + v.height / 2 - (r.top + r.height / 2);
    apply();
  }
  let drag = null, moved = false;
  view.addEventListener("pointerdown", (ev) => {
    if (ev.button !== 0) return;
    drag = { x: ev.clientX, y: ev.clientY, sx: state.x, sy: state.y };
    moved = false;
  });
  view.addEventListener("pointermove", (ev) => {
    if (!drag) return;
    const dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
    if (!moved && Math.abs(dx) + Math.abs(dy) < 4) return;
    if (!moved) { view.setPointerCapture(ev.pointerId); view.classList.add("tlviz-dragging"); }
    moved = true;
    state.x = drag.sx + dx;
    state.y = drag.sy + dy;
    apply();
  });
  const endDrag = () => { drag = null; view.classList.remove("tlviz-dragging"); };
  view.addEventListener("pointerup", endDrag);
  view.addEventListener("pointercancel", endDrag);
  view.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const v = view.getBoundingClientRect();
    zoomAt(Math.exp(-ev.deltaY * 0.0015), ev.clientX - v.left, ev.clientY - v.top);
  }, { passive: false });
  $(".tlviz-fit").addEventListener("click", fit);
  $(".tlviz-zoom-in").addEventListener("click", () => zoomAt(1.25, view.clientWidth / 2, view.clientHeight / 2));
  $(".tlviz-zoom-out").addEventListener("click", () => zoomAt(0.8, view.clientWidth / 2, view.clientHeight / 2));

  /* ---------- elements by key ---------- */
  const nodeEl = (key) => root.querySelector(`g.node[data-key="${CSS.escape(key)}"]`);
  const clusterEl = (name) => root.querySelector(`g.cluster[data-cluster="${CSS.escape(name)}"]`);
  function visibleEl(key) {  // the element standing for a node: its own, else its closed collapsed call's
    let el = nodeEl(key);
    if (el && !el.closest(".tlviz-hidden")) return el;
    const outer = inside.get(key);
    return outer ? visibleEl(outer) : el;
  }

  /* ---------- cluster collapse ---------- */
  function refreshHidden() {
    const hidden = new Set(), hiddenClusters = new Set();
    for (const name of state.collapsed) {
      for (const k of model.clusters[name].members) hidden.add(k);
      for (const [other, c] of Object.entries(model.clusters)) {
        for (let p = c.parent; p; p = model.clusters[p].parent) if (p === name) hiddenClusters.add(other);
      }
    }
    root.querySelectorAll("g.node[data-key]").forEach((el) => el.classList.toggle("tlviz-hidden", hidden.has(el.dataset.key)));
    root.querySelectorAll("g.edge").forEach((el) => el.classList.toggle("tlviz-hidden",
      hidden.has(el.dataset.src) && hidden.has(el.dataset.dst)));
    root.querySelectorAll("g.cluster").forEach((el) => {
      const name = el.dataset.cluster, closed = state.collapsed.has(name);
      el.classList.toggle("tlviz-hidden", hiddenClusters.has(name));
      el.classList.toggle("tlviz-collapsed", closed);
      el.setAttribute("aria-expanded", String(!closed));
      const text = el.querySelector("text");
      if (!text) return;
      if (!text.dataset.title) text.dataset.title = text.textContent;
      text.textContent = closed ? `\u25b8 ${text.dataset.title} (${model.clusters[name].members.length} nodes)`
        : text.dataset.title;
    });
  }
  function toggleCluster(name, open) {
    const closed = open === undefined ? !state.collapsed.has(name) : !open;
    if (closed) state.collapsed.add(name); else state.collapsed.delete(name);
    refreshHidden();
  }
  $(".tlviz-collapse-all").addEventListener("click", () => {
    root.querySelectorAll(".tlviz-canvas > svg g.cluster").forEach((el) => {
      const c = model.clusters[el.dataset.cluster];
      if (c && !(c.parent && clusterEl(c.parent))) state.collapsed.add(el.dataset.cluster);
    });
    refreshHidden();
  });
  $(".tlviz-expand-all").addEventListener("click", () => { state.collapsed.clear(); refreshHidden(); });

  /* ---------- interiors of collapsed module calls ---------- */
  function toggleInterior(key, open) {
    const shown = state.insets.get(key);
    if (shown && open !== true) { shown.remove(); state.insets.delete(key); renderPanel(); return; }
    if (shown || open === false) return;
    const src = root.querySelector(`script[type='text/x-tlviz-svg'][data-key="${CSS.escape(key)}"]`);
    const el = nodeEl(key);
    if (!src || !el) return;
    const inset = document.createElement("div");
    inset.className = "tlviz-inset";
    inset.dataset.inset = key;
    const title = document.createElement("div");
    title.className = "tlviz-inset-title";
    title.textContent = `\u25be ${model.nodes[key].name} (${model.nodes[key].type}): click here to close`;
    title.addEventListener("click", () => toggleInterior(key, false));
    inset.appendChild(title);
    inset.insertAdjacentHTML("beforeend", src.textContent);
    const r = el.getBoundingClientRect(), c = canvas.getBoundingClientRect();
    inset.style.left = `${(r.left - c.left) / state.k}px`;
    inset.style.top = `${(r.top - c.top) / state.k}px`;
    canvas.appendChild(inset);
    state.insets.set(key, inset);
    refreshHidden();
    runSearch();
    renderPanel();
  }

  /* ---------- selection, lineage and the details panel ---------- */
  function walk(start, edges) {
    const seen = new Set(), stack = [start];
    while (stack.length) {
      for (const n of edges.get(stack.pop()) || []) if (!seen.has(n)) { seen.add(n); stack.push(n); }
    }
    return seen;
  }
  function clearSelection() {
    state.selected = null;
    root.classList.remove("tlviz-focus");
    root.querySelectorAll(".tlviz-lineage, .tlviz-anc, .tlviz-desc, .tlviz-selected").forEach((el) =>
      el.classList.remove("tlviz-lineage", "tlviz-anc", "tlviz-desc", "tlviz-selected"));
    panel.hidden = true;
  }
  function select(key) {
    clearSelection();
    state.selected = key;
    const anc = walk(key, back), desc = walk(key, fwd);
    const mark = (k, cls) => { const el = nodeEl(k); if (el) el.classList.add("tlviz-lineage", cls); };
    anc.forEach((k) => mark(k, "tlviz-anc"));
    desc.forEach((k) => mark(k, "tlviz-desc"));
    mark(key, "tlviz-selected");
    root.querySelectorAll("g.edge").forEach((el) => {
      const s = el.dataset.src, d = el.dataset.dst;
      if ((anc.has(s) && (anc.has(d) || d === key)) || (s === key && desc.has(d)) || (desc.has(s) && desc.has(d)))
        el.classList.add("tlviz-lineage");
    });
    root.classList.add("tlviz-focus");
    root.dataset.ancestors = String(anc.size);
    root.dataset.descendants = String(desc.size);
    renderPanel();
  }
  const fmt = (v) => (v === null || v === undefined ? "\u2013" : (Number.isInteger(v) ? String(v) : v.toPrecision(5)));
  function el(tag, text, attrs) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = text;
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  }
  function statsTable(stats, cls, label) {
    const t = el("table", null, { class: cls, "aria-label": label });
    for (const name of ["min", "max", "mean", "std", "nan", "inf"]) {
      const tr = el("tr");
      tr.appendChild(el("th", name === "nan" ? "NaN count" : name === "inf" ? "Inf count" : name));
      const v = stats[name];
      const td = el("td", fmt(v), { "data-stat": name, "data-value": v === null ? "" : String(v) });
      if ((name === "nan" || name === "inf") && v > 0) td.className = "tlviz-bad";
      tr.appendChild(td);
      t.appendChild(tr);
    }
    return t;
  }
  function renderPanel() {
    const key = state.selected;
    if (key === null) return;
    const info = model.nodes[key];
    const body = $(".tlviz-details-body");
    body.textContent = "";
    body.appendChild(el("h3", info.name, { class: "tlviz-title" }));
    const dl = el("dl");
    const row = (k, v, field) => { if (v === undefined || v === null || v === "") return;
      dl.appendChild(el("dt", k)); dl.appendChild(el("dd", v, { "data-field": field })); };
    row("kind", info.kind, "kind");
    row(info.kind === "op" || info.kind === "loop" ? "op" : "name", info.name, "name");
    row("module", info.module === "" ? "(model)" : info.module, "module");
    row("type", info.type, "type");
    row("source", info.source, "source");
    row("shape", info.shape ? (info.shape.length ? info.shape.join(" \u00d7 ") : "scalar") : null, "shape");
    row("dtype", info.dtype, "dtype");
    if (info.entries) row(info.entries.length > 1 ? "tape entries" : "tape entry",
      info.entries.length > 8 ? `${info.entries.slice(0, 8).join(", ")}, \u2026 (${info.entries.length})` : info.entries.join(", "), "entries");
    if (info.count > 1) row("calls", String(info.count), "count");
    if (info.ops) row("primitives", info.ops.join(", "), "ops");
    row("gradient", info.status, "status");
    row("ancestors / descendants", `${root.dataset.ancestors} / ${root.dataset.descendants}`, "lineage");
    body.appendChild(dl);
    body.appendChild(el("h4", "values"));
    body.appendChild(info.value ? statsTable(info.value, "tlviz-value", "value statistics")
      : el("p", info.kind === "const" ? "a constant" : "values released by backward (draw before backward, or use retain_graph=True)", { class: "tlviz-value-none" }));
    body.appendChild(el("h4", "gradient"));
    body.appendChild(info.grad ? statsTable(info.grad, "tlviz-grad", "gradient statistics")
      : el("p", "no gradient yet: call .backward()", { class: "tlviz-grad-none" }));
    if (info.expandable) {
      const b = el("button", state.insets.has(key) ? "Close module" : "Open module", { type: "button", class: "tlviz-open" });
      b.addEventListener("click", () => toggleInterior(key));
      body.appendChild(b);
    }
    panel.hidden = false;
  }
  $(".tlviz-close").addEventListener("click", clearSelection);
  view.addEventListener("click", (ev) => {
    if (moved) { moved = false; return; }
    const title = ev.target.closest("g.cluster text");
    if (title) { toggleCluster(title.closest("g.cluster").dataset.cluster); return; }
    const node = ev.target.closest("g.node[data-key]");
    if (node && model.nodes[node.dataset.key]) select(node.dataset.key); else if (!node) clearSelection();
  });
  view.addEventListener("dblclick", (ev) => {
    const node = ev.target.closest("g.node[data-key]");
    if (node && model.nodes[node.dataset.key] && model.nodes[node.dataset.key].expandable) toggleInterior(node.dataset.key);
  });

  /* ---------- search ---------- */
  function runSearch() {
    root.querySelectorAll(".tlviz-match").forEach((e) => e.classList.remove("tlviz-match"));
    const q = search.value.trim().toLowerCase();
    if (!q) { count.textContent = ""; root.dataset.matches = "0"; return []; }
    const hits = [];
    for (const [key, info] of Object.entries(model.nodes)) {
      const hay = `${info.name || ""}\n${info.module || ""}\n${info.type || ""}`.toLowerCase();
      if (hay.includes(q)) hits.push(key);
    }
    for (const key of hits) {
      const target = visibleEl(key);
      const shown = target && target.closest(".tlviz-hidden");
      if (target && !shown) target.classList.add("tlviz-match");
      else if (target) {  // inside a collapsed cluster: mark the outermost collapsed cluster instead
        let name = model.nodes[key].cluster;
        while (name && !state.collapsed.has(name)) name = model.clusters[name].parent;
        const cel = name && clusterEl(name);
        if (cel) cel.classList.add("tlviz-match");
      }
    }
    count.textContent = hits.length === 1 ? "1 match" : `${hits.length} matches`;
    root.dataset.matches = String(hits.length);
    return hits;
  }
  search.addEventListener("input", runSearch);
  search.addEventListener("keydown", (ev) => {
    if (ev.key !== "Enter") return;
    const first = root.querySelector("g.tlviz-match");
    if (first) centerOn(first);
  });

  /* ---------- keyboard: '/' focuses search, Escape clears (the active graph only) ---------- */
  const isActive = () => document.querySelectorAll(".tlviz").length === 1 || root.contains(document.activeElement)
    || root.matches(":hover");
  document.addEventListener("keydown", (ev) => {
    if (!isActive()) return;
    const typing = ev.target instanceof HTMLElement && /^(INPUT|TEXTAREA|SELECT)$/.test(ev.target.tagName);
    if (ev.key === "/" && !typing) { ev.preventDefault(); search.focus(); search.select(); }
    else if (ev.key === "Escape") { search.value = ""; runSearch(); clearSelection(); if (typing) ev.target.blur(); }
  });

  const notes = [];
  if (model.depth !== null) notes.push(`large graph: module calls below depth ${model.depth} start collapsed (double-click or "Open module" to open one)`);
  if (model.cut) notes.push(`${model.cut} nodes cut by max_nodes`);
  $(".tlviz-note").textContent = notes.join("; ");
  root.querySelectorAll("g.cluster text").forEach((t) => { t.setAttribute("role", "button"); t.setAttribute("aria-label", `collapse or expand ${t.textContent}`); });
  fit();
  root.dataset.ready = "1";
  root.dataset.readyMs = String(Math.round(performance.now()));
}
