"""The Bitstamp live-orders adapter: hand-written logs, and the start of the shared day."""

from __future__ import annotations

import bz2
import json
from pathlib import Path

import pandas as pd
import pytest

from simulator.bitstamp import BitstampError, check_bitstamp, load_bitstamp
from simulator.feeds import detect_format

T0 = 1_430_438_400_000  # 2015-05-01 00:00:00 UTC, in ms
SAT = 100_000_000


def order(ms: int, event: str, oid: int, side: int, price: str, amount: str) -> str:
    body = {"price": price, "amount": amount, "datetime": "1430438400", "id": oid}
    return f"{T0 + ms} {event} {json.dumps(body | {'order_type': side})}"


def trade(ms: int, price: float, amount: float) -> str:
    return f"{T0 + ms} trade {json.dumps({'price': price, 'amount': amount, 'id': ms})}"


def snapshot(ms: int, bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> str:
    body = {"bids": [list(b) for b in bids], "asks": [list(a) for a in asks]}
    return f"{T0 + ms} order_book {json.dumps(body)}"


# an opening book: bid 100.00 x 1, ask 101.00 x 2
OPEN = snapshot(0, [("100.00", "1.00000000")], [("101.00", "2.00000000")])


def write(tmp_path: Path, lines: list[str], name: str = "day.log") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def events(frame: pd.DataFrame) -> list[tuple[str, int, str, int, int, bool]]:
    cols = ["kind", "order_id", "side", "price", "qty", "synthetic"]
    return [tuple(r) for r in frame[cols].itertuples(index=False, name=None)]


def test_opening_book_comes_from_the_first_snapshot(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            order(-5, "order_created", 7, 0, "99.00", "3.00000000"),  # before: in the snapshot
            OPEN,
            order(10, "order_created", 8, 1, "102.00", "0.50000000"),
        ],
    )
    feed = load_bitstamp(path)
    got = events(feed.frame)
    assert all(syn for *_, syn in got[:2]) and not got[-1][-1]
    assert got[-1] == ("add", 8, "ask", 1_020_000, SAT // 2, False)
    # the seeded levels are anonymous (negative ids); the order seen before the snapshot is
    # not in it (99.00 is not shown, and the snapshot shows fewer than 20 levels), so it is gone
    assert {(k, s, p, q) for k, _, s, p, q, _ in got[:2]} == {
        ("add", "bid", 1_000_000, SAT),
        ("add", "ask", 1_010_000, 2 * SAT),
    }
    assert all(o < 0 for _, o, *_ in got[:2])
    assert feed.check.before_first_snapshot == 1
    assert feed.instrument.tick_size == 100 and feed.instrument.qty_scale == SAT
    assert feed.instrument.continuous


def test_an_aggressor_is_added_after_its_sweep_and_the_trade_counts_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            OPEN,
            order(5, "order_created", 20, 1, "100.90", "1.00000000"),  # a better ask joins
            order(6, "order_created", 21, 1, "100.95", "2.50000000"),
            order(10, "order_created", 30, 0, "100.95", "2.50000000"),  # a buyer crosses both
            order(11, "order_changed", 30, 0, "100.90", "2.50000000"),  # walks to 100.90
            order(12, "order_deleted", 20, 1, "100.90", "0.00000000"),  # maker 20 filled
            order(13, "order_changed", 30, 0, "100.90", "1.50000000"),  # its side of the trade
            trade(14, 100.9, 1.0),
            order(15, "order_changed", 30, 0, "100.95", "1.50000000"),  # walks to 100.95
            order(16, "order_changed", 21, 1, "100.95", "1.00000000"),  # maker 21: partial fill
            order(17, "order_deleted", 30, 0, "100.95", "0.00000000"),  # the buyer is done
            trade(18, 100.95, 1.5),
            order(19, "order_created", 40, 0, "100.50", "1.00000000"),
            order(20, "order_created", 41, 0, "100.96", "2.00000000"),  # a limit buy crosses 21
            order(21, "order_deleted", 21, 1, "100.95", "0.00000000"),
            order(22, "order_changed", 41, 0, "100.95", "1.00000000"),
            trade(23, 100.95, 1.0),
            order(24, "order_created", 42, 1, "102.00", "1.00000000"),  # 41's sweep is over
        ],
    )
    feed = load_bitstamp(path)
    got = [e for e in events(feed.frame) if not e[-1]]
    assert got == [
        ("add", 20, "ask", 1_009_000, SAT, False),
        ("add", 21, "ask", 1_009_500, 5 * SAT // 2, False),
        # each trade once: the resting order's execute; the aggressors write nothing for it
        ("execute", 20, "ask", 1_009_000, SAT, False),
        ("execute", 21, "ask", 1_009_500, 3 * SAT // 2, False),
        ("add", 40, "bid", 1_005_000, SAT, False),
        ("execute", 21, "ask", 1_009_500, SAT, False),
        # 41 rests with what its sweep left, at the price the venue last gave it
        ("add", 41, "bid", 1_009_500, SAT, False),
        ("add", 42, "ask", 1_020_000, SAT, False),
    ]
    assert feed.check.aggressors == 2 and feed.check.aggressors_rested == 1
    assert feed.check.fills == 3 and feed.check.trades_unmatched == 0
    assert feed.replay["crossed_books"] == 0


def test_a_decrease_without_a_trade_is_a_cancel_and_a_new_price_loses_priority(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        [
            OPEN,
            order(5, "order_created", 1, 0, "99.50", "1.00000000"),
            order(6, "order_created", 2, 0, "99.40", "1.00000000"),
            order(7, "order_changed", 1, 0, "99.50", "0.40000000"),  # no trade: a cancel
            order(8, "order_changed", 1, 0, "99.40", "0.40000000"),  # moved: behind order 2
            order(9, "order_changed", 2, 0, "99.40", "3.00000000"),  # larger: to the back
            order(10, "order_deleted", 1, 0, "99.40", "0.40000000"),
        ],
    )
    feed = load_bitstamp(path)
    got = [e[:5] for e in events(feed.frame) if not e[-1]]
    assert got == [
        ("add", 1, "bid", 995_000, SAT),
        ("add", 2, "bid", 994_000, SAT),
        ("cancel", 1, "bid", 995_000, 6 * SAT // 10),
        ("delete", 1, "bid", 995_000, 4 * SAT // 10),
        ("add", 1, "bid", 994_000, 4 * SAT // 10),
        ("delete", 2, "bid", 994_000, SAT),
        ("add", 2, "bid", 994_000, 3 * SAT),
        ("delete", 1, "bid", 994_000, 4 * SAT // 10),
    ]
    assert feed.check.partial_cancels == 1 and feed.check.requeued == 2


def test_a_delete_at_zero_is_a_fill_only_when_a_trade_says_so(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            OPEN,
            order(5, "order_created", 1, 1, "101.50", "0.30000000"),
            order(6, "order_created", 2, 1, "101.60", "0.30000000"),
            order(7, "order_deleted", 1, 1, "101.50", "0.00000000"),
            trade(8, 101.5, 0.3),
            order(5_000, "order_deleted", 2, 1, "101.60", "0.00000000"),  # no trade near
            # an order resting before the feed, filled: taken from the anonymous liquidity
            order(5_001, "order_deleted", 99, 1, "101.00", "0.00000000"),
            trade(5_002, 101.0, 0.5),
            # one resting before the feed deeper than the snapshot showed: never in our book
            order(5_003, "order_deleted", 98, 0, "90.00", "4.00000000"),
            # a buy that crosses and never trades: the venue never rests it crossed
            order(5_004, "order_created", 3, 0, "101.00", "0.10000000"),
            order(11_000, "order_created", 4, 1, "103.00", "0.10000000"),
        ],
    )
    feed = load_bitstamp(path)
    got = [e[:5] for e in events(feed.frame) if not e[-1]]
    assert ("execute", 1, "ask", 1_015_000, 3 * SAT // 10) in got
    assert ("delete", 2, "ask", 1_016_000, 3 * SAT // 10) in got
    assert ("execute", 99, "ask", 1_010_000, SAT // 2) in got
    assert feed.check.fills == 2 and feed.check.fills_unconfirmed == 1
    assert feed.check.unknown_order_ids == 2 and feed.check.unseen_qty == 4 * SAT
    assert feed.check.crossed_dropped == 1
    # the replay of what was written resolves everything and never crosses
    assert feed.replay["unresolved_qty"] == 0 and feed.replay["crossed_books"] == 0


def test_snapshots_are_compared_then_resynced(tmp_path: Path) -> None:
    lines = [
        OPEN,
        order(5, "order_created", 1, 0, "100.50", "1.00000000"),
        snapshot(2_000, [("100.50", "1.00000000"), ("100.00", "1.00000000")], [("101.00", "2")]),
        # the venue lost a delete: the next snapshot no longer shows order 1
        snapshot(4_000, [("100.00", "1.00000000")], [("101.00", "2.00000000")]),
        snapshot(6_000, [("100.00", "1.00000000")], [("101.00", "2.00000000")]),
    ]
    path = write(tmp_path, lines)
    feed = load_bitstamp(path)
    report = check_bitstamp(feed)
    assert report["snapshots"] == 3
    assert feed.check.snapshots_matched == 2  # the second misses, the third follows the resync
    assert feed.check.resync_levels == 1
    assert feed.check.first_mismatches[0]["line"] == 3
    raw = load_bitstamp(path, resync=False)
    assert raw.check.snapshots_matched == 1 and raw.check.resync_levels == 0


def test_malformed_lines_are_counted_and_skipped(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            "garbage",
            OPEN,
            f"{T0 + 3} order_created {{not json",
            f"{T0 + 4} order_created " + json.dumps({"price": "1.0", "amount": "1"}),  # no id
            f"{T0 + 5} order_teleported {{}}",
            order(6, "order_created", 5, 0, "99.00", "1.5"),
            order(7, "order_created", 6, 0, "99.00", "1.000000001"),  # finer than a satoshi
        ],
    )
    feed = load_bitstamp(path)
    assert feed.check.malformed_lines == 5
    assert len(feed.frame) == 3


def test_a_file_without_events_is_one_typed_error(tmp_path: Path) -> None:
    with pytest.raises(BitstampError, match="no Bitstamp event"):
        load_bitstamp(write(tmp_path, ["nothing here"]))
    with pytest.raises(BitstampError, match="no such file"):
        load_bitstamp(tmp_path / "missing.log")


def test_bz2_logs_are_read_and_recognized(tmp_path: Path) -> None:
    path = tmp_path / "day.log.bz2"
    path.write_bytes(bz2.compress((OPEN + "\n").encode()))
    assert detect_format(path) == "bitstamp"
    assert len(load_bitstamp(path).frame) == 2


BITSTAMP_DAY = (
    Path(__file__).resolve().parents[2].parent / "shared/data/bitstamp/2015-05-01.log.bz2"
)


def test_the_shared_day_starts_reconciled() -> None:
    if not BITSTAMP_DAY.exists():
        pytest.skip(f"shared Bitstamp data not found at {BITSTAMP_DAY}")
    feed = load_bitstamp(BITSTAMP_DAY, limit=4_000)
    report = check_bitstamp(feed)
    assert report["malformed_rows"] == 0
    assert report["snapshots"] > 300
    # measured on these lines: every snapshot's touch, nearly all of the top 20
    assert report["best_level_match"] > 0.97 and report["match"] > 0.9
    assert feed.frame["ts_ns"].is_monotonic_increasing
    kinds = set(feed.frame["kind"])
    assert {"add", "delete", "execute"} <= kinds
