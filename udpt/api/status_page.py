"""The status page: one self-contained HTML document an operator opens in a browser.

No token and nothing secret: counts, sizes, sequence numbers and the writer's
state, never a token, an address or an info hash. No external asset either (a
tracker's host often has no route to a CDN): the style and the chart's script
are inline, and the data travels in the page as JSON. The script draws requests
per second by action as an SVG chart, then marks the chart ``data-drawn`` so a
headless browser can tell that it ran.
"""

from __future__ import annotations

import html
from typing import Any

import orjson

__all__ = ["render_status_page"]


def render_status_page(data: dict[str, Any]) -> str:
    """The page for ``data`` (see ``udpt.api.operator.status_data`` for its members)."""
    # JSON inside <script>: "</" could close the element, so it is escaped.
    embedded = orjson.dumps(data).decode().replace("</", "<\\/")
    health = data["health"]
    verdict = "ok" if health["ok"] else health["reason"]
    return _PAGE.format(
        state_class="ok" if health["ok"] else "bad",
        verdict=html.escape(verdict),
        version=html.escape(data["version"]),
        data=embedded,
    )


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="30">
<title>udpt status</title>
<style>
  :root {{ --fg: #1d2330; --muted: #687083; --line: #e3e6ec; --bg: #f6f7f9; --card: #fff; }}
  * {{ box-sizing: border-box; }}
  body {{ margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
         color: var(--fg); background: var(--bg); }}
  header {{ display: flex; align-items: baseline; gap: 16px; padding: 18px 28px;
           background: var(--card); border-bottom: 1px solid var(--line); }}
  h1 {{ margin: 0; font-size: 20px; }}
  h2 {{ margin: 0 0 10px; font-size: 13px; text-transform: uppercase; letter-spacing: .06em;
       color: var(--muted); }}
  .badge {{ padding: 2px 10px; border-radius: 10px; font-weight: 600; }}
  .ok {{ background: #dff5e6; color: #146c2e; }}
  .bad {{ background: #fde2e1; color: #a1150f; }}
  .muted {{ color: var(--muted); }}
  main {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); gap: 16px;
         padding: 20px 28px; }}
  section {{ background: var(--card); border: 1px solid var(--line); border-radius: 8px;
            padding: 14px 16px; }}
  section.wide {{ grid-column: 1 / -1; }}
  table {{ width: 100%; border-collapse: collapse; }}
  td {{ padding: 3px 0; border-bottom: 1px solid var(--line); }}
  td {{ vertical-align: top; }}
  td:first-child {{ white-space: nowrap; padding-right: 14px; }}
  td.n {{ text-align: right; font-variant-numeric: tabular-nums; }}
  tr:last-child td {{ border-bottom: 0; }}
  .legend span {{ display: inline-block; margin-right: 14px; }}
  .legend i {{ display: inline-block; width: 10px; height: 10px; margin-right: 5px;
              border-radius: 2px; vertical-align: -1px; }}
  svg text {{ font-size: 11px; fill: var(--muted); }}
</style>
</head>
<body>
<header>
  <h1>udpt</h1>
  <span class="badge {state_class}" id="health">{verdict}</span>
  <span class="muted">version {version} · up <span id="uptime"></span>
    · refreshed every 30 s</span>
</header>
<main>
  <section class="wide">
    <h2>Requests per second by action, last hour</h2>
    <svg id="chart" width="100%" height="220" viewBox="0 0 900 220"
         preserveAspectRatio="none" role="img" aria-label="requests per second by action"></svg>
    <div class="legend" id="legend"></div>
  </section>
  <section><h2>Tracker</h2><table id="totals"></table></section>
  <section><h2>Dropped datagrams (since start)</h2><table id="dropped"></table></section>
  <section><h2>Event log</h2><table id="log"></table></section>
</main>
<script id="status-data" type="application/json">{data}</script>
<script>
(function () {{
  "use strict";
  var data = JSON.parse(document.getElementById("status-data").textContent);
  var COLORS = {{connect: "#7a5af8", announce: "#1f77d0", scrape: "#12a37f", invalid: "#e5484d"}};
  var NS = "http://www.w3.org/2000/svg";

  function num(n) {{ return Number(n).toLocaleString("en-US"); }}
  function bytes(n) {{
    var units = ["B", "KiB", "MiB", "GiB", "TiB"], i = 0;
    while (n >= 1024 && i < units.length - 1) {{ n /= 1024; i++; }}
    return (i ? n.toFixed(1) : n) + " " + units[i];
  }}
  function duration(s) {{
    if (s === null || s === undefined) return "—";
    s = Math.round(s);
    if (s < 120) return s + " s";
    if (s < 7200) return Math.round(s / 60) + " min";
    if (s < 172800) return (s / 3600).toFixed(1) + " h";
    return (s / 86400).toFixed(1) + " d";
  }}
  function rows(id, pairs) {{
    var table = document.getElementById(id);
    pairs.forEach(function (p) {{
      var tr = table.insertRow(), a = tr.insertCell(), b = tr.insertCell();
      a.textContent = p[0]; b.textContent = p[1]; b.className = "n";
    }});
  }}
  function el(name, attrs, text) {{
    var e = document.createElementNS(NS, name);
    Object.keys(attrs).forEach(function (k) {{ e.setAttribute(k, attrs[k]); }});
    if (text !== undefined) e.textContent = text;
    return e;
  }}

  document.getElementById("uptime").textContent = duration(data.uptime_seconds);
  var peers = data.peers;
  rows("totals", [
    ["torrents", num(data.torrents)],
    ["IPv4 seeders / leechers",
     peers ? num(peers["4"].seeder) + " / " + num(peers["4"].leecher) : "counting…"],
    ["IPv6 seeders / leechers",
     peers ? num(peers["6"].seeder) + " / " + num(peers["6"].leecher) : "counting…"],
    ["peers counted", data.peers_counted_seconds_ago === null ? "not yet"
     : duration(data.peers_counted_seconds_ago) + " ago"],
    ["requests since start", num(data.requests_total)],
    ["replies since start", num(data.responses_total)],
    ["event-loop lag", (data.health.loop_lag_seconds * 1000).toFixed(1) + " ms"]
  ]);
  var dropped = Object.keys(data.dropped).sort();
  rows("dropped", dropped.length ? dropped.map(function (r) {{
    return [r.replace(/_/g, " "), num(data.dropped[r])];
  }}) : [["none", "0"]]);
  var log = data.log;
  rows("log", [
    ["writer", data.writer],
    ["size on disk", bytes(log.size_bytes)],
    ["events kept", log.last_seq ? num(log.first_seq) + " … " + num(log.last_seq) : "none yet"],
    ["newest snapshot", log.snapshot_seq ? "at " + num(log.snapshot_seq) : "none yet"],
    ["snapshot age", duration(log.snapshot_age_seconds)]
  ]);

  // Requests per second between consecutive samples, one line per action.
  var samples = data.samples, svg = document.getElementById("chart");
  var W = 900, H = 220, left = 48, right = 10, top = 10, bottom = 24;
  // The last hour, or less while the tracker has not been up that long.
  var end = samples.length ? samples[samples.length - 1].at : 0;
  var span = Math.min(3600, Math.max(end - (samples.length ? samples[0].at : 0), 60));
  var start = end - span;
  var series = {{}}, peak = 0;
  data.actions.forEach(function (a) {{ series[a] = []; }});
  for (var i = 1; i < samples.length; i++) {{
    var dt = samples[i].at - samples[i - 1].at;
    if (dt <= 0) continue;
    data.actions.forEach(function (a) {{
      var rate = ((samples[i].requests[a] || 0) - (samples[i - 1].requests[a] || 0)) / dt;
      series[a].push([samples[i].at, Math.max(rate, 0)]);
      peak = Math.max(peak, rate);
    }});
  }}
  var ceiling = peak > 0 ? Math.pow(10, Math.ceil(Math.log10(peak * 1.1))) : 1;
  if (ceiling / 2 > peak * 1.1) ceiling /= 2;
  function x(t) {{ return left + (t - start) / span * (W - left - right); }}
  function y(v) {{ return top + (1 - v / ceiling) * (H - top - bottom); }}
  for (var g = 0; g <= 4; g++) {{
    var v = ceiling * g / 4;
    svg.appendChild(el("line", {{x1: left, x2: W - right, y1: y(v), y2: y(v),
                                  stroke: "#e3e6ec"}}));
    svg.appendChild(el("text", {{x: left - 6, y: y(v) + 4, "text-anchor": "end"}},
                       v >= 1000 ? (v / 1000) + "k" : String(+v.toFixed(2))));
  }}
  [1, 0.75, 0.5, 0.25, 0].forEach(function (f) {{
    svg.appendChild(el("text", {{x: x(end - f * span), y: H - 6,
                                  "text-anchor": f === 1 ? "start" : f ? "middle" : "end"}},
                       f ? "-" + duration(f * span) : "now"));
  }});
  var drawn = 0, legend = document.getElementById("legend");
  data.actions.forEach(function (a) {{
    var pts = series[a].filter(function (p) {{ return p[0] >= start; }});
    if (pts.length) {{
      svg.appendChild(el("polyline", {{
        points: pts.map(function (p) {{ return x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1); }})
          .join(" "),
        fill: "none", stroke: COLORS[a], "stroke-width": 2, "stroke-linejoin": "round"
      }}));
      drawn += pts.length;
    }}
    var last = pts.length ? pts[pts.length - 1][1] : 0;
    var item = document.createElement("span"), swatch = document.createElement("i");
    swatch.style.background = COLORS[a];
    item.appendChild(swatch);
    item.appendChild(document.createTextNode(a + " " + last.toFixed(1) + "/s"));
    legend.appendChild(item);
  }});
  if (!drawn) {{
    svg.appendChild(el("text", {{x: W / 2, y: H / 2, "text-anchor": "middle"}},
                       "collecting samples (one every 10 s)…"));
  }}
  svg.setAttribute("data-drawn", String(drawn));
}})();
</script>
</body>
</html>
"""
