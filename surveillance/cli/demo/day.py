"""The day the demo feeds: the file read and sliced, and a manipulation campaign injected."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from simulator.types import Instrument
from simulator.units import NS_PER_S
from surveillance.cli.demo.base import DemoError, DemoOptions, _clock


def load_day(
    options: DemoOptions,
) -> tuple[pd.DataFrame, str, dt.date | None, int, Instrument | None]:
    """The day's normalized events (sliced, injected), instrument, date, grid origin and the
    instrument's venue metadata."""
    from simulator.units import parse_clock
    from surveillance.replay import read_input

    if options.path is None or not options.path.exists():
        raise DemoError(f"no such file: {options.path}")
    item = read_input(options.path, options.fmt)
    frame = item.frame.assign(instrument=item.instrument)
    if options.until is not None:
        frame = frame[frame["ts_ns"] < parse_clock(options.until)]
    if options.max_events is not None:
        frame = frame.iloc[: options.max_events]
    if frame.empty:
        raise DemoError("no events left to publish (check --until / --max-events)")
    return (
        frame.reset_index(drop=True),
        item.instrument,
        item.session_date,
        item.origin_ns,
        item.meta,
    )


def inject_campaign(
    frame: pd.DataFrame, options: DemoOptions, meta: Instrument | None = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``options.inject`` inserted into the day at ``options.inject_at`` (default: mid-day),
    trading in the instrument's tick and lot (``meta``; the NASDAQ defaults without)."""
    from simulator.manipulation import Campaign, Typology, inject
    from simulator.units import parse_clock, parse_duration
    from surveillance.studies.evaluate import campaign_units

    if options.inject is None:
        raise DemoError("no campaign to inject")
    typology = Typology(options.inject)
    first, last = int(frame["ts_ns"].iloc[0]), int(frame["ts_ns"].iloc[-1])
    if options.inject_at is not None:
        start = parse_clock(options.inject_at)
    else:  # the middle of the fed slice, on a whole minute
        start = (first + last) // 2 // (60 * NS_PER_S) * (60 * NS_PER_S)
    end = min(start + parse_duration(options.inject_for), last)
    if not first <= start < end:
        raise DemoError(
            f"--at {options.inject_at} is outside the fed events ({_clock(first)}..{_clock(last)})"
        )
    units = {} if meta is None else dict(zip(("tick", "lot"), campaign_units(meta), strict=True))
    campaign = Campaign(typology, start, end, intensity=options.intensity, **units)
    result = inject(frame, campaign, feed_depth=None if meta is None else meta.feed_depth)
    return result.frame, {
        "typology": typology.value,
        "start_ns": start,
        "end_ns": end,
        "intensity": options.intensity,
        **result.stats.as_dict(),
    }
