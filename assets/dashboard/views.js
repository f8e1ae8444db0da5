// The six views, each rendered from `state` (app.js) into its section.
"use strict";

// What a worker holds, in words: blank (takes any system prompt), the
// digest of the prompt it is set up with, the tool calls a parked turn
// waits on.
function holds(x) {
  if (x.state === "starting" || x.state === "stopping") return "–";
  const prompt = x.prompt ? `prompt ${x.prompt}` : "blank";
  if (x.state === "parked") return `${prompt} · waits on ${x.waiting_on_tools} tool call(s)`;
  if (x.state === "bound") return `${prompt} · a conversation's next turn`;
  return prompt;
}

const views = {
  renderAll() {
    views.pool(); views.accounts(); views.keys(); views.requests(); views.batches();
    if (!$("#view-usage").hidden) views.usage().catch(report);
  },

  // ---- Pool ----
  pool() {
    const h = state.health, w = state.workers;
    if (!h || !w) return;
    const status = $("#pool-status");
    status.textContent = h.status;
    status.dataset.status = h.status;
    $("#pool-reason").textContent = h.reason || "";
    const card = (label, value, title) =>
      el("div", { class: "card stat", title }, el("span", { class: "label" }, label), el("strong", {}, value));
    $("#pool-cards").replaceChildren(
      card("Workers", `${fmt.n(w.total)}`, `${w.ready} ready · ${w.busy} busy · ${w.bound} bound · ${w.parked} parked · ${w.starting} booting`),
      card("Booting", fmt.n(w.starting)),
      card("Queue", `${fmt.n(h.queue.depth)} / ${fmt.n(h.queue.capacity)}`, "waiting jobs / pool.max_queue"),
      card("Completed", fmt.n(h.jobs.completed)),
      card("Failed", fmt.n(h.jobs.failed)),
      card("Rejected", fmt.n(h.jobs.rejected)),
      card("Restarts", fmt.n(h.restarts), `of which recycled on purpose: ${h.recycles}`),
      card("Recycles", fmt.n(h.recycles)),
      card("Memory", fmt.mib(w.rss_mb_total)),
    );
    $("#workers tbody").replaceChildren(...w.items.map((x) =>
      el("tr", { "data-worker": x.id },
        el("td", {}, `#${x.id}`),
        el("td", {}, el("span", { class: "badge", "data-state": x.state }, x.state)),
        el("td", {}, timeEl(x.since_ms)),
        el("td", { class: "holds" }, holds(x)),
        el("td", {}, x.account || "–"),
        el("td", {}, x.kind),
        el("td", {}, x.pid || "–"),
        el("td", { class: "num" }, fmt.n(x.jobs)),
        el("td", { class: "num" }, fmt.mib(x.rss_mb)))));
    views.sparks();
  },

  // Jobs/s and p50/p95 over the last 5 minutes in 10-second steps, from
  // the `request` events this page has seen.
  sparks() {
    const now = Date.now(), step = 10000, n = 30;
    state.finished = state.finished.filter((f) => f.at > now - n * step);
    const buckets = Array.from({ length: n }, () => []);
    for (const f of state.finished) {
      const i = n - 1 - Math.floor((now - f.at) / step);
      if (i >= 0 && i < n) buckets[i].push(f.duration);
    }
    const q = (xs, p) => {
      if (!xs.length) return null;
      const s = [...xs].sort((a, b) => a - b);
      return s[Math.min(s.length - 1, Math.floor(p * s.length))];
    };
    $("#spark-rate").replaceChildren(sparkline(
      [{ values: buckets.map((b) => b.length / (step / 1000)), color: PALETTE[0], label: "now" }],
      { unit: (v) => `${fmt.one.format(v || 0)}/s` }));
    $("#spark-latency").replaceChildren(sparkline([
      { values: buckets.map((b) => q(b, 0.5)), color: PALETTE[0], label: "p50" },
      { values: buckets.map((b) => q(b, 0.95)), color: PALETTE[3], label: "p95" },
    ], { unit: fmt.ms }));
  },

  // ---- Accounts ----
  accounts() {
    const rows = state.accounts.map((a) => el("tr", { "data-account": a.name, class: a.status !== "ok" ? "warn" : null },
      el("td", {}, a.name),
      el("td", {}, el("span", { class: "badge", "data-state": a.status }, a.status.replace("_", " ")),
        a.reason ? el("div", { class: "error small" }, a.reason) : null),
      el("td", {}, a.limited_until
        ? el("span", { class: "countdown", "data-until": a.limited_until * 1000,
          title: `until ${fmt.absolute(a.limited_until * 1000)}` }, fmt.span(a.limited_until - Date.now() / 1000))
        : "–"),
      el("td", { class: "num" }, fmt.pct(a.utilization)),
      el("td", { class: "num" }, fmt.n(a.workers)),
      el("td", { class: "num" }, fmt.n(a.jobs)),
      el("td", { class: "num" }, fmt.n(a.rate_limited)),
      el("td", { class: "num" }, fmt.n(a.failovers))));
    $("#accounts tbody").replaceChildren(...rows);
    $("#login-help").hidden = !state.accounts.some((a) => a.status === "login_failed");
  },

  tick() {
    for (const c of document.querySelectorAll(".countdown[data-until]")) {
      const left = (Number(c.dataset.until) - Date.now()) / 1000;
      c.textContent = left > 0 ? fmt.span(left) : "ending…";
    }
    if (!$("#view-pool").hidden) views.sparks();
  },

  // ---- Keys ----
  keys() {
    const bar = (used, limit) => {
      if (!limit) return el("span", { class: "muted" }, `${fmt.short(used)} · no limit`);
      const share = Math.min(1, used / limit);
      const fill = el("span", { class: share >= 0.9 ? "fill hot" : "fill" });
      fill.style.width = `${share * 100}%`;
      return el("div", { class: "meter", role: "meter", "aria-valuemin": 0, "aria-valuemax": limit,
        "aria-valuenow": used, title: `${fmt.n(used)} of ${fmt.n(limit)} tokens` },
        el("span", { class: "track" }, fill), el("span", { class: "small" }, `${fmt.short(used)} / ${fmt.short(limit)}`));
    };
    $("#key-names").replaceChildren(...state.keys.map((k) => el("option", { value: k.name })));
    $("#keys tbody").replaceChildren(...state.keys.map((k) => {
      const lim = k.effective_limits || {};
      const month = state.monthUsage.get(k.name);
      const api = k.source === "api";
      return el("tr", { "data-key": k.name },
        el("td", {}, el("strong", {}, k.name), el("div", { class: "muted small" },
          [k.prefix ? `${k.prefix}…` : null, k.source, k.expired ? "expired" : null].filter(Boolean).join(" · "))),
        el("td", {}, bar(k.usage_24h.weighted_tokens, lim.tokens_day)),
        el("td", {}, bar(month ? month.weighted_tokens : 0, lim.tokens_month)),
        el("td", { class: "num" }, fmt.n(k.usage_24h.requests)),
        el("td", { class: "num" }, fmt.n(k.running)),
        el("td", {}, timeEl(parseTime(k.last_used_at))),
        el("td", { class: "actions" },
          el("button", { type: "button", class: "limits", disabled: !api, title: api ? null : "a config key: change the config",
            onclick: () => views.editLimits(k) }, "Limits"),
          el("button", { type: "button", class: "revoke danger", disabled: !api,
            onclick: () => views.revoke(k.name) }, "Revoke")));
    }));
  },

  async createKey(ev) {
    ev.preventDefault();
    const num = (id) => { const v = $(id).value.trim(); return v === "" ? undefined : Number(v); };
    const body = { name: $("#new-key-name").value.trim(), limits: {
      tokens_day: num("#new-key-day"), tokens_month: num("#new-key-month"),
      requests_per_minute: num("#new-key-rpm") } };
    try {
      const made = await api("POST", "/admin/keys", body);
      $("#new-key").reset();
      $("#new-key-error").textContent = "";
      const secret = el("code", { id: "secret" }, made.secret);
      const copied = el("span", { class: "muted", role: "status" });
      openDialog(`Key ${made.name} created`,
        el("p", {}, "Its secret, shown this once: copy it now."), secret,
        el("p", {}, el("button", { type: "button", id: "copy-secret", onclick: async () => {
          try { await navigator.clipboard.writeText(made.secret); copied.textContent = " copied"; }
          catch { getSelection().selectAllChildren(secret); copied.textContent = " selected: press Ctrl+C"; }
        } }, "Copy"), copied));
      await loadKeys();
      views.keys();
    } catch (e) {
      $("#new-key-error").textContent = e.message;
    }
  },

  editLimits(k) {
    const names = ["tokens_5h", "tokens_day", "tokens_week", "tokens_month", "requests_per_minute", "max_concurrent"];
    const inputs = names.map((n) => el("input", { type: "number", min: 0, name: n,
      value: k.limits[n] ?? "", placeholder: `default${k.effective_limits[n] ? ` (${k.effective_limits[n]})` : ""}` }));
    const error = el("p", { class: "error", role: "alert" });
    const form = el("form", { class: "grid", onsubmit: async (ev) => {
      ev.preventDefault();
      const limits = {};
      inputs.forEach((i) => { limits[i.name] = i.value === "" ? null : Number(i.value); });
      try {
        await api("PATCH", `/admin/keys/${encodeURIComponent(k.name)}`, { limits });
        $("#dialog").close();
        await loadKeys();
        views.keys();
      } catch (e) { error.textContent = e.message; }
    } }, names.map((n, i) => el("label", {}, n.replaceAll("_", " "), inputs[i])),
    el("button", { type: "submit" }, "Save"), error);
    openDialog(`Limits of ${k.name}`, el("p", { class: "muted" }, "Empty: the [limits] default; 0: no limit."), form);
  },

  async revoke(name) {
    if (!confirm(`Revoke key ${name}? Its next request gets 401; jobs in flight finish.`)) return;
    try {
      await api("DELETE", `/admin/keys/${encodeURIComponent(name)}`);
      await loadKeys();
      views.keys();
    } catch (e) { alert(e.message); }
  },

  // ---- Requests ----
  requests() {
    const key = $("#filter-key").value.trim(), status = $("#filter-status").value,
      model = $("#filter-model").value.trim();
    const rows = state.requests.filter((r) =>
      (!key || r.key === key) &&
      (!status || (status === "error") === (r.status >= 400)) &&
      (!model || `${r.model_asked || ""} ${r.model_served || ""}`.includes(model))).slice(0, 200);
    // New rows arrive while a keyboard user moves through the table: the
    // focused row keeps its focus across the re-render.
    const focused = document.activeElement && document.activeElement.closest("#requests tr[data-id]");
    const focusedId = focused && focused.dataset.id;
    $("#requests tbody").replaceChildren(...rows.map((r) => el("tr", {
      "data-id": r.request_id, class: r.status >= 400 ? "err" : null, tabindex: 0,
      onclick: () => views.details(r),
      // preventDefault: the same Enter would otherwise press the dialog's
      // Close button, which takes the focus as it opens.
      onkeydown: (ev) => { if (ev.key === "Enter") { ev.preventDefault(); views.details(r); } } },
    el("td", {}, timeEl(r.at_ms)),
    el("td", { class: "key" }, r.key),
    el("td", {}, r.model_served || r.model_asked || "–"),
    el("td", {}, r.account || "–"),
    el("td", { class: "num" }, r.worker ?? "–"),
    el("td", { class: "num status" }, r.status, r.error_type ? el("div", { class: "small" }, r.error_type) : null),
    el("td", { class: "num tokens" }, `${fmt.n(r.usage.input_tokens)} / ${fmt.n(r.usage.output_tokens)}`),
    el("td", { class: "num" }, fmt.ms(r.duration_ms)),
    el("td", { class: "num" }, fmt.ms(r.ttft_ms)))));
    if (focusedId) {
      const again = [...document.querySelectorAll("#requests tr[data-id]")].find((tr) => tr.dataset.id === focusedId);
      if (again) again.focus();
    }
  },

  details(r) {
    const fields = [["Request id", r.request_id], ["Arrived", fmt.absolute(r.at_ms)], ["Key", r.key],
      ["Route", `${r.method} ${r.route}`], ["Dialect", r.dialect], ["Model asked", r.model_asked],
      ["Model served", r.model_served], ["Account", r.account], ["Worker", r.worker], ["Node", r.node],
      ["Status", r.status], ["Error", r.error_type], ["Stream", r.stream ? "yes" : "no"],
      ["Input tokens", fmt.n(r.usage.input_tokens)], ["Output tokens", fmt.n(r.usage.output_tokens)],
      ["Cache reads", fmt.n(r.usage.cache_read_input_tokens)],
      ["Cache writes", fmt.n(r.usage.cache_creation_input_tokens)], ["Queued", fmt.ms(r.queue_ms)],
      ["First content", fmt.ms(r.ttft_ms)], ["Duration", fmt.ms(r.duration_ms)], ["Batch", r.batch_id],
      ["Client", r.client_addr], ["User agent", r.user_agent]];
    openDialog("Request", el("dl", { class: "details" },
      fields.filter(([, v]) => v != null).flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])));
  },

  // ---- Usage ----
  async usage() {
    const range = $("#usage-range").value, measure = $("#usage-measure").value;
    const hours = range === "24h";
    const days = { "24h": 1, "7d": 7, "30d": 30 }[range];
    const step = hours ? 3600000 : 86400000;
    const to = Math.ceil(Date.now() / step) * step;
    const from = to - days * 86400000;
    const period = hours ? "hour" : "day";
    const periods = Array.from({ length: (to - from) / step }, (_, i) => from + i * step);
    const value = (g) => measure === "requests" ? g.requests : g.weighted_tokens;
    for (const by of ["key", "account"]) {
      const r = await api("GET", `/admin/usage?group_by=${by},${period}&from=${new Date(from).toISOString()}&to=${new Date(to).toISOString()}`);
      const stacks = {};
      for (const g of r.data) {
        const name = g[by] || "(none)";
        stacks[name] = stacks[name] || new Map();
        const start = Date.parse(g.period_start);
        stacks[name].set(start, (stacks[name].get(start) || 0) + value(g));
      }
      $(`#usage-by-${by}`).replaceChildren(stackedBars(periods, stacks));
    }
  },

  // ---- Batches ----
  batches() {
    const list = [...state.batches.values()].sort((a, b) => b.created_at_ms - a.created_at_ms);
    $("#batches tbody").replaceChildren(...list.map((b) => {
      const c = b.counts, done = c.total - c.processing;
      const pct = c.total ? Math.round((done / c.total) * 100) : 100;
      const part = (cls, n) => { const s = el("span", { class: cls, title: `${cls}: ${n}` }); s.style.width = `${(n / Math.max(1, c.total)) * 100}%`; return s; };
      return el("tr", { "data-batch": b.id },
        el("td", {}, el("code", {}, b.id)),
        el("td", {}, b.key),
        el("td", {}, el("span", { class: "badge", "data-state": b.processing_status }, b.processing_status.replace("_", " "))),
        el("td", {}, el("div", { class: "progress", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100,
          "aria-valuenow": pct, title: `${c.succeeded} succeeded · ${c.errored} errored · ${c.processing} processing · ${c.canceled} canceled · ${c.expired} expired` },
        el("span", { class: "track" }, part("succeeded", c.succeeded), part("errored", c.errored + c.expired), part("canceled", c.canceled)),
        el("span", { class: "small pct" }, `${pct} %`))),
        el("td", { class: "num" }, `${fmt.n(done)} / ${fmt.n(c.total)}`),
        el("td", {}, timeEl(b.created_at_ms)),
        el("td", {}, b.processing_status === "in_progress"
          ? el("button", { type: "button", class: "danger cancel", onclick: () => views.cancelBatch(b.id) }, "Cancel") : null));
    }));
  },

  async cancelBatch(id) {
    if (!confirm(`Cancel batch ${id}? Queued requests are canceled; running ones finish.`)) return;
    try {
      const b = await api("POST", `/admin/batches/${encodeURIComponent(id)}/cancel`);
      state.batches.set(b.id, b);
      views.batches();
    } catch (e) { alert(e.message); }
  },

  bind() {
    $("#new-key").addEventListener("submit", views.createKey);
    for (const id of ["#filter-key", "#filter-model"]) $(id).addEventListener("input", views.requests);
    $("#filter-status").addEventListener("change", views.requests);
    for (const id of ["#usage-range", "#usage-measure"]) $(id).addEventListener("change", () => views.usage().catch(report));
  },
};
