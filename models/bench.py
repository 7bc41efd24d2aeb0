"""Order-model latency figures (one per line, best of ``--runs``; the machine is shared).

- ``step``: one batched KV-cache model step for ``--batch`` rollouts (context full);
- ``sample``: drawing the next token for the batch from the factorized head;
- ``next_orders``: one full ``LMMGenerator.next_orders`` call (book features, model step,
  sampling, decoding to prices) on real GOOG books forked at 14:30;
- ``flat_head``: the 49,152-way head's projection + ``torch.multinomial`` for the same batch,
  the option the factorized head replaces.

Usage: ``python -m models.bench [--model PATH] [--batch 32] [--threads 1] [--runs 5]``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from models.checkpoint import DEFAULT_CHECKPOINT
from models.generator import load_generator
from models.tokenizer import LOB_DIM, VOCAB_SIZE
from simulator.book import EMPTY_ASK_PRICE, EMPTY_BID_PRICE, OrderBook
from simulator.lobster import load_lobster
from simulator.orderstream import OrderStream, from_lobster
from simulator.types import Side

DATA = (
    Path(__file__).resolve().parents[1].parent
    / "shared"
    / "data"
    / "lobster"
    / "LOBSTER_SampleFile_GOOG_2012-06-21_10.zip"
)


def book_from_row(row: np.ndarray, symbol: str = "") -> OrderBook:
    """A book with one anonymous order per level of a LOBSTER row."""
    book = OrderBook(symbol)
    for lvl in range(len(row) // 4):
        ask_px, ask_sz, bid_px, bid_sz = (int(x) for x in row[4 * lvl : 4 * lvl + 4])
        if ask_sz > 0 and ask_px != EMPTY_ASK_PRICE:
            book.add(book.mint_id(), Side.ASK, ask_px, ask_sz)
        if bid_sz > 0 and bid_px != EMPTY_BID_PRICE:
            book.add(book.mint_id(), Side.BID, bid_px, bid_sz)
    return book


def _best(fn, n: int, runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=DEFAULT_CHECKPOINT)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    B = args.batch

    gen = load_generator(args.model)
    day = load_lobster(args.data)
    if day.orderbook is None:
        raise SystemExit(f"{args.data}: no orderbook file")
    book_rows = day.orderbook
    stream = from_lobster(day)
    j = int(np.searchsorted(stream.ts_ns, (14 * 3600 + 1800) * 10**9))
    keep = slice(j - 500, j)
    history = OrderStream(*(getattr(stream, f)[keep] for f in OrderStream.__slots__))
    rows = book_rows[np.maximum(history.source_row - 1, 0)]
    book = book_from_row(book_rows[stream.source_row[j] - 1], day.symbol)
    open_mid = float(book_rows[0, 0] + book_rows[0, 2]) / 2
    ts = int(stream.ts_ns[j - 1])
    books = [book.fork() for _ in range(B)]
    gen.begin(books, history, rows, open_mid, ts, seed=0)
    for _ in range(gen.model.cfg.block_size):  # fill the context window
        gen.next_orders(books, [ts] * B)
    next_orders = _best(lambda: gen.next_orders(books, [ts] * B), 200, args.runs)

    model, cache = gen.model, gen._cache
    assert cache is not None
    x = torch.zeros(B, dtype=torch.long)
    lob, mid, tod = torch.rand(B, LOB_DIM), torch.zeros(B, dtype=torch.long), torch.rand(B, 4)
    u = torch.rand(B, 4)
    with torch.inference_mode():
        h = model.step(cache, x, lob, mid, tod)
        step = _best(lambda: model.step(cache, x, lob, mid, tod), 200, args.runs)
        sample = _best(lambda: model.sample(h, 1.0, uniforms=u), 200, args.runs)
        flat = torch.nn.Linear(model.cfg.d_model, VOCAB_SIZE)
        g = torch.Generator().manual_seed(0)
        flat_s = _best(
            lambda: torch.multinomial(F.softmax(flat(h), -1), 1, generator=g), 10, args.runs
        )
    print(f"config: {model.cfg}")
    print(f"batch: {B} threads: {args.threads}")
    print(f"step_ms: {step * 1e3:.3f}")
    print(f"sample_ms: {sample * 1e3:.3f}")
    print(f"next_orders_ms: {next_orders * 1e3:.3f}")
    print(f"generated_orders_per_s_model_only: {B / next_orders:.0f}")
    print(f"flat_head_sample_ms: {flat_s * 1e3:.3f}")


if __name__ == "__main__":
    main()
