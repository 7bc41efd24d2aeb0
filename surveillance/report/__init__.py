"""The investigator's report of an offline replay: one self-contained HTML file.

``render_report(records, meta)`` turns the window records a replay writes to ``scores.jsonl``
(one dict per window) and the run's metadata into a single HTML document that opens offline:
inline CSS, inline SVG charts drawn here, a few lines of vanilla JavaScript to open and close
window details, and no fetched script, font or image. The output is a pure function of the
input (no clock, no randomness), so the same replay gives the same bytes.

The report reads like a case file:

1. what was replayed and with which model and calibration, and how the method works;
2. a summary: windows and alerts per instrument, the alerts ranked by score, and a day
   timeline per instrument (score against the threshold, the two baselines beneath);
3. a heatmap of every fact's z over the day (how unlike its own simulation the market was);
4. one section per window, alerts first and open: the real spread distribution against the
   simulated one (as in MarS Fig. 8), the real mid-price path against the rollout fan, and the
   facts table with each fact's simulation-versus-simulation null.

Any record field may be missing or null (a quiet window has no evidence): the report then says
"no data" in place of the chart rather than failing. All text from the input is escaped.

Modules: ``records`` reads the window records, ``svg`` holds the drawing primitives and colours,
``charts`` the five charts, ``assets`` the inline CSS and script, ``page`` the page assembly and
the entry points re-exported here.
"""

from surveillance.report.assets import CSS, SCRIPT
from surveillance.report.charts import (
    heatmap_chart,
    null_strip,
    price_chart,
    spread_chart,
    timeline_chart,
)
from surveillance.report.page import render_report, write_report
from surveillance.report.records import DIVERGED_Z, FACT_INFO, SEVERITY_ORDER
from surveillance.report.svg import (
    FAN_INNER,
    FAN_OUTER,
    HEATMAP_Z_LIMIT,
    MAX_PATH_POINTS,
    NORMAL_BAR,
    RDBU,
    REAL,
    SEVERITY_COLOUR,
    SIM,
    SIM_DARK,
    downsample,
)

__all__ = [
    "CSS",
    "DIVERGED_Z",
    "FACT_INFO",
    "FAN_INNER",
    "FAN_OUTER",
    "HEATMAP_Z_LIMIT",
    "MAX_PATH_POINTS",
    "NORMAL_BAR",
    "RDBU",
    "REAL",
    "SCRIPT",
    "SEVERITY_COLOUR",
    "SEVERITY_ORDER",
    "SIM",
    "SIM_DARK",
    "downsample",
    "heatmap_chart",
    "null_strip",
    "price_chart",
    "render_report",
    "spread_chart",
    "timeline_chart",
    "write_report",
]
