"""The report's inline stylesheet and script (no file is fetched when the report opens)."""

from __future__ import annotations

from string import Template

from surveillance.report.svg import REAL, SEVERITY_COLOUR, SIM

CSS = Template("""
:root { --ink:#1d2430; --muted:#5b6573; --line:#d8dde4; --panel:#f6f8fa; --real:$real;
        --sim:$sim; --alert:#b2182b; }
* { box-sizing: border-box; }
body { margin:0; color:var(--ink); background:#fff; font: 15px/1.5 -apple-system, "Segoe UI",
       Roboto, "Helvetica Neue", Arial, "Liberation Sans", sans-serif; }
main { max-width: 1200px; margin: 0 auto; padding: 24px 28px 60px; }
h1 { font-size: 26px; margin: 0 0 2px; }
h2 { font-size: 20px; margin: 36px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--ink); }
h3 { font-size: 16px; margin: 22px 0 6px; }
.subtitle { color: var(--muted); margin: 0 0 16px; }
.kv { display:grid; grid-template-columns: 190px 1fr; gap: 3px 16px; margin: 0; }
.kv dt { color: var(--muted); } .kv dd { margin:0; }
code, .mono { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 13px; }
.cmd { display:block; background: var(--panel); padding: 6px 10px; border-radius: 4px;
       overflow-wrap: anywhere; }
.method { background: var(--panel); border-left: 4px solid var(--sim); padding: 10px 16px;
          margin: 16px 0; }
.method p { margin: 6px 0; } .method ul { margin: 6px 0; padding-left: 20px; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 14px; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: left;
         vertical-align: middle; }
th { background: var(--panel); font-weight: 600; border-bottom: 1px solid #b9c1cc; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.num { white-space: nowrap; }
tr.diverged td { background: #fdeee6; } tr.diverged td:first-child { font-weight: 600;
   box-shadow: inset 4px 0 0 var(--real); }
.badge { display:inline-block; padding: 0 8px; border-radius: 10px; font-size: 12px;
         font-weight: 600; line-height: 20px; color:#fff; }
.badge.none { background: #e6e9ee; color: var(--muted); }
.badge.low { background: $low; color:#1d2430; } .badge.medium { background: $medium; }
.badge.high { background: $high; }
.tag { display:inline-block; font-size: 12px; padding: 0 6px; border-radius: 3px;
       background:#fdeee6; color:#8a3a0c; border:1px solid #f2c5ad; margin: 1px 2px; }
.muted { color: var(--muted); } .small { font-size: 13px; }
svg.chart { display:block; max-width:100%; height:auto; }
svg.chart text { font-family: inherit; fill: var(--ink); }
svg .tick { font-size: 11px; fill: var(--muted); } svg .legend { font-size: 12px; }
svg .axis-label { font-size: 12px; fill: var(--muted); }
svg .panel-title, svg .chart-note { font-size: 12.5px; font-weight: 600; white-space: pre; }
svg .row-label { font-size: 12.5px; } svg .cell { font-size: 11px; pointer-events: none; }
svg .grid { stroke: #e8ebef; stroke-width: 1; } svg .axis { stroke: #8b95a3; stroke-width: 1; }
svg .threshold { stroke: #1d2430; stroke-width: 1.6; stroke-dasharray: 6 3; }
svg .alert-band { fill: #fbe3dc; } svg .alert-mark { font-size: 12px; }
svg .missing { font-size: 14px; fill: var(--muted); }
svg .nodata-box { fill: var(--panel); stroke: var(--line); stroke-dasharray: 4 3; }
svg .nodata { font-size: 13px; fill: var(--muted); }
svg.strip { display:block; } svg .strip-axis { stroke: var(--line); }
.charts { display:grid; grid-template-columns: 1fr 1fr; gap: 14px; margin: 10px 0; }
.figure { border: 1px solid var(--line); border-radius: 4px; padding: 6px 6px 2px; }
.figure h4 { margin: 2px 4px 0; font-size: 13.5px; }
.figure p { margin: 0 4px 4px; font-size: 12.5px; color: var(--muted); }
details.window { border: 1px solid var(--line); border-radius: 6px; margin: 10px 0; }
details.window.alert { border-color: #e5a08f; border-left: 5px solid var(--alert); }
details.window > summary { cursor: pointer; padding: 8px 12px; background: var(--panel);
   border-radius: 6px; display: flex; flex-wrap: wrap; gap: 6px 16px; align-items: center; }
details.window[open] > summary { border-bottom: 1px solid var(--line);
   border-radius: 6px 6px 0 0; }
details.window > summary::-webkit-details-marker { display: none; }
details.window > summary::before { content: "▸"; color: var(--muted); width: 10px; }
details.window[open] > summary::before { content: "▾"; }
details.window > .body { padding: 6px 14px 10px; }
summary .when { font-weight: 600; min-width: 250px; } summary .score { min-width: 150px; }
.toolbar { margin: 8px 0; } .toolbar button { font: inherit; font-size: 13px; padding: 3px 10px;
   border: 1px solid #b9c1cc; border-radius: 4px; background: #fff; cursor: pointer; }
.nodata-line { background: var(--panel); border: 1px dashed var(--line); padding: 8px 12px;
   color: var(--muted); }
.stats { display:flex; flex-wrap: wrap; gap: 8px; margin: 10px 0 4px; }
.stats > div { border: 1px solid var(--line); border-radius: 4px; padding: 3px 10px;
   min-width: 110px; }
.stats span { display:block; font-size: 11.5px; color: var(--muted); }
.stats b { font-variant-numeric: tabular-nums; font-size: 14.5px; }
table.facts { width: 100%; } table.facts td:first-child { width: 46%; }
a { color: #0a5a9c; }
footer { margin-top: 40px; color: var(--muted); font-size: 12.5px; border-top: 1px solid var(--line);
         padding-top: 8px; }
@media print {
  body { font-size: 11pt; } main { max-width: none; padding: 0; }
  .toolbar { display: none; } h2 { break-after: avoid; }
  details.window > summary { background: none; }
  .charts { grid-template-columns: 1fr; }
  .figure, tr, svg.chart, .stats, summary { break-inside: avoid; }
  details.window { break-before: auto; }
}
""").substitute(
    real=REAL,
    sim=SIM,
    low=SEVERITY_COLOUR["low"],
    medium=SEVERITY_COLOUR["medium"],
    high=SEVERITY_COLOUR["high"],
)

# Expand / collapse all, and open a window's details when a link targets it. Printing prints
# the windows as they are: alerts open, the others as a one-line index ("Expand all" first to
# print every window in full).
SCRIPT = """
(function () {
  function all(open) { document.querySelectorAll('details.window').forEach(function (d) {
    d.open = open; }); }
  function reveal() { var id = location.hash.slice(1); if (!id) return;
    var el = document.getElementById(id); if (el && el.tagName === 'DETAILS') el.open = true; }
  document.querySelectorAll('[data-open]').forEach(function (b) {
    b.addEventListener('click', function () { all(b.getAttribute('data-open') === '1'); }); });
  window.addEventListener('hashchange', reveal); reveal();
})();
"""
