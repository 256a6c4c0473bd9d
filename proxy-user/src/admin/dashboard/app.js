// swarm-sticky dashboard: polls the admin API once a second and redraws
// in place. No framework, no external resources.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);

function el(tag, attrs = {}, text = "") {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== "") e.textContent = text;
  return e;
}

function fmt(n) {
  return n >= 1e6 ? (n / 1e6).toFixed(1) + "M" : n >= 1e4 ? (n / 1e3).toFixed(1) + "k" : String(n);
}

function renderService(svc) {
  const id = "svc-" + svc.name;
  let card = document.getElementById(id);
  if (!card) {
    card = $("#service-tpl").content.firstElementChild.cloneNode(true);
    card.id = id;
    card.dataset.service = svc.name;
    $("#services").appendChild(card);
  }
  $(".service-name", card).textContent = svc.name;
  const rule = svc.rule;
  $(".service-rule", card).textContent = rule + " · cookie " + svc.cookie + " · " + fmt(svc.requests) + " requests";
  const total = svc.backends.reduce((sum, b) => sum + b.sessions, 0);
  const tbody = $("tbody", card);
  tbody.replaceChildren(
    ...svc.backends.map((b) => {
      const share = total > 0 ? (100 * b.sessions) / total : 0;
      const tr = el("tr", { "data-backend": svc.name + "/" + b.name, "data-state": b.state });
      const name = el("td", {}, b.name);
      if (b.task) {
        // Discovered task: where it runs, in full on hover.
        const where = b.task.node ? "node " + b.task.node.slice(0, 12) : "task " + b.task.task.slice(0, 12);
        name.appendChild(el("div", { class: "muted small" }, where));
        name.title = "task " + b.task.task + (b.task.container ? "\ncontainer " + b.task.container : "") +
          (b.task.node ? "\nnode " + b.task.node : "");
      }
      tr.appendChild(name);
      tr.appendChild(el("td", { class: "muted" }, b.addr));
      const state = el("td");
      state.appendChild(el("span", { class: "pill " + b.state, title: b.reason || "" }, b.state));
      if (b.reason) state.appendChild(el("div", { class: "muted small" }, b.reason));
      tr.appendChild(state);
      tr.appendChild(el("td", { class: "num" }, String(b.weight)));
      tr.appendChild(el("td", { class: "num" }, fmt(b.requests)));
      tr.appendChild(el("td", { class: "num" }, fmt(b.sessions)));
      const bar = el("div", { class: "bar", title: share.toFixed(1) + " %" });
      const fill = el("div");
      fill.style.width = share.toFixed(1) + "%";
      bar.appendChild(fill);
      const barCell = el("td");
      barCell.appendChild(bar);
      tr.appendChild(barCell);
      tr.appendChild(el("td", { class: "num" }, fmt(b.failovers)));
      return tr;
    })
  );
  const d = svc.decisions;
  const rejected = Object.entries(svc.rejected).filter(([, n]) => n > 0).map(([r, n]) => r + " " + n).join(", ");
  $(".service-decisions", card).textContent =
    "sticky: " + fmt(d.hit) + " hits, " + fmt(d.new) + " new, " + fmt(d.failover) + " failovers, " +
    fmt(d.migrated) + " migrated, " + fmt(d.rejected) + " rejected" + (rejected ? " (" + rejected + ")" : "");
}

function renderTls(tls) {
  const card = $("#certificates");
  card.hidden = !tls;
  if (!tls) return;
  const now = Date.now() / 1000;
  $("tbody", card).replaceChildren(
    ...tls.certificates.map((c) => {
      const tr = el("tr", { "data-source": c.source, "data-state": c.error ? "error" : "ok" });
      tr.appendChild(el("td", {}, c.names.join(", ") + (c.default ? " (default)" : "")));
      tr.appendChild(el("td", {}, c.key_type || "-"));
      tr.appendChild(el("td", { class: "muted" }, c.issuer || "-"));
      const days = c.not_after ? Math.floor((c.not_after - now) / 86400) : null;
      const expires = c.not_after ? new Date(c.not_after * 1000).toISOString().slice(0, 10) + " (" + days + " days)" : "-";
      tr.appendChild(el("td", { class: days !== null && days < 14 ? "warn" : "" }, expires));
      tr.appendChild(el("td", { class: "muted small" }, c.source));
      const state = el("td");
      state.appendChild(el("span", { class: "pill " + (c.error ? "down" : "healthy"), title: c.error || "" }, c.error ? "error" : "ok"));
      if (c.error) state.appendChild(el("div", { class: "muted small" }, c.error));
      tr.appendChild(state);
      return tr;
    })
  );
  const h = tls.handshakes;
  const full = h.completed.filter((c) => !c.resumed).reduce((s, c) => s + c.count, 0);
  const resumed = h.completed.filter((c) => c.resumed).reduce((s, c) => s + c.count, 0);
  const failed = h.failed.reduce((s, f) => s + f.count, 0);
  $("#handshakes").textContent =
    "handshakes: " + fmt(full) + " full, " + fmt(resumed) + " resumed, " + fmt(failed) + " failed";
}

