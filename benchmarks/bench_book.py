"""Order book and clearing house throughput on the real GOOG level-10 day (single thread).

Prints one labeled figure per line (best of ``--runs``; the machine is shared, so the best run is
the least disturbed one):

- feed replay: LOBSTER messages/s through ``FeedReplayer.replay`` after the opening seed
  (target >= 500,000);
- matching: MarS orders/s (``orderstream.from_lobster``) through ``ClearingHouse`` from the same
  seeded book, with the instrument's rules (price band on) and with the band off
  (target >= 200,000). Cancels of ids the simulated book never held are rejected as unknown,
  which is the clearing house's own cost for them.

Usage: ``python benchmarks/bench_book.py [--data ZIP] [--runs N]``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from simulator.book import OrderBook
from simulator.lobster import LobsterDay, load_lobster
from simulator.matching import ClearingHouse, MatchingRules
from simulator.orderstream import OrderStream, OrderType, from_lobster
from simulator.replay import FeedReplayer, seed_from_first_row

DEFAULT_DATA = "lobster-goog-10"  # the data registry's name (surveillance.datasets)


def seeded_book(day: LobsterDay) -> OrderBook:
    replayer = FeedReplayer(OrderBook(day.symbol))
    seed_from_first_row(replayer, day)
    return replayer.book


def bench_replay(day: LobsterDay, runs: int) -> float:
    best = 0.0
    for _ in range(runs):
        replayer = FeedReplayer(OrderBook(day.symbol))
        seed_from_first_row(replayer, day)
        start = time.perf_counter()
        replayer.replay(day.messages)
        best = max(best, len(day.messages) / (time.perf_counter() - start))
    return best


def bench_matching(day: LobsterDay, stream: OrderStream, rules: MatchingRules, runs: int) -> float:
    cancel_type = int(OrderType.CANCEL)
    orders = list(
        zip(
            stream.type.tolist(),
            stream.side.tolist(),
            stream.price.tolist(),
            stream.qty.tolist(),
            stream.order_id.tolist(),
            stream.ts_ns.tolist(),
            strict=True,
        )
    )
    best = 0.0
    for _ in range(runs):
        house = ClearingHouse(seeded_book(day), rules)
        submit = house.submit_limit
        cancel = house.cancel
        start = time.perf_counter()
        for typ, side, price, qty, order_id, ts_ns in orders:
            if typ == cancel_type:
                cancel(order_id, qty, ts_ns)
            else:
                submit(side, price, qty, ts_ns, order_id or None)
        best = max(best, len(orders) / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if args.data is None:
        from surveillance.datasets import data_path

        args.data = data_path(DEFAULT_DATA)
    day = load_lobster(args.data)
    stream = from_lobster(day)
    banded = MatchingRules.from_instrument(day.instrument)
    unbanded = MatchingRules.from_instrument(day.instrument, price_band_bps=None)
    print(f"feed replay events/s: {bench_replay(day, args.runs):,.0f}")
    print(f"matching orders/s (band on): {bench_matching(day, stream, banded, args.runs):,.0f}")
    print(f"matching orders/s (band off): {bench_matching(day, stream, unbanded, args.runs):,.0f}")


if __name__ == "__main__":
    main()
