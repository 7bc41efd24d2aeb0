"""The investigator's HTML report: self-contained, deterministic, escaped, complete."""

from __future__ import annotations

import math
import random
import re
from html.parser import HTMLParser

import pytest

from surveillance.report import downsample, render_report, write_report

FACTS = (
    "spread",
    "spread_time_weighted",
    "volatility",
    "mean_order_volume",
    "aggressive_order_ratio",
    "buy_order_ratio",
    "cancel_ratio",
    "return_1m",
    "inter_arrival",
)
WINDOW_NS = 25 * 60 * 10**9
OPEN_NS = (9 * 3600 + 30 * 60) * 10**9  # 09:30 in ns after midnight, as LOBSTER times


def _pmf(rng: random.Random, centre: float, width: float, tail: float = 0.0) -> dict:
    ticks = list(range(1, 60))
    w = [
        math.exp(-0.5 * ((k - centre) / width) ** 2) + tail * math.exp(-0.5 * ((k - 45) / 4) ** 2)
        for k in ticks
    ]
    w = [x * (0.9 + 0.2 * rng.random()) for x in w]
    keep = [(k, x) for k, x in zip(ticks, w, strict=True) if x > 1e-3]
    total = sum(x for _, x in keep)
    return {"ticks": [k for k, _ in keep], "weight": [round(x / total, 6) for _, x in keep]}


