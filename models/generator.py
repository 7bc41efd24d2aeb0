"""``LMMGenerator``: the order model behind the rollout engine's ``OrderGenerator`` protocol.

Token pairing (as in training, ``models/train.py``): the model input for order ``j`` is its
token plus the features of the book *after* it, i.e. the book the next order meets. So each
``next_orders`` step feeds, for every rollout, the previous order's token (the last history
order on the first step, the rollout's own last generated order afterwards) together with the
features of that rollout's current book and clock, and samples the next order from the output:
every sampled order is conditioned on the book it will be matched against. Its price slot is
decoded relative to that same book's mid.

Randomness: rollout ``i`` draws only from ``rollout_rng(seed, i, GENERATOR_STREAM)`` (seven
uniforms per step: four for the token's fields, three for the concrete price, volume and
interval), so a rollout's orders do not depend on how many siblings it has or when they stop.

The KV cache holds one row per running rollout; the shared history is encoded once (batch 1)
and the cache is then copied to every rollout. When rollouts stop, the cache is compacted to
the ones still running.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from models.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from models.model import KVCache, OrderModel
from models.tokenizer import (
    N_LEVELS,
    OrderTokenizer,
    book_rows,
    features_from_rows,
    mid2_from_rows,
)
from simulator.book import EMPTY_ASK_PRICE, EMPTY_BID_PRICE, OrderBook
from simulator.orderstream import OrderStream
from simulator.rollout import GENERATOR_STREAM, GeneratedOrder, rollout_rng

_DRAWS = 7  # uniforms per rollout per step: type, price, volume, interval slots; 3 decode


def pad_rows(rows: np.ndarray, levels: int = N_LEVELS) -> np.ndarray:
    """LOBSTER rows widened (or cut) to ``levels`` levels, empty levels as the file writes them."""
    rows = np.asarray(rows, np.int64)
    have = rows.shape[-1] // 4
    if have >= levels:
        return rows[..., : 4 * levels]
    out = np.zeros((*rows.shape[:-1], 4 * levels), np.int64)
    out[..., 0::4] = EMPTY_ASK_PRICE
    out[..., 2::4] = EMPTY_BID_PRICE
    out[..., : 4 * have] = rows
    return out


class LMMGenerator:
    """Samples orders for many rollouts at once from a trained order model.

    ``temperature`` scales every field's logits (0: greedy, deterministic). ``levels`` is the
    most book levels per side the features read (default 10); ``begin`` lowers it to the depth
    of ``history_rows`` so that a level-5 instrument (AMZN) is seen as it was in training.
    """

    def __init__(
        self,
        model: OrderModel,
        tokenizer: OrderTokenizer,
        *,
        temperature: float = 1.0,
        device: str = "cpu",
        levels: int = N_LEVELS,
    ) -> None:
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.temperature = temperature
        self.device = device
        self.levels = levels
        self._levels = levels  # levels used for this run's features (see begin)
        self._cache: KVCache | None = None
        self._rows: list[int] = []  # rollout index of each cache row
        self._index: dict[int, int] = {}  # id(book) -> rollout index
        self._rngs: list[np.random.Generator] = []
        self._prev = np.zeros(0, np.int64)  # previous token of each rollout (by rollout index)
        self._mid2 = np.zeros(0, np.float64)  # last known doubled mid of each rollout
        self._open_mid = 0.0

    # ------------------------------------------------------------------ protocol
    def begin(
        self,
        books: list[OrderBook],
        history: OrderStream,
        history_rows: np.ndarray | None,
        open_mid: float,
        ts_ns: int,
        seed: int,
    ) -> None:
        if len(history) == 0:
            raise ValueError("LMMGenerator needs at least one history order as context")
        n = len(books)
        self._index = {id(b): i for i, b in enumerate(books)}
        self._rngs = [rollout_rng(seed, i, GENERATOR_STREAM) for i in range(n)]
        self._open_mid = float(open_mid)
        # Features see as many levels as the feed the model was trained on shows: a level-5
        # history (AMZN) limits the rollout books' features to 5 levels too.
        self._levels = self.levels
        if history_rows is not None:
            self._levels = min(self.levels, np.asarray(history_rows).shape[-1] // 4)
        fork_row = pad_rows(books[0].snapshot(self._levels), N_LEVELS)
        if history_rows is None:
            before = np.repeat(fork_row[None], len(history), axis=0)
        else:
            before = pad_rows(history_rows, N_LEVELS)
        tok = self.tokenizer
        ids = tok.encode(history, before)
        # history order j is paired with the book after it: the row before j + 1, then the fork
        after = np.concatenate([before[1:], fork_row[None]])
        feats = features_from_rows(after, open_mid, history.ts_ns, tok.tick)
        m = min(len(history) - 1, self.model.cfg.block_size - 1)
        prompt = slice(len(history) - 1 - m, len(history) - 1)  # all but the last order
        if m > 0:
            x = [
                torch.from_numpy(np.ascontiguousarray(a[prompt])[None]).to(self.device)
                for a in (ids, feats.lob, feats.mid_bucket, feats.tod)
            ]
            cache, _ = self.model.prefill(*x)
            self._cache = cache.expand(n)
        else:
            self._cache = KVCache(self.model.cfg, n, self.device)
        self._rows = list(range(n))
        self._prev = np.full(n, ids[-1], np.int64)
        fork_mid2 = mid2_from_rows(fork_row, 2.0 * open_mid)
        self._mid2 = np.full(n, float(fork_mid2))

    def next_orders(self, books: list[OrderBook], ts_ns: list[int]) -> list[GeneratedOrder]:
        if self._cache is None:
            raise RuntimeError("next_orders called before begin")
        live = [self._index[id(b)] for b in books]
        if live != self._rows:
            self._compact(live)
        rows = book_rows(books, self._levels)
        rows = pad_rows(rows, N_LEVELS)
        tok = self.tokenizer
        feats = features_from_rows(rows, self._open_mid, np.asarray(ts_ns, np.int64), tok.tick)
        mid2 = mid2_from_rows(rows, self._mid2[live])
        self._mid2[live] = mid2
        u = np.stack([self._rngs[i].random(_DRAWS) for i in live])  # (B, 7)
        dev = self.device
        with torch.inference_mode():
            h = self.model.step(
                self._cache,
                torch.from_numpy(self._prev[live]).to(dev),
                torch.from_numpy(feats.lob).to(dev),
                torch.from_numpy(feats.mid_bucket).to(dev),
                torch.from_numpy(feats.tod).to(dev),
            )
            new = self.model.sample(
                h, self.temperature, uniforms=torch.from_numpy(u[:, :4]).to(dev)
            )
        ids = new.cpu().numpy()
        self._prev[live] = ids
        dec = tok.decode(ids, mid2, u=u[:, 4:])
        return [
            GeneratedOrder(t, p, q, i)
            for t, p, q, i in zip(
                dec.type.tolist(),
                dec.price.tolist(),
                dec.qty.tolist(),
                dec.interval_ns.tolist(),
                strict=True,
            )
        ]

    def _compact(self, live: list[int]) -> None:
        """Keep only the cache rows of ``live`` rollouts (a subsequence of the current rows)."""
        pos = {r: k for k, r in enumerate(self._rows)}
        try:
            keep = torch.tensor([pos[r] for r in live], dtype=torch.long, device=self.device)
        except KeyError as exc:
            raise RuntimeError(f"rollout {exc.args[0]} stopped earlier and came back") from exc
        cache = self._cache
        assert cache is not None
        cache.k = cache.k.index_select(1, keep)
        cache.v = cache.v.index_select(1, keep)
        self._rows = list(live)


def load_generator(
    path: str | Path = DEFAULT_CHECKPOINT, device: str = "cpu", **kwargs
) -> LMMGenerator:
    """An ``LMMGenerator`` from a checkpoint (default: the bundled ``lmm-small``)."""
    model, tokenizer, _ = load_checkpoint(path, device)
    return LMMGenerator(model, tokenizer, device=device, **kwargs)