function when(t) {
  return t ? new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19) + "Z" : "-";
}

// Each certificate ACME manages: state (failed with its reason), expiry,
// the next and last attempt, and the manager that orders it.
function renderAcme(managed) {
  const card = $("#acme");
  card.hidden = !managed;
  if (!managed) return;
  const now = Date.now() / 1000;
  const pill = { valid: "healthy", ordering: "draining", renewing: "draining", waiting: "draining", failed: "down", from_file: "healthy" };
  $("tbody", card).replaceChildren(
    ...managed.map((m) => {
      const tr = el("tr", { "data-names": m.names.join(","), "data-state": m.state });
      tr.appendChild(el("td", {}, m.names.join(", ")));
      const state = el("td");
      state.appendChild(el("span", { class: "pill " + (pill[m.state] || ""), title: m.error || "" }, m.state.replace("_", " ")));
      if (m.error) state.appendChild(el("div", { class: "muted small" }, m.failures + " failed in a row: " + m.error));
      tr.appendChild(state);
      const days = m.not_after ? Math.floor((m.not_after - now) / 86400) : null;
      tr.appendChild(el("td", { class: days !== null && days < 14 ? "warn" : "" }, m.not_after ? when(m.not_after) : "-"));
      tr.appendChild(el("td", { class: "muted" }, when(m.next_attempt)));
      tr.appendChild(el("td", { class: "muted" }, when(m.last_attempt)));
      tr.appendChild(el("td", { class: "muted small" }, m.holder || "-"));
      return tr;
    })
  );
}

function renderStatus(st) {
  const open = st.workers.reduce((sum, w) => sum + w.open, 0);
  $("#summary").textContent =
    "v" + st.version + " · pid " + st.pid + " · " + st.workers.length + " workers · " + open +
    " open connections · steering " + st.dataplane.steering;
  const seen = new Set(st.services.map((s) => "svc-" + s.name));
  for (const card of [...document.querySelectorAll("#services > .service")]) {
    if (!seen.has(card.id)) card.remove();
  }
  st.services.forEach(renderService);
  const warnings = [];
  if (st.dataplane.fallback_reason) warnings.push("steering: " + st.dataplane.fallback_reason);
  if (st.discovery) {
    if (!st.discovery.connected) warnings.push("Docker API unreachable: " + (st.discovery.last_error || "?"));
    for (const w of st.discovery.warnings) warnings.push(w.service + ": " + w.warning);
  }
  if (st.tls) {
    for (const c of st.tls.certificates) if (c.error) warnings.push("certificate " + c.source + ": " + c.error);
    for (const m of st.tls.acme || []) if (m.error) warnings.push("ACME " + m.names.join(", ") + ": " + m.error);
  }
  renderTls(st.tls);
  renderAcme(st.tls && st.tls.acme);
  $("#warnings").hidden = warnings.length === 0;
  $("#warning-list").replaceChildren(...warnings.map((w) => el("li", {}, w)));
  const dp = st.dataplane;
  const parts = ["listening on " + st.listeners.join(", ")];
  if (dp.steered !== null && dp.steered !== undefined) parts.push(fmt(dp.steered) + " connections steered by eBPF");
  for (const p of dp.xdp_ports) parts.push("XDP port " + p.port + ": " + fmt(p.packets) + " packets, " + fmt(p.syns_dropped) + " SYNs dropped");
  if (st.discovery) {
    const age = st.discovery.table_age_secs;
    parts.push("Docker " + (st.discovery.connected ? "connected" : "disconnected") + (age !== null ? ", table " + age.toFixed(1) + " s old" : ""));
  }
  $("#dataplane").textContent = parts.join(" · ");
}

function renderRate(points) {
  const w = 600, h = 120;
  const peak = Math.max(1, ...points.map((p) => p.rps));
  const span = 300;
  const last = points.length ? points[points.length - 1].t : 0;
  const xy = points.map((p) => {
    const x = w - ((last - p.t) / span) * w;
    const y = h - 4 - (p.rps / peak) * (h - 8);
    return x.toFixed(1) + "," + y.toFixed(1);
  });
  $("#rate-line").setAttribute("points", xy.join(" "));
  $("#rate-now").textContent = points.length ? points[points.length - 1].rps.toFixed(0) : "0";
  $("#rate-peak").textContent = peak.toFixed(0);
}

async function tick() {
  try {
    const [status, rate] = await Promise.all([
      fetch("/api/status", { cache: "no-store" }).then((r) => r.json()),
      fetch("/api/rate", { cache: "no-store" }).then((r) => r.json()),
    ]);
    renderStatus(status);
    renderRate(rate);
    const conn = $("#conn");
    conn.textContent = "live";
    conn.className = "pill healthy";
    document.body.dataset.updated = String(Date.now());
  } catch (e) {
    const conn = $("#conn");
    conn.textContent = "offline";
    conn.className = "pill down";
  }
}

tick();
setInterval(tick, 1000);