def make_record(
    instrument: str,
    i: int,
    *,
    alert: bool = False,
    evidence: bool = True,
    seed: int = 7,
    path_points: int = 151,
) -> dict:
    """One window record as the replay writes it; an alert window has a wide-spread tail and a
    price that runs out of the rollout fan."""
    rng = random.Random(f"{instrument}-{i}-{seed}")
    start_ns = OPEN_NS + i * WINDOW_NS
    start_s = start_ns // 10**9
    hh, mm = divmod(start_s // 60, 60)
    eh, em = divmod((start_s + 1500) // 60, 60)
    facts = {}
    for f in FACTS:
        null = [round(0.93 + 0.03 * rng.gauss(0, 1), 6) for _ in range(32)]
        mean = sum(null) / len(null)
        std = max(math.sqrt(sum((x - mean) ** 2 for x in null) / (len(null) - 1)), 0.02)
        shift = 0.0
        if alert and f in ("spread_time_weighted", "spread", "cancel_ratio"):
            shift = {"spread_time_weighted": -0.24, "spread": -0.19, "cancel_ratio": -0.1}[f]
        ovl = min(1.0, mean + shift + 0.02 * rng.gauss(0, 1))
        z = (ovl - mean) / std
        p = (1 + sum(x <= ovl for x in null)) / 33
        facts[f] = {
            "ovl": ovl,
            "null_mean": mean,
            "null_std": std,
            "z": z,
            "p_value": p,
            "null": null,
        }
    zs = [e["z"] for e in facts.values()]
    score = -sum(zs) / math.sqrt(len(zs))
    diverged = [f for z, f in sorted((e["z"], f) for f, e in facts.items()) if z < -2]
    rec = {
        "instrument": instrument,
        "window_start": f"2012-06-21T{hh:02d}:{mm:02d}:00",
        "window_end": f"2012-06-21T{eh:02d}:{em:02d}:00",
        "window_start_ns": start_ns,
        "window_end_ns": start_ns + WINDOW_NS,
        "score": score,
        "p_value": 1 / 33 if alert else 0.2 + 0.6 * rng.random(),
        "p_value_normal": 3e-6 if alert else 0.3,
        "alert": alert,
        "threshold": 3.0,
        "severity": "high" if alert else "none",
        "facts": facts,
        "diverged": diverged,
        "baselines": {
            "historical_diff": 0.05 + 0.05 * rng.random(),
            "spread_zscore": 3.1 if alert else rng.random(),
        },
        "rollouts": 32,
        "seed": seed,
        "model_version": "lmm-small-0.3",
        "n_events": 4000 + rng.randrange(2000),
        "evidence": None,
    }
    if evidence:
        t = [round(k * 1500 / (path_points - 1), 1) for k in range(path_points)]
        mid, real = 580.0 + i * 0.3, []
        for k in range(path_points):
            mid += 0.02 * rng.gauss(0, 1) + (0.012 if alert and k > path_points // 2 else 0)
            real.append(round(mid, 4))
        fan = {"t_s": t}
        for name, zq in (
            ("q05", -1.645),
            ("q25", -0.674),
            ("q50", 0.0),
            ("q75", 0.674),
            ("q95", 1.645),
        ):
            fan[name] = [
                round(580.0 + i * 0.3 + zq * 0.02 * math.sqrt(k), 4) for k in range(path_points)
            ]
        rec["evidence"] = {
            "spread_real": _pmf(rng, 12, 3, tail=0.25 if alert else 0.0),
            "spread_sim": _pmf(rng, 12, 3),
            "price_real": {"t_s": t, "mid": real},
            "price_fan": fan,
        }
    return rec


def make_day(instrument: str = "GOOG", n: int = 6, alert_at: int = 3, **kw) -> list[dict]:
    return [
        make_record(instrument, i, alert=i == alert_at, evidence=i != 1, **kw) for i in range(n)
    ]


META = {
    "title": "Replay GOOG 2012-06-21",
    "files": ["../shared/data/lobster/LOBSTER_SampleFile_GOOG_2012-06-21_10.zip"],
    "window": "25m",
    "rollouts": 32,
    "seed": 7,
    "model_version": "lmm-small-0.3",
    "calibration": {
        "threshold": 3.0,
        "far": 0.01,
        "n_normal": 240,
        "method": "replay-normal-days",
        "note": "",
    },
    "malformed_rows": 0,
    "generated_by": "surveillance replay --window 25m --rollouts 32 GOOG.zip",
}

VOID = {"meta", "br", "img", "hr", "input", "link", "wbr", "col", "area", "base", "source"}


class _TagChecker(HTMLParser):
    """Checks that every opened element is closed in order (SVG self-closing tags allowed)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.attrs: list[tuple[str, str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.attrs.extend((tag, k, v) for k, v in attrs)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.attrs.extend((tag, k, v) for k, v in attrs)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def _parse(html: str) -> _TagChecker:
    checker = _TagChecker()
    checker.feed(html)
    checker.close()
    return checker


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return make_day("GOOG", 6, alert_at=3) + make_day("AAPL", 4, alert_at=-1)


@pytest.fixture(scope="module")
def html(records) -> str:
    return render_report(records, META)


def test_report_is_balanced_html(html):
    checker = _parse(html)
    assert html.startswith("<!DOCTYPE html>")
    assert checker.errors == []
    assert checker.stack == []


def test_report_shows_every_alert_window_with_its_diverged_facts(records, html):
    alerts = [r for r in records if r["alert"]]
    assert alerts
    text = " ".join(_parse(html).text)
    for r in alerts:
        assert r["diverged"], "the synthetic alert should diverge"
        assert "10:45–11:10" in text  # window 3 of the GOOG day
        for fact in r["diverged"]:
            assert fact in {"spread", "spread_time_weighted", "cancel_ratio"}
        assert "Spread, time-weighted" in text and "diverged" in text
    # the alert's section is open, the normal ones closed
    assert html.count("<details") == len(records)
    assert html.count(" open>") == len(alerts)


def test_report_is_self_contained(html):
    lowered = html.lower()
    assert "http://" not in lowered and "https://" not in lowered
    assert "src=" not in lowered
    assert "@import" not in lowered and "url(" not in lowered
    for tag, name, value in _parse(html).attrs:
        if name == "href":
            assert value.startswith("#"), (tag, value)


def test_report_is_deterministic(records):
    assert render_report(records, META) == render_report(records, META)
    copy = [dict(r) for r in records]
    assert render_report(copy, dict(META)).encode() == render_report(records, META).encode()


def test_report_escapes_text_from_the_input():
    evil = "<script>alert(1)</script>"
    recs = make_day(evil, 3, alert_at=1)
    recs[1]["diverged"] = [*recs[1]["diverged"], "<img onerror=x>"]
    meta = {**META, "title": evil, "generated_by": "replay '\"<b>", "files": [evil]}
    out = render_report(recs, meta)
    assert "<script>alert" not in out
    assert "<img" not in out
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    checker = _parse(out)
    assert checker.errors == [] and checker.stack == []
    # the only script element is the report's own
    assert sum(1 for tag, _, _ in checker.attrs if tag == "script") == 0
    assert out.count("<script>") == 1


def test_missing_evidence_and_fields_render_as_no_data():
    recs = make_day("GOOG", 3, alert_at=2)
    recs[0]["evidence"] = {"spread_real": None, "price_fan": {"t_s": [], "q05": []}}
    recs[0]["score"] = None
    recs[0]["facts"] = {}
    recs[0]["baselines"] = None
    recs[2]["evidence"]["price_real"]["mid"][5:20] = [None] * 15
    sparse = {"instrument": "MSFT"}  # a record with nothing but its instrument
    out = render_report([*recs, sparse], {})
    assert "no data" in out
    assert "No evidence recorded" in out  # both charts missing: one line
    checker = _parse(out)
    assert checker.errors == [] and checker.stack == []
    assert "MSFT" in out


def test_odd_values_render_without_failing():
    rec = make_record("GOOG", 0, alert=True)
    rec["score"] = float("nan")
    rec["p_value"] = "0.01"  # a string is not a number: shown as missing
    rec["window_start"], rec["window_end"] = "morning", "noon"
    rec["threshold"] = None
    rec["facts"]["spread"]["z"] = float("-inf")
    rec["facts"]["volatility"] = None
    rec["evidence"]["spread_sim"] = {"ticks": [3, 4], "weight": [1.0]}  # ragged
    rec["evidence"]["price_fan"]["q50"] = None
    out = render_report([rec], {"calibration": {"threshold": 3.0}})
    checker = _parse(out)
    assert checker.errors == [] and checker.stack == []
    assert not re.search(r"\b(nan|inf)\b", out, re.IGNORECASE)
    assert "morning" in out


def test_empty_replay_still_renders():
    out = render_report([], {"title": "empty", "calibration": None})
    assert "no windows" in out
    assert _parse(out).stack == []


def test_long_paths_are_downsampled_and_keep_spikes():
    t = list(range(10_000))
    y = [100.0] * 10_000
    y[5_001] = 150.0
    out = downsample(t, y, 300)
    assert len(out) <= 300
    assert (5_001, 150.0) in out
    recs = [make_record("GOOG", 0, alert=True, path_points=20_000)]
    html = render_report(recs, META)
    assert len(html) < 200_000


def test_write_report_writes_utf8(tmp_path, records):
    path = write_report(tmp_path / "report.html", records, META)
    assert path.read_text(encoding="utf-8") == render_report(records, META)
