/**
 * @module
 * The dashboard: one static page, no build step. It holds no data and no secret: it asks the
 * token-protected JSON routes with the token from the URL fragment (`/#token=...`, which browsers
 * never send to a server) or typed in, kept in sessionStorage. Refreshes every second and keeps
 * the last two minutes of samples in the page (one point per sample): a chart starts when the
 * page opens. Charts are inline SVG drawn by `lineChart` (_chart.ts, embedded as its source).
 */
import { lineChart } from "./_chart.ts";
import { DASHBOARD_SCRIPT } from "./_dashboard_script.ts";

const STYLE = `
 body{font:14px system-ui,sans-serif;margin:24px;color:#1d2630;background:#f6f7f9}
 h1{font-size:20px;margin:0 0 12px} h2{font-size:17px;margin:0 0 10px} h3{font-size:14px;margin:14px 0 6px;color:#3b4652}
 .card{background:#fff;border:1px solid #dde2e8;border-radius:8px;padding:16px;margin:12px 0}
 .grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(180px,1fr));gap:8px}
 .k{color:#66727f;font-size:12px;white-space:nowrap}
 .v{font-size:18px;font-variant-numeric:tabular-nums;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
 .v.small{font-size:13px;line-height:22px} .error{color:#b3261e} #state{margin:8px 0;white-space:nowrap}
 form{display:flex;gap:8px} form[hidden]{display:none} input{flex:1;padding:6px}
 .badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:500;vertical-align:middle}
 .badge.leader{background:#dcfce7;color:#14532d} .badge.follower{background:#e0ecff;color:#1e3a8a}
 .badge.candidate{background:#fef3c7;color:#78350f} .badge.stale{background:#fde2e1;color:#7f1d1d}
 table.nodes{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums;margin-top:6px}
 table.nodes th,table.nodes td{text-align:left;padding:4px 10px 4px 0;border-bottom:1px solid #eef0f3;white-space:nowrap}
 table.nodes th{color:#66727f;font-weight:400;font-size:12px}
 .failover{margin:8px 0 0;white-space:nowrap;overflow:hidden;text-overflow:ellipsis} time{white-space:nowrap}
 .charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(440px,1fr));gap:12px;margin-top:8px}
 figure.chart{margin:0;background:#fafbfc;border:1px solid #eef0f3;border-radius:6px;padding:8px 8px 4px}
 figcaption{font-size:13px;font-weight:600;margin:0 0 4px 4px} figcaption .unit{color:#66727f;font-weight:400}
 figure.chart svg{width:100%;height:auto;display:block}
 figure.chart svg text{font:11px system-ui,sans-serif;fill:#4a5561} figure.chart svg .axis-label{font-style:italic}
 .empty{aspect-ratio:560/200;display:flex;align-items:center;justify-content:center;color:#66727f;
  border:1px dashed #d5dbe2;border-radius:4px;background:#fff}
`;

export const DASHBOARD_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>haduck admin</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">
<style>${STYLE}</style></head>
<body>
<h1>haduck</h1>
<div id="state">loading</div>
<form id="login" hidden><input id="token" type="password" autocomplete="off" placeholder="admin token (HADUCK_ADMIN_TOKEN)"><button>Open</button></form>
<div id="databases"></div>
<script>
const lineChart = ${lineChart.toString()};
${DASHBOARD_SCRIPT}
</script></body></html>
`;
