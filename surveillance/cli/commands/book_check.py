"""``surveillance book-check``: replay LOBSTER messages into the book and compare every row."""

from __future__ import annotations

import json
from pathlib import Path

import click

from simulator.lobster import load_lobster
from simulator.replay import check_lobster


@click.command("book-check")
@click.option(
    "--message",
    "message",
    required=True,
    type=click.Path(path_type=Path),
    help="LOBSTER message CSV, or the vendor zip holding both files.",
)
@click.option(
    "--orderbook",
    type=click.Path(path_type=Path),
    default=None,
    help="LOBSTER orderbook CSV (default: found beside the message file or in the zip).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--mismatches", default=5, show_default=True, help="Mismatched rows to show.")
@click.option(
    "--resync",
    "resync",
    default=None,
    metavar="INTERVAL",
    help="After an integrity fault (a gap, an unresolved cancel, a crossed book), resync the "
    "book from the next orderbook row on this cadence (0: the next row; 1s, 5s: a feed "
    "offering snapshots that often). Default: never.",
)
def command(
    message: Path, orderbook: Path | None, as_json: bool, mismatches: int, resync: str | None
) -> None:
    """Replay a LOBSTER day into the order book and compare it with every orderbook row.

    The book is seeded from the first row; liquidity entering the file's N levels from deeper
    in the book is added and counted (entered_from_depth); any other difference is a mismatch.
    """
    every = None
    if resync is not None:
        from simulator.units import UnitError, parse_duration

        try:
            every = 0 if resync.strip() == "0" else parse_duration(resync)
        except UnitError as exc:
            raise click.BadParameter(str(exc), param_hint="--resync") from None
    day = load_lobster(message, orderbook)
    report = check_lobster(day, keep_mismatches=mismatches, resync_every_ns=every).as_dict()
    if as_json:
        click.echo(json.dumps(report))
        return
    for key in (
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
    ):
        click.echo(f"{key:>20}: {report[key]}")
    for m in report["first_mismatches"]:  # type: ignore[union-attr]
        click.echo(f"mismatch at row {m['row']}: message {m['message']}")
