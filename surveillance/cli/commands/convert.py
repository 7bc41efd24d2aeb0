"""``surveillance convert``: bring a LOBSTER day into the normalized event format."""

from __future__ import annotations

import json
from pathlib import Path

import click

from simulator.lobster import load_lobster
from simulator.normalized import lobster_to_frame, write_events


@click.command("convert")
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option(
    "--no-reconcile",
    is_flag=True,
    help="Write the venue's messages only (no opening book, no depth reconciliation).",
)
def command(source: Path, out: Path, no_reconcile: bool) -> None:
    """Convert a LOBSTER zip or message CSV into normalized events (OUT: .parquet or .jsonl).

    By default the opening book and the depth reconciliation of a level-N file are written as
    synthetic events, so replaying OUT alone rebuilds the vendor's book.
    """
    day = load_lobster(source, with_orderbook=not no_reconcile)
    frame = lobster_to_frame(day, reconcile=not no_reconcile)
    write_events(frame, out)
    summary = {
        "instrument": day.symbol,
        "events": len(frame),
        "synthetic": int(frame["synthetic"].sum()),
        "malformed_rows": day.malformed_rows,
        "out": str(out),
    }
    click.echo(json.dumps(summary))
