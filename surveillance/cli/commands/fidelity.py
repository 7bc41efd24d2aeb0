"""``surveillance fidelity``: replay a day's MarS order stream through the clearing house and
compare the simulated book with the real one."""

from __future__ import annotations

import json
from pathlib import Path

import click

from simulator.fidelity import measure_fidelity
from simulator.lobster import load_lobster
from simulator.matching import TimeInForce
from simulator.orderstream import from_lobster

_SUMMARY = (
    "instrument",
    "levels",
    "orders",
    "checkpoints",
    "best_price_match",
    "top_n_match",
    "top_n_price_match",
    "mean_abs_mid_error_ticks",
    "sim_trades",
    "real_executions",
    "sim_traded_qty",
    "real_executed_qty",
    "unknown_cancels",
    "unresolved_cancel_qty",
    "entered_from_depth",
    "rejects",
    "orders_per_s",
)


@click.command("fidelity")
@click.option(
    "--data",
    required=True,
    type=click.Path(path_type=Path),
    help="LOBSTER vendor zip (or message CSV with its orderbook file beside it).",
)
@click.option("--max-orders", type=int, default=None, help="Replay only the first N orders.")
@click.option(
    "--aggressive-tif",
    type=click.Choice(["ioc", "gtc"]),
    default="ioc",
    show_default=True,
    help="Time in force of aggressive orders whose rest the venue never showed.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def command(data: Path, max_orders: int | None, aggressive_tif: str, as_json: bool) -> None:
    """Replay a LOBSTER day's order stream through the simulated clearing house.

    The opening book is seeded from the file; each order is matched under the instrument's
    rules and the simulated book is compared with the real orderbook row after it: best
    prices, all N levels, mid error in ticks, and trades against the real executions.
    """
    if max_orders is not None and max_orders <= 0:
        raise click.BadParameter("must be positive", param_hint="--max-orders")
    day = load_lobster(data)
    tif = TimeInForce.IOC if aggressive_tif == "ioc" else TimeInForce.GTC
    report = measure_fidelity(
        day, from_lobster(day), max_orders=max_orders, aggressive_tif=tif
    ).as_dict()
    if as_json:
        click.echo(json.dumps(report))
        return
    for key in _SUMMARY:
        click.echo(f"{key:>26}: {report[key]}")
