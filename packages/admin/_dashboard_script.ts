/**
 * @module
 * The dashboard's script (browser JavaScript, as text): reads `/status` with the token every
 * second, keeps two minutes of samples per database, and renders per database the cluster panel
 * (who leads, every node's role, epoch and lag, the last failover), the replication figures and
 * the charts: bytes shipped per generation (MiB), checkpoint lag and WAL lag (ms), WAL frames
 * shipped per second (frames) and, in a cluster, this node's replica lag (ms). Every value goes
 * through `text()` (HTML-escaped): status fields such as the last error come from outside.
 */
export const DASHBOARD_SCRIPT = String.raw`
const TOKEN_KEY = "haduck-admin-token";
const REFRESH_MS = 1000, SAMPLES_MAX = 120, WINDOW_MS = 30000;
const fragment = new URLSearchParams(location.hash.slice(1));
if (fragment.get("token")) { sessionStorage.setItem(TOKEN_KEY, fragment.get("token")); history.replaceState(null, "", location.pathname); }
const state = document.getElementById("state"), login = document.getElementById("login");
const samples = {};
login.addEventListener("submit", (event) => { event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, document.getElementById("token").value); refresh(); });
const text = (value) => String(value ?? "-").replace(/[&<>"]/g, (c) => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"})[c]);
const mib = (bytes) => ((bytes || 0) / 1048576).toFixed(2) + " MiB";
const ms = (value) => Math.round(value || 0).toLocaleString("en-US") + " ms";
const pad = (n) => String(n).padStart(2, "0");
/** A timestamp as local clock time (with the date when it is not today), never wrapped. */
function when(iso) {
  if (!iso) return "-";
  const d = new Date(iso), today = new Date();
  const clock = pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  const date = d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate());
  return '<time datetime="' + text(iso) + '" title="' + text(iso) + '">' +
    (d.toDateString() === today.toDateString() ? clock : date + " " + clock) + "</time>";
}
function ago(msAgo) {
  if (msAgo < 1500) return "now";
  return msAgo < 120000 ? Math.round(msAgo / 1000) + " s ago" : Math.round(msAgo / 60000) + " min ago";
}
function field(name, label, value, cls) {
  return '<div><div class="k">' + label + '</div><div class="v ' + (cls || "") + '" data-field="' + name +
    '" title="' + text(value) + '">' + text(value) + "</div></div>";
}
function htmlField(name, label, html, cls) {
  return '<div><div class="k">' + label + '</div><div class="v ' + (cls || "") + '" data-field="' + name + '">' + html +
    "</div></div>";
}
function badge(role, stale) {
  return '<span class="badge ' + (stale ? "stale" : text(role)) + '">' + text(role) + (stale ? " (not heard from)" : "") +
    "</span>";
}
/** A node not heard from for this long is shown as such (it reports every one or two seconds). */
const STALE_MS = 10000;
function clusterPanel(d) {
  if (d.nodes === null || d.nodes === undefined) {
    return '<section data-panel="cluster"><h3>Cluster</h3><p class="k" data-field="clusterMode">a single node: it ' +
      "leads itself (no lease; serve with a store to run a cluster)</p>" +
      '<div class="grid">' + field("role", "this node", d.role) + "</div></section>";
  }
  const nodes = d.nodes.slice().sort((a, b) => (a.role === "leader" ? 0 : 1) - (b.role === "leader" ? 0 : 1) ||
    a.address.localeCompare(b.address));
  const rows = nodes.map((n) => '<tr data-node="' + text(n.address) + '" data-role="' + text(n.role) + '"><td>' +
    text(n.address) + (n.address === d.address ? ' <span class="k">(this node)</span>' : "") + "</td><td>" +
    badge(n.role, n.seenMsAgo > STALE_MS) + "</td><td>" + text(n.epoch) + "</td><td>" +
    (n.role === "leader" ? "-" : ms(n.lagMs)) + "</td><td>" + (n.address === d.address ? "this node" : ago(n.seenMsAgo)) +
    "</td></tr>").join("");
  const f = d.lastFailover;
  const failover = f
    ? when(f.at) + " from <b>" + text(f.from || "(no address)") + "</b> to <b>" + text(f.to) + "</b> (" + text(f.kind) +
      ", epoch " + text(f.epoch) + ", promoted in " + ms(f.tookMs) + ")"
    : "none seen (the first leader still leads)";
  return '<section data-panel="cluster"><h3>Cluster</h3><div class="grid">' +
    field("leader", "leader", d.leader || "none (electing)", "small") +
    field("role", "this node", d.role) +
    field("epoch", "lease epoch", d.epoch) +
    field("replicaLag", "replica lag", ms(d.lagMs)) +
    field("forwarded", "forwarded statements", d.forwarded) +
    htmlField("lastTakeover", "this node's last takeover", d.lastTakeover ? when(d.lastTakeover.at) + " (" +
      ms(d.lastTakeover.tookMs) + ")" : "none", "small") +
    '</div><p class="failover"><span class="k">last failover</span> <span data-field="lastFailover">' + failover +
    '</span></p><table class="nodes"><thead><tr><th>node</th><th>role</th><th>epoch</th><th>replica lag</th>' +
    "<th>last heard</th></tr></thead><tbody>" + rows + "</tbody></table></section>";
}
function replicationPanel(d) {
  return '<section data-panel="replication"><h3>Replication</h3><div class="grid">' +
    field("lastGeneration", "last generation", d.lastGeneration) +
    htmlField("lastGenerationTime", "committed at", when(d.lastGenerationTime), "small") +
    field("generationsCommitted", "generations committed", d.generationsCommitted) +
    field("generationsPending", "pending", d.generationsPending) +
    field("lagMs", "checkpoint lag", ms(d.checkpointLagMs ?? d.lagMs)) +
    field("walLagMs", "WAL lag", ms(d.walLagMs)) +
    field("framesShipped", "WAL frames shipped", d.framesShipped) +
    htmlField("lastDurableCommit", "last durable commit", when(d.lastDurableCommit), "small") +
    field("uploadRate", "upload rate (last)", mib(d.uploadBytesPerSecond) + "/s") +
    field("bytesShipped", "shipped", mib(d.bytesShipped)) +
    field("lastError", "last error", d.lastError || "none", d.lastError ? "error" : "") +
    "</div>" + (d.framesStopped ? '<p class="k error">WAL frames stopped: ' + text(d.framesStopped) + "</p>" : "") +
    "</section>";
}
function charts(d, history) {
  const follower = d.role !== "leader";
  const series = (key) => history.map((s) => ({ t: s.t, v: s[key] }));
  const frames = history.slice(1).map((s, i) => ({ t: s.t,
    v: Math.max(0, s.framesShipped - history[i].framesShipped) * 1000 / Math.max(1, s.t - history[i].t) }));
  const out = [
    lineChart(d.recent.map((g) => ({ t: Date.parse(g.time), v: g.bytesShipped / 1048576 })), { id: "bytesPerGeneration",
      title: "Bytes shipped per generation", unit: "MiB", kind: "stem", valueMin: 0.01, spanMinMs: 120000,
      empty: follower ? "no generations shipped by this node (the leader ships them)" : "no generations yet" }),
    lineChart(series("checkpointLagMs"), { id: "checkpointLag", title: "Checkpoint lag", unit: "ms", valueMin: 10,
      empty: "no samples yet", color: "#d97706", spanMinMs: WINDOW_MS }),
    lineChart(series("walLagMs"), { id: "walLag", title: "WAL lag (age of the oldest commit not in the store)",
      unit: "ms", valueMin: 10, empty: "no samples yet", color: "#7c3aed", spanMinMs: WINDOW_MS }),
    lineChart(frames, { id: "walFrames", title: "WAL frames shipped per second", unit: "frames", integer: true,
      valueMin: 4, empty: "no samples yet (two are needed)", color: "#059669", spanMinMs: WINDOW_MS }),
  ];
  if (d.nodes) {
    out.push(lineChart(series("replicaLagMs"), { id: "replicaLag", title: d.role === "leader"
      ? "Replica lag (the furthest follower behind this leader)" : "Replica lag (this node behind the leader)",
      unit: "ms", valueMin: 10, empty: "no samples yet", color: "#0891b2", spanMinMs: WINDOW_MS }));
  }
  return '<div class="charts">' + out.join("") + "</div>";
}
function render(databases) {
  const now = Date.now();
  document.getElementById("databases").innerHTML = databases.map((d) => {
    // A leader's replica lag is its furthest follower's (as last heard); a follower's, its own.
    const replicaLagMs = d.role === "leader" && d.nodes
      ? Math.max(0, ...d.nodes.filter((n) => n.address !== d.address && n.seenMsAgo <= STALE_MS).map((n) => n.lagMs))
      : d.lagMs ?? 0;
    const history = (samples[d.db] = (samples[d.db] || []).concat([{ t: now, checkpointLagMs: d.checkpointLagMs ?? 0,
      walLagMs: d.walLagMs ?? 0, replicaLagMs, framesShipped: d.framesShipped ?? 0 }]).slice(-SAMPLES_MAX));
    return '<div class="card" data-db="' + text(d.db) + '"><h2>' + text(d.db) + " " + badge(d.role, false) +
      ' <span class="k">' + text(d.store || "local-only") + "</span></h2>" + clusterPanel(d) + replicationPanel(d) +
      charts(d, history) + "</div>";
  }).join("");
}
async function refresh() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) { state.textContent = "token required: open /#token=... or type it below"; login.hidden = false; return; }
  try {
    const response = await fetch("status", { headers: { authorization: "Bearer " + token } });
    if (response.status === 401) { sessionStorage.removeItem(TOKEN_KEY); state.textContent = "unauthorized (401): wrong token";
      login.hidden = false; document.getElementById("databases").innerHTML = ""; return; }
    if (!response.ok) throw new Error("status " + response.status);
    login.hidden = true;
    const body = await response.json();
    render(body.databases);
    const now = new Date();
    state.textContent = "updated " + pad(now.getHours()) + ":" + pad(now.getMinutes()) + ":" + pad(now.getSeconds());
  } catch (error) { state.textContent = "cannot reach haduck: " + error.message; }
}
refresh(); setInterval(refresh, REFRESH_MS);
`;
