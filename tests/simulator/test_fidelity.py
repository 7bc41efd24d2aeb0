"""Fidelity of the clearing house replaying a real order stream, on synthetic and shared data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from simulator.book import EMPTY_ASK_PRICE, EMPTY_BID_PRICE
from simulator.fidelity import measure_fidelity
from simulator.lobster import FileName, LobsterDay, Messages, load_lobster
from simulator.matching import TimeInForce
from simulator.orderstream import from_lobster
from surveillance.cli import cli
from tests.conftest import lobster_zip

BID, ASK = 1, -1


def lobster_row(bids: dict[int, int], asks: dict[int, int], levels: int) -> list[int]:
    row = [EMPTY_ASK_PRICE, 0, EMPTY_BID_PRICE, 0] * levels
    for i, price in enumerate(sorted(asks)[:levels]):
        row[4 * i : 4 * i + 2] = [price, asks[price]]
    for i, price in enumerate(sorted(bids, reverse=True)[:levels]):
        row[4 * i + 2 : 4 * i + 4] = [price, bids[price]]
    return row


def synthetic_day() -> LobsterDay:
    """Eight messages over a two-level book, with the book rows a venue would print.

    The opening book (bid 10000 x 50, ask 10100 x 30) rests before the file starts, so the
    execution and the cancel that touch it carry ids the file never added (99, 77).
    """
    t = 34_200_000_000_000
    # (ts, kind, id, qty, price, side), then the book after it
    script = [
        ((t, 1, 1, 20, 10000, BID), {10000: 70}, {10100: 30}),
        ((t + 1, 1, 2, 10, 10200, ASK), {10000: 70}, {10100: 30, 10200: 10}),
        ((t + 2, 4, 99, 30, 10100, ASK), {10000: 70}, {10200: 10}),  # one buyer sweeps ...
        ((t + 2, 4, 2, 5, 10200, ASK), {10000: 70}, {10200: 5}),  # ... two levels
        ((t + 3, 3, 1, 20, 10000, BID), {10000: 50}, {10200: 5}),
        ((t + 4, 2, 77, 10, 10000, BID), {10000: 40}, {10200: 5}),  # pre-open order
        ((t + 5, 5, 0, 7, 10150, BID), {10000: 40}, {10200: 5}),  # hidden: no book change
        ((t + 6, 1, 3, 5, 9900, BID), {10000: 40, 9900: 5}, {10200: 5}),
    ]
    cols = list(zip(*(msg for msg, _, _ in script), strict=True))
    messages = Messages(
        np.array(cols[0], dtype=np.int64),
        np.array(cols[1], dtype=np.int8),
        np.array(cols[2], dtype=np.int64),
        np.array(cols[3], dtype=np.int64),
        np.array(cols[4], dtype=np.int64),
        np.array(cols[5], dtype=np.int8),
    )
    rows = np.array([lobster_row(b, a, 2) for _, b, a in script], dtype=np.int64)
    return LobsterDay(FileName("TEST", "2012-06-21", 0, 0, "message", 2), messages, rows)


def test_synthetic_stream_reproduces_every_book_row() -> None:
    day = synthetic_day()
    stream = from_lobster(day)
    report = measure_fidelity(day, stream)
    assert report.checkpoints == len(stream) == 6  # 2 executions merged, hidden one skipped
    assert report.top_n_match == 1.0 and report.best_price_match == 1.0
    assert report.mean_abs_mid_error_ticks == 0.0
    assert (report.sim_trades, report.sim_traded_qty) == (2, 35)
    assert (report.real_executions, report.real_executed_qty) == (2, 35)
    assert (report.real_hidden_executions, report.real_hidden_qty) == (1, 7)
    assert report.unknown_cancels == 1 and report.unresolved_cancel_qty == 0
    assert report.seeded_levels == 2 and report.rejects == {}
    assert report.first_mismatches == []


def test_prefix_replay_stops_at_the_prefix() -> None:
    day = synthetic_day()
    report = measure_fidelity(day, from_lobster(day), max_orders=2)
    assert report.checkpoints == 2 and report.top_n_match == 1.0
    assert report.real_executions == 0  # the sweep comes after the prefix


def test_a_wrong_order_shows_up_as_a_mismatch() -> None:
    day = synthetic_day()
    day.messages.qty[1] = 12  # the stream now adds 2 shares the real book never had
    report = measure_fidelity(day, from_lobster(day))
    assert report.top_n_match < 1.0
    assert report.best_price_match == 1.0  # prices agree, sizes do not
    assert report.first_mismatches[0]["order"] == 1
    assert report.first_mismatches[0]["sim"][4:6] == [10200, 12]


@pytest.fixture(scope="module")
def goog10(lobster_dir: Path) -> LobsterDay:
    return load_lobster(lobster_zip(lobster_dir, "GOOG", 10))


def test_real_goog_prefix_is_reproduced_closely(goog10: LobsterDay) -> None:
    stream = from_lobster(goog10)
    report = measure_fidelity(goog10, stream, max_orders=30_000)
    assert report.checkpoints == 30_000
    assert report.best_price_match >= 0.99
    assert report.top_n_match >= 0.98
    assert report.mean_abs_mid_error_ticks is not None and report.mean_abs_mid_error_ticks < 0.1
    # every visible execution is a reconstructed aggressive order: the volume must agree
    assert report.sim_traded_qty == report.real_executed_qty > 0
    assert report.rejects == {}
    assert report.unresolved_cancel_qty <= 0.01 * int(stream.qty[:30_000].sum())
    assert report.entered_from_depth > 0


def test_phantom_rest_of_aggressive_orders_hurts_fidelity_at_level_one(
    lobster_dir: Path,
) -> None:
    """At level 1 the sim book holds no depth; GTC rests of unfilled sweeps become phantoms."""
    day = load_lobster(lobster_zip(lobster_dir, "GOOG", 1))
    stream = from_lobster(day)
    ioc = measure_fidelity(day, stream, max_orders=20_000)
    gtc = measure_fidelity(day, stream, max_orders=20_000, aggressive_tif=TimeInForce.GTC)
    assert ioc.best_price_match >= 0.99
    assert gtc.best_price_match < ioc.best_price_match


def test_fidelity_command_prints_json(lobster_dir: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "fidelity",
            "--data",
            str(lobster_zip(lobster_dir, "GOOG", 5)),
            "--max-orders",
            "5000",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["instrument"] == "GOOG" and report["checkpoints"] == 5000
    assert 0.99 <= report["best_price_match"] <= 1.0


def test_fidelity_command_rejects_a_missing_file(tmp_path: Path) -> None:
    from surveillance.cli import main

    assert main(["fidelity", "--data", str(tmp_path / "nope.zip")]) == 2


@pytest.mark.parametrize(
    ("symbol", "levels"), [("GOOG", 10), ("GOOG", 5), ("GOOG", 1), ("AMZN", 5), ("AMZN", 1)]
)
def test_full_day_fidelity(lobster_dir: Path, symbol: str, levels: int) -> None:
    day = load_lobster(lobster_zip(lobster_dir, symbol, levels))
    report = measure_fidelity(day, from_lobster(day))
    assert report.best_price_match >= 0.99
    assert report.top_n_match >= 0.99
    assert report.mean_abs_mid_error_ticks is not None and report.mean_abs_mid_error_ticks < 0.05
    assert report.rejects == {}
