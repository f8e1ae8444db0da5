// Inline SVG charts: sparklines for the pool, stacked bars for usage.
"use strict";

const SVG = "http://www.w3.org/2000/svg"; // a namespace name, never fetched
const PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948",
  "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];

function svgEl(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
}

// Lines over equally spaced points; series: [{values, color, label}].
function sparkline(series, { width = 300, height = 60, unit = (v) => fmt.n(v) } = {}) {
  const all = series.flatMap((s) => s.values).filter((v) => v != null);
  const max = Math.max(1e-9, ...all);
  const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img" });
  for (const s of series) {
    const n = s.values.length;
    const points = s.values.map((v, i) =>
      `${(i / Math.max(1, n - 1)) * width},${height - 2 - ((v || 0) / max) * (height - 4)}`);
    svg.append(svgEl("polyline", { points: points.join(" "), fill: "none", stroke: s.color,
      "stroke-width": 2, "vector-effect": "non-scaling-stroke" }));
  }
  const last = series.map((s) => `${s.label} ${unit(s.values[s.values.length - 1])}`).join(" · ");
  svg.setAttribute("aria-label", last);
  return el("div", {}, svg, el("div", { class: "legend" }, last));
}

// Stacked bars: periods (ms, ascending) × stacks {name: Map(period -> value)}.
function stackedBars(periods, stacks, { width = 800, height = 220, unit = fmt.short } = {}) {
  const names = Object.keys(stacks).sort();
  const totals = periods.map((p) => names.reduce((t, n) => t + (stacks[n].get(p) || 0), 0));
  const max = Math.max(1, ...totals);
  const pad = 36, w = (width - pad) / Math.max(1, periods.length);
  const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height + 18}`, class: "chart bars",
    role: "img", "aria-label": `peak ${unit(max)}` });
  svg.append(svgEl("text", { x: 0, y: 10, class: "axis" }, unit(max)));
  svg.append(svgEl("line", { x1: pad, x2: width, y1: height, y2: height, class: "axis" }));
  periods.forEach((p, i) => {
    let y = height;
    names.forEach((n, k) => {
      const v = stacks[n].get(p) || 0;
      if (!v) return;
      const h = (v / max) * (height - 14);
      y -= h;
      svg.append(svgEl("rect", { x: pad + i * w + 1, y, width: Math.max(1, w - 2), height: h,
        fill: PALETTE[k % PALETTE.length] },
        svgEl("title", {}, `${n} · ${fmt.absolute(p)}: ${fmt.n(v)}`)));
    });
    if (i % Math.ceil(periods.length / 8) === 0) {
      const d = new Date(p);
      const label = periods.length > 24 || (periods[1] - periods[0]) >= 86400000
        ? `${d.getMonth() + 1}/${d.getDate()}` : `${d.getHours()}:00`;
      svg.append(svgEl("text", { x: pad + i * w, y: height + 14, class: "axis" }, label));
    }
  });
  const legend = el("ul", { class: "legend" }, names.map((n, k) =>
    el("li", {}, el("span", { class: "swatch", "data-color": k % PALETTE.length }), n)));
  return el("div", {}, svg, names.length ? legend : el("p", { class: "muted" }, "No requests in this range."));
}
