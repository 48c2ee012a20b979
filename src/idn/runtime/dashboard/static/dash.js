// idn dashboard: polls /api/snapshot on the server that served this page and
// draws it as plain SVG (no library, nothing fetched from another host).
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const POLL_MS = 500;
const TIERS = ["access", "edge", "regional", "cloud"];

function svg(tag, attrs, parent, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  if (parent) parent.appendChild(e);
  return e;
}

function html(tag, cls, parent, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  if (parent) parent.appendChild(e);
  return e;
}

const fmt = (x, d = 1) => (x === null || x === undefined || !isFinite(x) ? "–" : Number(x).toFixed(d));
const short = (model) => model.split("/").pop();
const variant = (model, task) => short(model).replace(new RegExp(`^${task}[-_]`), "");

// ---- charts ----------------------------------------------------------------------------
// series: [{label, values (aligned with slots; null = no value), cls, dashed, bars}]
function chart(fig, slots, series, opts = {}) {
  const box = fig.querySelector(".chart");
  const W = Math.max(300, box.clientWidth || 420), H = opts.height || 160;
  const m = { l: 42, r: 8, t: 8, b: 20 };
  const root = svg("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img" });
  const vals = series.flatMap((s) => s.values.filter((v) => v !== null && v !== undefined && isFinite(v)));
  // the y range: opts.min/max as given, else from the data, on round ticks
  const low = opts.min !== undefined ? opts.min : Math.min(0, ...vals);
  const top = opts.max !== undefined ? opts.max : Math.max(...vals, low + (opts.minSpan || 1));
  const fixed = opts.max !== undefined;
  const step = fixed ? (top - low) / 4 : niceStep((top - low) / 4);
  const lo = fixed ? low : step * Math.floor(low / step + 1e-9);
  const hi = fixed ? top : lo + step * Math.max(1, Math.ceil((top - lo) / step - 1e-9));
  const n = Math.max(slots.length, 2);
  const x = (i) => m.l + ((W - m.l - m.r) * i) / (n - 1);
  const y = (v) => H - m.b - ((H - m.t - m.b) * (v - lo)) / (hi - lo || 1);
  const digits = opts.digits ?? Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  for (let v = lo; v <= hi + step / 2; v += step) {
    svg("line", { x1: m.l, x2: W - m.r, y1: y(v), y2: y(v), class: "gridline" }, root);
    svg("text", { x: m.l - 4, y: y(v) + 3, "text-anchor": "end", class: "tick" }, root, fmt(v, digits));
  }
  svg("line", { x1: m.l, x2: m.l, y1: m.t, y2: H - m.b, class: "axis" }, root);
  svg("line", { x1: m.l, x2: W - m.r, y1: H - m.b, y2: H - m.b, class: "axis" }, root);
  if (slots.length) {
    const last = slots.length - 1;
    for (const i of new Set([0, Math.floor(last / 2), last])) {
      const anchor = i === 0 ? "start" : i === last ? "end" : "middle";
      svg("text", { x: x(i), y: H - 6, "text-anchor": anchor, class: "tick" }, root, String(slots[i]));
    }
  }
  const barSeries = series.filter((s) => s.bars);
  const bw = Math.max(1, ((W - m.l - m.r) / n) * 0.8 / Math.max(1, barSeries.length));
  barSeries.forEach((s, j) => {
    s.values.forEach((v, i) => {
      if (v === null || v === undefined || v <= 0) return;
      svg("rect", { x: x(i) - (bw * barSeries.length) / 2 + j * bw, y: y(v), width: bw, height: Math.max(1, y(lo) - y(v)),
                    class: `bar ${s.cls}` }, root);
    });
  });
  for (const s of series.filter((s) => !s.bars)) {
    let d = "", pen = false;
    s.values.forEach((v, i) => {
      if (v === null || v === undefined || !isFinite(v)) { pen = false; return; }
      d += `${pen ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
    });
    if (d) {
      const p = svg("path", { d, class: `series ${s.cls}${s.dashed ? " dashed" : ""}` }, root);
      svg("title", {}, p, s.label);
      // a lone point would draw nothing: mark the last value
      const last = s.values.map((v, i) => [v, i]).filter(([v]) => v !== null && v !== undefined && isFinite(v)).pop();
      if (last && !s.dashed) svg("circle", { cx: x(last[1]), cy: y(last[0]), r: 2.2, class: s.cls }, root);
    }
  }
  if (!vals.length) {
    svg("text", { x: (W + m.l) / 2, y: H / 2, "text-anchor": "middle", class: "empty" }, root, opts.empty || "no data yet");
  }
  box.replaceChildren(root);
  const legend = fig.querySelector(".legend");
  legend.replaceChildren();
  for (const s of series) {
    const item = html("span", s.cls, legend);
    html("i", s.dashed ? "dashed" : "", item);
    item.appendChild(document.createTextNode(s.label));
  }
}

function niceStep(raw) { // 1, 2, 2.5 or 5 times a power of ten
  if (!(raw > 0) || !isFinite(raw)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  const f = raw / p;
  return p * (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10);
}

// ---- topology ----------------------------------------------------------------------------
function layout(topo) {
  const tiers = [...TIERS].reverse().filter((t) => topo.nodes.some((n) => n.tier === t));
  const nbrs = {};
  for (const l of topo.links) {
    (nbrs[l.a] = nbrs[l.a] || []).push(l.b);
    (nbrs[l.b] = nbrs[l.b] || []).push(l.a);
  }
  const order = {};
  const rows = tiers.map((t, r) => {
    let ids = topo.nodes.filter((n) => n.tier === t).map((n) => n.id);
    if (r > 0) { // under their neighbours in the row above (barycentre)
      const bary = (id) => {
        const up = (nbrs[id] || []).filter((u) => u in order);
        return up.length ? up.reduce((a, u) => a + order[u], 0) / up.length : 1e9;
      };
      ids = ids.map((id, i) => [bary(id), i, id]).sort((a, b) => a[0] - b[0] || a[1] - b[1]).map((e) => e[2]);
    }
    ids.forEach((id, i) => (order[id] = ids.length > 1 ? i / (ids.length - 1) : 0.5));
    return { tier: t, ids };
  });
  return { rows, nbrs };
}

function topology(snap) {
  const host = document.getElementById("topology");
  const topo = snap.topology, nodes = snap.nodes, now = snap.run.now;
  const taskIx = Object.fromEntries(topo.tasks.map((t, i) => [t, i % 8]));
  const taskOf = Object.fromEntries(topo.models.map((m) => [m.id, m.task]));
  const repo = Object.fromEntries(topo.nodes.map((n) => [n.id, n.repository]));
  const { rows } = layout(topo);
  const widest = Math.max(...rows.map((r) => r.ids.length));
  const W = Math.max(host.clientWidth || 1000, widest * 170 + 80);
  const boxW = Math.min(230, (W - 80) / widest - 16);
  // one line per task: "digits  logreg 36 · +mlp-small · -forest", wrapped to the box
  const perLine = Math.max(12, Math.floor((boxW - 16) / 6.2));
  const lines = (id) => {
    const n = nodes[id] || {};
    if (repo[id]) return [[{ text: "every model (repository)", cls: "node-sub" }]];
    const served = n.served_by_model || {};
    const marks = n.marks || [];
    const held = Array.isArray(n.allocation) ? n.allocation : [];
    const fresh = new Set(marks.filter((k) => k.kind === "loaded").map((k) => k.model));
    const gone = marks.filter((k) => k.kind === "evicted" && !held.includes(k.model)).map((k) => k.model);
    const out = [];
    for (const task of topo.tasks) {
      const tokens = [];
      for (const m of held.filter((m) => taskOf[m] === task)) {
        tokens.push({ text: (fresh.has(m) ? "+" : "") + variant(m, task), cls: fresh.has(m) ? "chip new" : "chip", n: served[m] });
      }
      for (const m of gone.filter((m) => taskOf[m] === task)) tokens.push({ text: "−" + variant(m, task), cls: "chip gone" });
      if (!tokens.length) continue;
      let line = [{ text: task, cls: `task t${taskIx[task]}` }], width = task.length + 1;
      for (const t of tokens) {
        const w = t.text.length + (t.n ? String(Math.round(t.n)).length + 1 : 0) + 3;
        if (width + w > perLine && line.length > 1) { out.push(line); line = [{ text: "", cls: "task", indent: true }]; width = 3; }
        line.push(t);
        width += w;
      }
      out.push(line);
    }
    if (!out.length) out.push([{ text: n.allocation ? "no model" : "…", cls: "node-sub" }]);
    return out;
  };
  const heights = rows.map((r) => Math.max(...r.ids.map((id) => 44 + 14 * lines(id).length)) + 8);
  const gap = 46;
  const H = heights.reduce((a, h) => a + h + gap, 10);
  const root = svg("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, id: "topology-svg" });
  const pos = {};
  let top = 10;
  rows.forEach((r, ri) => {
    svg("text", { x: 4, y: top + 14, class: "tier-label" }, root, r.tier);
    const step = (W - 80) / r.ids.length;
    r.ids.forEach((id, i) => (pos[id] = { x: 80 + step * (i + 0.5) - boxW / 2, y: top, h: heights[ri] - 8 }));
    top += heights[ri] + gap;
  });
  const linkLayer = svg("g", {}, root);
  for (const l of topo.links) {
    const a = pos[l.a], b = pos[l.b];
    if (!a || !b) continue;
    const [u, d] = a.y <= b.y ? [a, b] : [b, a];
    const x1 = u.x + boxW / 2, y1 = u.y + u.h, x2 = d.x + boxW / 2, y2 = d.y;
    svg("line", { x1, y1, x2, y2, class: "link" }, linkLayer);
    svg("text", { x: (x1 + x2) / 2 + 4, y: (y1 + y2) / 2 + 3, class: "link-label" }, linkLayer, `${fmt(l.latency_ms, 1)} ms`);
  }
  for (const n of topo.nodes) {
    const p = pos[n.id], st = nodes[n.id] || { status: "starting" };
    const g = svg("g", { "data-node": n.id, "data-status": st.status, class: "node" }, root);
    svg("rect", { x: p.x, y: p.y, width: boxW, height: p.h, rx: 5,
                  class: `node-box ${st.status}${n.repository ? " repository" : ""}` }, g);
    svg("text", { x: p.x + 8, y: p.y + 16, class: "node-id" }, g, n.id);
    const sub = st.status === "up" ? `${n.tier}${n.repository ? "" : ` · ${fmt(n.budget_mb, 3)} MB`}` : st.status;
    svg("text", { x: p.x + boxW - 6, y: p.y + 15, "text-anchor": "end", class: st.status === "up" ? "node-sub" : "node-dead" },
        g, st.status === "dead" ? "DEAD" : sub);
    lines(n.id).forEach((line, i) => {
      const t = svg("text", { x: p.x + (line[0].indent ? 18 : 8), y: p.y + 34 + 14 * i, class: "chips" }, g);
      line.forEach((c, j) => {
        if (j > 1) svg("tspan", { class: "chip-n" }, t, " · ");
        else if (j === 1 && !line[0].indent) svg("tspan", {}, t, " ");
        svg("tspan", { class: c.cls }, t, c.text);
        if (c.n) svg("tspan", { class: "chip-n", dx: 2 }, t, String(Math.round(c.n)));
      });
    });
    const err = sum(st.errors), skip = sum(st.skipped_hops);
    if (err || skip) {
      svg("text", { x: p.x + 8, y: p.y + p.h - 5, class: "badge" }, g,
          [err ? `${err} error${err > 1 ? "s" : ""}` : "", skip ? `${skip} skipped hop${skip > 1 ? "s" : ""}` : ""]
            .filter(Boolean).join(" · ") + " (window)");
    }
    if (st.status !== "up" && st.error) svg("title", {}, g, st.error);
  }
  host.replaceChildren(root);
  document.getElementById("mark-slots").textContent = snap.run.mark_slots;
}

const sum = (xs) => (xs || []).reduce((a, v) => a + (v || 0), 0);

// ---- per node ------------------------------------------------------------------------------
function heatmap(parent, slots, y, yNow) {
  const models = Object.keys(y);
  const W = Math.max(300, parent.clientWidth || 420), barW = 60, rowH = 12;
  const labelW = Math.min(180, 8 + 5.6 * Math.max(6, ...models.map((m) => short(m).length)));
  const H = models.length * rowH + 16;
  const root = svg("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, class: "heatmap" }, parent);
  const cw = (W - labelW - barW - 8) / Math.max(1, slots.length);
  models.forEach((m, r) => {
    const ty = r * rowH;
    svg("text", { x: labelW - 4, y: ty + rowH - 2, "text-anchor": "end", class: "hm-label" }, root, short(m));
    let last = null;
    y[m].forEach((v, i) => {
      if (v !== null && v !== undefined) last = v;
      const c = last === null ? "#f2f2f2" : shade(last);
      svg("rect", { x: labelW + i * cw, y: ty, width: cw + 0.3, height: rowH - 1, fill: c }, root);
    });
    const now = yNow && yNow[m] !== undefined ? yNow[m] : last;
    if (now !== null) {
      svg("rect", { x: W - barW - 4, y: ty + 1, width: Math.max(0.5, (barW - 22) * now), height: rowH - 3, class: "hm-now" }, root);
      svg("text", { x: W - 4, y: ty + rowH - 2, "text-anchor": "end", class: "hm-val" }, root, fmt(now, 2));
    }
  });
  const by = models.length * rowH + 11;
  if (slots.length) {
    svg("text", { x: labelW, y: by, class: "tick" }, root, String(slots[0]));
    svg("text", { x: W - barW - 8, y: by, "text-anchor": "end", class: "tick" }, root, String(slots[slots.length - 1]));
    svg("text", { x: W - 4, y: by, "text-anchor": "end", class: "tick" }, root, "y now");
  }
}

function shade(v) { // 0 -> white, 1 -> deep blue
  const t = Math.min(1, Math.max(0, v));
  const mix = (a, b) => Math.round(a + (b - a) * t);
  return `rgb(${mix(247, 8)},${mix(251, 48)},${mix(255, 107)})`;
}

function nodesPanel(snap) {
  const host = document.getElementById("nodes");
  host.replaceChildren();
  for (const n of snap.topology.nodes) {
    const st = snap.nodes[n.id] || {};
    const fig = html("figure", "node-card chart-fig", host);
    fig.dataset.node = n.id;
    const h = html("h3", "", fig);
    html("span", "", h, n.id);
    html("span", `pill ${st.status === "up" ? "" : "bad"}`, h, st.status === "up" ? n.tier : st.status.toUpperCase());
    const last = (k) => (st[k] || []).filter((v) => v !== null && v !== undefined).slice(-1)[0];
    const rounds = st.messages_sent && st.messages_sent.some((v) => v !== null);
    html("div", "now", fig, rounds
      ? `last round: sent ${fmt(last("messages_sent"), 0)}, received ${fmt(last("messages_received"), 0)}, ` +
        `missed ${fmt(last("messages_missed"), 0)}, model loads ${fmt(last("model_loads"), 0)}` +
        (typeof st.resumed_from_slot === "number" && st.resumed_from_slot >= 0 ? ` · resumed at slot ${st.resumed_from_slot}` : "")
      : `served in the last slot: ${fmt(last("served"), 0)}`);
    if (st.y && Object.keys(st.y).length) heatmap(fig, snap.slots, st.y, st.y_now);
    else if (st.y) html("div", "now", fig, "no fractional state here (a repository hosts every model)");
    html("div", "chart", fig);
    html("div", "legend", fig);
    const series = rounds ? [
      { label: "model loads", values: st.model_loads, cls: "loads", bars: true },
      { label: "sent", values: st.messages_sent, cls: "sent" },
      { label: "received", values: st.messages_received, cls: "received", dashed: true },
      { label: "missed", values: st.messages_missed, cls: "missed" },
    ] : [{ label: "requests served here", values: st.served || [], cls: "served" }];
    chart(fig, snap.slots, series, { height: 100 });
  }
}

// ---- header, errors --------------------------------------------------------------------------
function status(snap) {
  const s = document.getElementById("status");
  const run = snap.run, load = snap.load;
  document.getElementById("scenario").textContent = run.scenario;
  s.replaceChildren();
  const item = (label, value, cls) => {
    const e = html("span", cls || "", s, label + " ");
    const b = html("b", "", e, value);
    return b;
  };
  const slotNow = item("slot", String(run.now));
  slotNow.id = "slot-now";
  slotNow.dataset.slot = run.now;
  const params = Object.entries(run.params || {}).map(([k, v]) => `${k}=${v}`).join(", ");
  item("policy", run.policy + (params ? ` (${params})` : ""));
  item("clock", run.deterministic ? "driven by idn load" : "wall");
  const up = Object.values(snap.nodes).filter((n) => n.status === "up").length;
  item("nodes up", `${up}/${Object.keys(snap.nodes).length}`, up < Object.keys(snap.nodes).length ? "pill bad" : "");
  if (load) {
    const t = Math.min(load.n_slots, Math.max(0, run.now - load.k0 + 1));
    item("idn load", `${load.status}${load.status === "running" ? `, trace slot ${t}/${load.n_slots}` : ""}, ` +
         `${load.answered} answered, ${load.errors} errors`, `pill ${load.status}`);
  } else {
    item("load", "none yet (idn load writes RUN/load.json)", "pill");
  }
  item("updated", new Date(run.updated * 1000).toLocaleTimeString());
}

function errors(snap) {
  const host = document.getElementById("errors");
  const ul = html("ul");
  for (const [id, n] of Object.entries(snap.nodes)) {
    if (n.status !== "up") {
      html("li", "bad", ul, `${id}: ${n.status}${n.dead_since !== null ? ` since slot ${n.dead_since}` : ""}` +
           (n.error ? ` (${n.error})` : ""));
    }
    const c = n.counters || {};
    if (c.errors || c.skipped_hops) {
      html("li", "", ul, `${id}: ${c.errors || 0} request error(s), ${c.skipped_hops || 0} skipped hop(s) since it started`);
    }
  }
  const reasons = (snap.load && snap.load.error_reasons) || {};
  for (const [msg, k] of Object.entries(reasons)) html("li", "bad", ul, `idn load: ${k} × ${msg}`);
  if (!ul.children.length) html("li", "muted", ul, "none: every node answers, no request failed, no hop skipped");
  host.replaceChildren(ul);
}

// ---- the loop ----------------------------------------------------------------------------------
function render(snap) {
  const S = snap.series, slots = snap.slots;
  status(snap);
  topology(snap);
  const fig = (id) => document.getElementById(id);
  chart(fig("chart-share"), slots, [
    ...TIERS.map((t) => ({ label: t, values: S.share[t], cls: t })),
    ...TIERS.map((t) => ({ label: `${t}, simulated`, values: S.share_predicted[t], cls: t, dashed: true })),
  ].filter((s) => s.values.some((v) => v)), { min: 0, max: 1, digits: 2, empty: "no request served yet" });
  chart(fig("chart-latency"), slots, [
    { label: "p50", values: S.latency_p50, cls: "p50" },
    { label: "p95", values: S.latency_p95, cls: "p95" },
    { label: "simulated mean", values: S.latency_predicted, cls: "predicted", dashed: true },
  ], { empty: "needs a running idn load" });
  chart(fig("chart-accuracy"), slots, [
    { label: "measured (answers right)", values: S.accuracy, cls: "measured" },
    { label: "simulated (catalog)", values: S.accuracy_predicted, cls: "predicted", dashed: true },
  ], { minSpan: 0.05, min: floorOf([...S.accuracy, ...S.accuracy_predicted], 0.05), empty: "needs a running idn load" });
  chart(fig("chart-cost"), slots, [
    { label: "measured", values: S.cost, cls: "measured" },
    { label: "simulated", values: S.cost_predicted, cls: "predicted", dashed: true },
  ], { empty: "needs a running idn load" });
  chart(fig("chart-messages"), slots, [
    { label: "sent", values: S.messages_sent, cls: "sent" },
    { label: "received", values: S.messages_received, cls: "received", dashed: true },
    { label: "missed", values: S.messages_missed, cls: "missed" },
  ], { empty: "no control round (a fixed allocation sends none)" });
  chart(fig("chart-faults"), slots, [
    { label: "model loads", values: S.model_loads, cls: "loads", bars: true },
    { label: "request errors", values: S.errors, cls: "errors", bars: true },
    { label: "skipped hops", values: S.skipped_hops, cls: "skipped", bars: true },
  ], { empty: "none" });
  nodesPanel(snap);
  errors(snap);
  renders += 1;
  document.body.dataset.renders = renders;
}

let renders = 0;

function floorOf(values, pad) { // a little below the smallest value, not below 0
  const v = values.filter((x) => x !== null && x !== undefined && isFinite(x));
  return v.length ? Math.max(0, Math.min(...v) - pad) : 0;
}

async function poll() {
  try {
    const r = await fetch("/api/snapshot", { cache: "no-store" });
    if (r.ok) render(await r.json());
  } catch (e) {
    const s = document.getElementById("status");
    s.replaceChildren(html("span", "pill bad", null, "the dashboard server does not answer"));
  }
  setTimeout(poll, POLL_MS);
}

poll();
