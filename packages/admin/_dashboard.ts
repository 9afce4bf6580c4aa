/**
 * @module
 * The dashboard: one static page, no build step. It holds no data and no secret: it asks the
 * token-protected JSON routes with the token from the URL fragment (`/#token=...`, which browsers
 * never send to a server) or typed in, kept in sessionStorage. Refreshes every 2 s.
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>haduck admin</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body{font:14px system-ui,sans-serif;margin:24px;color:#1d2630;background:#f6f7f9}
 h1{font-size:20px;margin:0 0 12px} .card{background:#fff;border:1px solid #dde2e8;border-radius:8px;padding:16px;margin:12px 0}
 .grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:8px}
 .k{color:#66727f;font-size:12px} .v{font-size:18px;font-variant-numeric:tabular-nums}
 .error{color:#b3261e} #state{margin:8px 0} svg{width:100%;height:90px;background:#fafbfc;border:1px solid #eef0f3}
 form{display:flex;gap:8px} form[hidden]{display:none} input{flex:1;padding:6px} .v{overflow-wrap:anywhere}
 .v[data-field="leader"],.v[data-field="lastTakeover"]{font-size:13px}
</style></head>
<body>
<h1>haduck</h1>
<div id="state">loading</div>
<form id="login" hidden><input id="token" type="password" placeholder="admin token (HADUCK_ADMIN_TOKEN)"><button>Open</button></form>
<div id="databases"></div>
<script>
const TOKEN_KEY = "haduck-admin-token";
const fragment = new URLSearchParams(location.hash.slice(1));
if (fragment.get("token")) { sessionStorage.setItem(TOKEN_KEY, fragment.get("token")); history.replaceState(null, "", location.pathname); }
const state = document.getElementById("state"), login = document.getElementById("login");
const lagHistory = {};
login.addEventListener("submit", (event) => { event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, document.getElementById("token").value); refresh(); });
const text = (value) => String(value ?? "-").replace(/[&<>"]/g, (c) => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"})[c]);
const mib = (bytes) => (bytes / 1048576).toFixed(2) + " MiB";
function bars(values, color) {
  if (values.length === 0) return '<svg></svg>';
  const max = Math.max(...values, 1), width = 100 / values.length;
  return '<svg viewBox="0 0 100 90" preserveAspectRatio="none">' + values.map((v, i) =>
    '<rect x="' + (i * width) + '" y="' + (90 - 86 * v / max) + '" width="' + Math.max(width - 0.3, 0.2) +
    '" height="' + (86 * v / max) + '" fill="' + color + '"/>').join("") + '</svg>';
}
function field(name, label, value, cls) {
  return '<div><div class="k">' + label + '</div><div class="v ' + (cls || "") + '" data-field="' + name + '">' + text(value) + '</div></div>';
}
function render(databases) {
  document.getElementById("databases").innerHTML = databases.map((d) => {
    const lags = (lagHistory[d.db] = (lagHistory[d.db] || []).concat([d.lagMs]).slice(-60));
    return '<div class="card" data-db="' + text(d.db) + '"><h2>' + text(d.db) + ' <span class="k">' + text(d.role) +
      ', ' + text(d.store || "local-only") + '</span></h2><div class="grid">' +
      field("role", "role", d.role) +
      field("leader", "leader", d.leader || "-") +
      field("epoch", "lease epoch", d.epoch) +
      field("replicaLag", "replica lag", ((d.lagMs || 0) / 1000).toFixed(1) + " s") +
      field("lastTakeover", "last takeover", d.lastTakeover ? d.lastTakeover.at + " (" + d.lastTakeover.tookMs + " ms)" : "none") +
      field("forwarded", "forwarded statements", d.forwarded) +
      field("lastGeneration", "last generation", d.lastGeneration) +
      field("lastGenerationTime", "committed at", d.lastGenerationTime) +
      field("generationsCommitted", "generations committed", d.generationsCommitted) +
      field("generationsPending", "pending", d.generationsPending) +
      field("lagMs", "checkpoint lag", ((d.checkpointLagMs ?? d.lagMs) / 1000).toFixed(1) + " s") +
      field("uploadRate", "upload rate (last)", mib(d.uploadBytesPerSecond) + "/s") +
      field("bytesShipped", "shipped", mib(d.bytesShipped)) +
      field("lastError", "last error", d.lastError || "none", d.lastError ? "error" : "") +
      '</div><p class="k">bytes shipped per generation (newest right)</p>' + bars(d.recent.map((g) => g.bytesShipped), "#2f6fde") +
      '<p class="k">lag over the last 2 minutes</p>' + bars(lags, "#d97706") + '</div>';
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
    state.textContent = "updated " + new Date().toLocaleTimeString();
  } catch (error) { state.textContent = "cannot reach haduck: " + error.message; }
}
refresh(); setInterval(refresh, 2000);
</script></body></html>
`;
