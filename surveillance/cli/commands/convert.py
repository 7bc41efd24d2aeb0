"""``surveillance convert``: bring a venue's file into the normalized event format."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from simulator.feeds import VENUE_FORMATS, VenueFeed, load_feeds
from simulator.normalized import metadata_path, write_events


@click.command("convert")
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", *VENUE_FORMATS]),
    default="auto",
    show_default=True,
    help="Input format; auto: from the file name (.dbn/.dbn.zst: databento, a .log/.log.bz2 "
    "of Bitstamp lines: bitstamp, a zip or message CSV: lobster).",
)
@click.option(
    "--no-reconcile",
    is_flag=True,
    help="Write the venue's messages only: for LOBSTER no opening book and no depth "
    "reconciliation; for Bitstamp no resync from its snapshots.",
)
@click.option(
    "--instrument",
    default=None,
    help="Convert only this instrument (symbol or venue id) of a file that holds several (a "
    "DBN file); by default each goes to its own OUT (OUT's name with .SYMBOL before the suffix).",
)
def command(source: Path, out: Path, fmt: str, no_reconcile: bool, instrument: str | None) -> None:
    """Convert a LOBSTER, Databento MBO or Bitstamp file into normalized events (OUT:
    .parquet or .jsonl), with the instrument's metadata beside it (OUT.meta.json). A file of
    several instruments (DBN) gives one OUT per instrument; one JSON line each.

    Reconciliation (LOBSTER's opening book and depth, the DBN snapshot, Bitstamp's opening
    book and snapshot resync) is written as synthetic events, so replaying OUT alone rebuilds
    the venue's book.
    """
    start = time.perf_counter()
    feeds = load_feeds(source, fmt, reconcile=not no_reconcile, instrument=instrument)
    for feed in feeds:
        target = out if len(feeds) == 1 else per_instrument(out, feed)
        write_events(feed.frame, target, feed.instrument)
        frame = feed.frame
        summary = {
            "format": feed.fmt,
            "instrument": feed.instrument.symbol if feed.instrument else None,
            "events": len(frame),
            "synthetic": int(frame["synthetic"].sum()),
            "kinds": {str(k): int(v) for k, v in frame["kind"].value_counts().items()},
            "malformed_rows": feed.malformed,
            "out": str(target),
            "meta": str(metadata_path(target)) if feed.instrument else None,
            "seconds": round(time.perf_counter() - start, 2),
        }
        click.echo(json.dumps(summary))


def per_instrument(out: Path, feed: VenueFeed) -> Path:
    """``esh4.parquet`` -> ``esh4.ESH4.parquet``: one file per instrument of a source."""
    symbol = feed.instrument.symbol if feed.instrument else str(feed.frame["instrument"].iloc[0])
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in symbol)
    return out.with_name(f"{out.stem}.{safe}{out.suffix}")
