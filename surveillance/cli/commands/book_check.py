"""``surveillance book-check``: rebuild the book from a venue's order events and reconcile it
with what the venue publishes (LOBSTER's orderbook rows, Bitstamp's top-20 snapshots,
Databento's snapshot, packet flags and trades)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from simulator.feeds import VENUE_FORMATS, detect_format, load_feeds
from simulator.lobster import load_lobster
from simulator.replay import check_lobster

_LOBSTER_KEYS = (
    "instrument",
    "levels",
    "rows",
    "match",
    "best_level_match",
    "entered_from_depth",
    "unknown_order_ids",
    "unresolved_qty",
    "malformed_rows",
    "integrity_faults",
    "sequence_gaps",
    "resyncs",
    "fault_episodes",
    "recovery_events_median",
    "recovery_events_max",
    "events_per_s",
)
_BITSTAMP_KEYS = (
    "instrument",
    "lines",
    "events",
    "snapshots",
    "match",
    "best_level_match",
    "touch_price_match",
    "crossed_snapshots",
    "unknown_order_ids",
    "unresolved_qty",
    "trades_unmatched",
    "malformed_rows",
)
_DATABENTO_KEYS = (
    "instrument",
    "records",
    "events",
    "snapshot_records",
    "last_records",
    "uncrossed_at_last",
    "crossed_at_last_preopen",
    "crossed_at_last_after_open",
    "unknown_order_ids",
    "trades",
    "trade_at_touch",
    "trade_through_touch",
    "trade_inside_touch",
    "malformed_rows",
)


@click.command("book-check")
@click.argument("source", required=False, type=click.Path(path_type=Path))
@click.option(
    "--message",
    "message",
    default=None,
    type=click.Path(path_type=Path),
    help="LOBSTER message CSV, or the vendor zip holding both files (or give it as SOURCE).",
)
@click.option(
    "--orderbook",
    type=click.Path(path_type=Path),
    default=None,
    help="LOBSTER orderbook CSV (default: found beside the message file or in the zip).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", *VENUE_FORMATS]),
    default="auto",
    show_default=True,
    help="Input format; auto: from the file name.",
)
@click.option(
    "--no-resync",
    is_flag=True,
    help="Bitstamp: never correct the book from a snapshot (how far it drifts on its own).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--mismatches", default=5, show_default=True, help="Mismatched rows to show.")
@click.option(
    "--resync",
    "resync",
    default=None,
    metavar="INTERVAL",
    help="LOBSTER: after an integrity fault (a gap, an unresolved cancel, a crossed book), "
    "resync the book from the next orderbook row on this cadence (0: the next row; 1s, 5s: a "
    "feed offering snapshots that often). Default: never.",
)
def command(
    source: Path | None,
    message: Path | None,
    orderbook: Path | None,
    fmt: str,
    no_resync: bool,
    as_json: bool,
    mismatches: int,
    resync: str | None,
) -> None:
    """Rebuild the order book from a venue's order events and reconcile it with what the
    venue publishes.

    LOBSTER: the book is seeded from the first row and compared with every orderbook row;
    liquidity entering the file's N levels from deeper in the book is added and counted
    (entered_from_depth); any other difference is a mismatch. Bitstamp: the book is seeded
    from the first top-20 snapshot and compared with every later one (before the resync
    that snapshot allows). Databento: the book must be uncrossed after every F_LAST record
    once trading runs, every order id must be known, and trades must print at the touch.
    """
    path = source or message
    if path is None:
        raise click.UsageError("give the file to check (SOURCE, or --message for LOBSTER)")
    if source is not None and message is not None:
        raise click.UsageError("give the file once: SOURCE or --message")
    every = None
    if resync is not None:
        from simulator.units import UnitError, parse_duration

        try:
            every = 0 if resync.strip() == "0" else parse_duration(resync)
        except UnitError as exc:
            raise click.BadParameter(str(exc), param_hint="--resync") from None
    if fmt == "auto":
        fmt = detect_format(path) if path.suffix != ".csv" else "lobster"
    if fmt == "lobster":
        day = load_lobster(path, orderbook)
        report = check_lobster(day, keep_mismatches=mismatches, resync_every_ns=every).as_dict()
        keys: tuple[str, ...] = _LOBSTER_KEYS
    else:
        # a file of several instruments (DBN): one report each, in the order the file names them
        feeds = load_feeds(path, fmt, reconcile=not no_resync)
        keys = _BITSTAMP_KEYS if fmt == "bitstamp" else _DATABENTO_KEYS
        for feed in feeds[:-1]:
            assert feed.check is not None
            _show(feed.check, keys, as_json, mismatches)
        assert feeds[-1].check is not None
        report = feeds[-1].check
    _show(report, keys, as_json, mismatches)


def _show(report: dict, keys: tuple[str, ...], as_json: bool, mismatches: int) -> None:
    if as_json:
        click.echo(json.dumps(report))
        return
    for key in keys:
        click.echo(f"{key:>26}: {report.get(key)}")
    for m in (
        report.get("first_mismatches", [])
        or report.get("check", {}).get("first_mismatches", [])[:mismatches]
    ):
        where = f"row {m['row']}" if "row" in m else f"line {m['line']}"
        click.echo(f"mismatch at {where}")
