// Readable numbers and times, and a tiny DOM builder. No dependencies.
"use strict";

const fmt = {
  int: new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 }),
  one: new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 }),

  n(v) { return v == null ? "–" : fmt.int.format(v); },

  // 1234567 -> "1.2 M"; small numbers keep their thousands separators.
  short(v) {
    if (v == null) return "–";
    if (Math.abs(v) >= 1e9) return fmt.one.format(v / 1e9) + " G";
    if (Math.abs(v) >= 1e6) return fmt.one.format(v / 1e6) + " M";
    if (Math.abs(v) >= 1e4) return fmt.one.format(v / 1e3) + " k";
    return fmt.int.format(v);
  },

  ms(v) {
    if (v == null) return "–";
    return v < 1000 ? fmt.int.format(v) + " ms" : fmt.one.format(v / 1000) + " s";
  },

  mib(v) { return v == null ? "–" : fmt.int.format(v) + " MiB"; },

  pct(v) { return v == null ? "–" : fmt.int.format(v * 100) + " %"; },

  // A span of seconds as "1 h 05 min", "4 min 09 s", "12 s".
  span(secs) {
    secs = Math.max(0, Math.round(secs));
    const h = Math.floor(secs / 3600), m = Math.floor((secs % 3600) / 60), s = secs % 60;
    const pad = (x) => String(x).padStart(2, "0");
    if (h) return `${h} h ${pad(m)} min`;
    if (m) return `${m} min ${pad(s)} s`;
    return `${s} s`;
  },

  absolute(ms) { return new Date(ms).toLocaleString(); },

  // "3 min ago" (or "in 3 min").
  relative(ms) {
    const secs = (Date.now() - ms) / 1000;
    const text = Math.abs(secs) < 5 ? "just now" : fmt.span(Math.abs(secs));
    if (text === "just now") return text;
    return secs >= 0 ? `${text} ago` : `in ${text}`;
  },
};

// A <time> showing a relative time, the absolute one on hover; kept fresh
// by refreshTimes().
function timeEl(ms) {
  if (ms == null) return el("span", {}, "never");
  const t = el("time", { datetime: new Date(ms).toISOString(), title: fmt.absolute(ms) },
    fmt.relative(ms));
  t.dataset.ms = ms;
  return t;
}

function refreshTimes() {
  for (const t of document.querySelectorAll("time[data-ms]")) {
    t.textContent = fmt.relative(Number(t.dataset.ms));
  }
}

// el("td", {class: "num"}, "12", child, …): attributes set as given,
// strings become text (never HTML).
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c == null) continue;
    node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

function parseTime(text) { return text == null ? null : Date.parse(text); }
