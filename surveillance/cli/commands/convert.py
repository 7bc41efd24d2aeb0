"""``surveillance convert``: bring a venue's file into the normalized event format."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from simulator.feeds import VENUE_FORMATS, load_feed
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
def command(source: Path, out: Path, fmt: str, no_reconcile: bool) -> None:
    """Convert a LOBSTER, Databento MBO or Bitstamp file into normalized events (OUT:
    .parquet or .jsonl), with the instrument's metadata beside it (OUT.meta.json).

    Reconciliation (LOBSTER's opening book and depth, the DBN snapshot, Bitstamp's opening
    book and snapshot resync) is written as synthetic events, so replaying OUT alone rebuilds
    the venue's book.
    """
    start = time.perf_counter()
    feed = load_feed(source, fmt, reconcile=not no_reconcile)
    write_events(feed.frame, out, feed.instrument)
    frame = feed.frame
    summary = {
        "format": feed.fmt,
        "instrument": feed.instrument.symbol if feed.instrument else None,
        "events": len(frame),
        "synthetic": int(frame["synthetic"].sum()),
        "kinds": {str(k): int(v) for k, v in frame["kind"].value_counts().items()},
        "malformed_rows": feed.malformed,
        "out": str(out),
        "meta": str(metadata_path(out)) if feed.instrument else None,
        "seconds": round(time.perf_counter() - start, 2),
    }
    click.echo(json.dumps(summary))
