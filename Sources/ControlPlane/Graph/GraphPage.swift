#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The mesh page served at the status port's `/`: one self-contained HTML document (inline
/// CSS, JS and SVG; nothing fetched from elsewhere), drawn at once from the graph it is
/// served with, then refreshed from `api/graph` every few seconds.
public enum GraphPage {
    public static func html(_ graph: MeshGraph) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        let json = (try? String(decoding: encoder.encode(graph), as: UTF8.self)) ?? "null"
        // Inside <script>: no "<" may close the element early.
        return template.replacing("__GRAPH_JSON__", with: json.replacing("<", with: "\\u003c"))
    }

    static let template = #"""
<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>meshd mesh</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 16px; color: #222; }
h1 { font-size: 18px; margin: 0 0 4px; } h2 { font-size: 15px; margin: 18px 0 6px; }
#meta { color: #666; } #meta.error { color: #b00; }
svg { border: 1px solid #ddd; background: #fafafa; }
.node rect { fill: #fff; stroke: #567; rx: 6; } .node.service rect { fill: #eef4ff; stroke: #36c; }
.node text { font-size: 12px; } .node .kind { fill: #888; font-size: 10px; }
.edge path { fill: none; stroke: #7a8; stroke-width: 2; } .edge.errors path { stroke: #d33; }
.edge text { font-size: 11px; fill: #333; text-anchor: middle; } .mtls { fill: #080; color: #080; font-weight: bold; }
#arrow path { fill: #7a8; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
.SYNCED { color: #080; } .STALE { color: #a60; } .NACK { color: #b00; font-weight: bold; }
</style></head>
<body>
<h1>meshd mesh</h1>
<div id="meta"></div>
<svg id="graph" width="900" height="200"></svg>
<h2>Edges</h2>
<table id="edges"><thead><tr><th>from</th><th>to</th><th>req/s</th><th>errors</th><th>p99</th><th>security</th></tr></thead><tbody></tbody></table>
<h2>Proxies</h2>
<table id="proxies"><thead><tr><th>proxy</th><th>kind</th><th>sync</th><th>NACK reason</th><th>plugins</th><th>metrics scrape</th></tr></thead><tbody></tbody></table>
<script id="initial" type="application/json">__GRAPH_JSON__</script>
<script>
"use strict";
const SVG = "http://www.w3.org/2000/svg", W = 150, H = 44, DX = 310, DY = 80;
function el(tag, attrs, text, ns) {
  const e = ns ? document.createElementNS(SVG, tag) : document.createElement(tag);
  for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}
const rate = v => v >= 10 ? v.toFixed(0) : v.toFixed(2);
const ms = v => v === undefined || v === null ? "-" : (v >= 10 ? v.toFixed(0) : v.toFixed(1)) + " ms";
const errors = e => (100 * e.errorRatio).toFixed(1) + "% err";
function render(g) {
  const names = {}, pos = {}, perLayer = {};
  for (const n of g.nodes) {
    names[n.id] = n.kind === "service" ? n.name + " (svc)" : n.name;
    const i = perLayer[n.layer] = (perLayer[n.layer] || 0) + 1;
    pos[n.id] = { x: 20 + n.layer * DX, y: 20 + (i - 1) * DY };
  }
  const svg = document.getElementById("graph");
  svg.replaceChildren();
  const marker = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7,
    orient: "auto" }, undefined, true);
  marker.append(el("path", { d: "M0,0 L10,5 L0,10 z" }, undefined, true));
  const defs = el("defs", {}, undefined, true);
  defs.append(marker);
  svg.append(defs);
  const layers = Object.keys(perLayer).length, rows = Math.max(1, ...Object.values(perLayer));
  svg.setAttribute("width", Math.max(900, 40 + layers * DX));
  svg.setAttribute("height", Math.max(120, 40 + rows * DY));
  for (const e of g.edges) {
    const a = pos[e.source], b = pos[e.target];
    if (!a || !b) continue;
    const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2, mx = (x1 + x2) / 2;
    const mtls = e.connectionSecurityPolicy === "mutual_tls";
    const grp = el("g", { class: "edge" + (e.errorRatio > 0 ? " errors" : ""), "data-source": e.source,
      "data-target": e.target, "data-rps": e.requestsPerSecond, "data-security": e.connectionSecurityPolicy }, undefined, true);
    grp.append(el("path", { d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, "marker-end": "url(#arrow)" }, undefined, true));
    const t = el("text", { x: mx, y: (y1 + y2) / 2 - 18 }, undefined, true);
    if (mtls) t.append(el("tspan", { class: "mtls" }, "mTLS · ", true));
    t.append(el("tspan", {}, rate(e.requestsPerSecond) + " rps", true));
    t.append(el("tspan", { x: mx, dy: 13 }, errors(e) + " · p99 " + ms(e.p99Milliseconds), true));
    grp.append(t);
    svg.append(grp);
  }
  for (const n of g.nodes) {
    const p = pos[n.id];
    const grp = el("g", { class: "node " + n.kind, "data-id": n.id, transform: `translate(${p.x},${p.y})` }, undefined, true);
    grp.append(el("rect", { width: W, height: H }, undefined, true));
    grp.append(el("text", { x: 8, y: 18 }, n.name, true));
    grp.append(el("text", { x: 8, y: 34, class: "kind" }, n.kind + (n.namespace ? " · " + n.namespace : ""), true));
    svg.append(grp);
  }
  const edges = document.querySelector("#edges tbody");
  edges.replaceChildren(...g.edges.map(e => {
    const tr = el("tr", { class: "edge-row" });
    for (const v of [names[e.source] || e.source, names[e.target] || e.target, rate(e.requestsPerSecond),
                     errors(e), ms(e.p99Milliseconds)]) tr.append(el("td", {}, v));
    const mtls = e.connectionSecurityPolicy === "mutual_tls";
    tr.append(el("td", mtls ? { class: "mtls" } : {}, mtls ? "mTLS" : e.connectionSecurityPolicy));
    return tr;
  }));
  const proxies = document.querySelector("#proxies tbody");
  proxies.replaceChildren(...g.proxies.map(p => {
    const tr = el("tr", { class: "proxy-row" });
    tr.append(el("td", {}, p.id), el("td", {}, p.kind), el("td", { class: p.syncStatus }, p.syncStatus),
              el("td", {}, p.nackReason || ""), el("td", {}, p.plugins.join(", ") || "-"), el("td", {}, p.scrape));
    return tr;
  }));
  const meta = document.getElementById("meta");
  meta.className = "";
  meta.textContent = `${g.proxies.length} proxies · ${g.edges.length} edges · rates over the last ${g.windowSeconds.toFixed(0)} s · updated ${new Date(g.generatedAt).toLocaleTimeString()}`;
}
async function refresh() {
  try {
    const r = await fetch("api/graph", { cache: "no-store" });
    if (!r.ok) throw new Error("status " + r.status);
    render(await r.json());
  } catch (err) {
    const meta = document.getElementById("meta");
    meta.className = "error";
    meta.textContent = "control plane unreachable (" + err.message + "); showing the last graph";
  }
}
render(JSON.parse(document.getElementById("initial").textContent));
setInterval(refresh, 3000);
</script>
</body></html>
"""#
}
