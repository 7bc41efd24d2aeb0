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
def command(message: Path, orderbook: Path | None, as_json: bool, mismatches: int) -> None:
    """Replay a LOBSTER day into the order book and compare it with every orderbook row.

    The book is seeded from the first row; liquidity entering the file's N levels from deeper
    in the book is added and counted (entered_from_depth); any other difference is a mismatch.
    """
    day = load_lobster(message, orderbook)
    report = check_lobster(day, keep_mismatches=mismatches).as_dict()
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
        "events_per_s",
    ):
        click.echo(f"{key:>20}: {report[key]}")
    for m in report["first_mismatches"]:  # type: ignore[union-attr]
        click.echo(f"mismatch at row {m['row']}: message {m['message']}")
