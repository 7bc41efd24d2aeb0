"""``LMMGenerator``: the order model behind the rollout engine's ``OrderGenerator`` protocol.

Token pairing (as in training, ``models/train.py``): the model input for order ``j`` is its
token plus the features of the book *after* it, i.e. the book the next order meets. So each
``next_orders`` step feeds, for every rollout, the previous order's token (the last history
order on the first step, the rollout's own last generated order afterwards) together with the
features of that rollout's current book and clock, and samples the next order from the output:
every sampled order is conditioned on the book it will be matched against. Its price slot is
decoded relative to that same book's best prices (``models.tokenizer.price_codes``), so a
passive token never crosses the rollout's book and a cancel targets a level behind a touch
(v3 tokenizers: the level of that rank in the rollout's book, so it always finds one unless
the side is empty, when it is a void cancel, ``GeneratedOrder.exact``; v2: the ticks behind
the best, which in a rollout book missed a level about half of the time and was redirected by
the engine to the nearest level, mostly the deepest one). A marketable token's size is capped
at the liquidity it can take (``simulator.rollout.available_qty``): the training data's
executions are fills, never a remainder resting inside the spread (submitted uncapped, a
remainder would rest inside the spread and close it). A v4 sweep token (``SWEEP_SLOT``) takes
exactly that liquidity.

Randomness: rollout ``i`` draws only from ``rollout_rng(seed, i, GENERATOR_STREAM)`` (seven
uniforms per step: four for the token's fields, three for the concrete price, volume and
interval), so a rollout's orders do not depend on how many siblings it has or when they stop.

The KV cache holds one row per running rollout; the shared history is encoded once (batch 1)
and the cache is then copied to every rollout. When rollouts stop, the cache is compacted to
the ones still running.
"""

from __future__ import annotations

import json
import zlib
from bisect import bisect_right
from pathlib import Path

import numpy as np
import torch

from models.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint, sampling_of
from models.model import KVCache, OrderModel, PerField, field_temperatures, field_top_p
from models.tokenizer import (
    N_LEVELS,
    SWEEP_SLOT,
    OrderTokenizer,
    book_rows,
    flow_features,
    flow_signals,
    flow_step,
    mid2_from_rows,
    pad_rows,
    token_fields,
)
from simulator.book import EMPTY_ASK_PRICE, EMPTY_BID_PRICE, OrderBook
from simulator.orderstream import OrderStream, OrderType, intervals_ns
from simulator.rollout import (
    GENERATOR_STREAM,
    ContextError,
    GeneratedOrder,
    available_qty,
    cancel_side,
    marketable_qty,
    nearest_level_price,
    rollout_rng,
)

# Sampling temperatures of rollouts (type, price, volume, interval): the price field is sharpened,
# which brings rollout spreads closer to the real ones (docs/decisions/sampling.md).
DEFAULT_TEMPERATURE = (1.0, 0.8, 1.0, 1.0)
# Nucleus mass per field: the price field never draws the improbable tail of its 32 classes.
# These defaults were tuned for the bundled tokenizer-v3 model; a checkpoint can carry its own
# (``models.checkpoint.sampling_of``, written by ``surveillance train --temperature --top-p``).
# What was measured, and the alternatives not adopted: docs/decisions/sampling.md.
DEFAULT_TOP_P = (1.0, 0.95, 1.0, 1.0)
# Bump whenever a change to the sampling or decoding rules changes the orders a checkpoint
# generates: it is part of the model version that calibrations and cached forks are keyed by
# (``sampler_version``, ``surveillance.detection.scorer.checkpoint_version``).
SAMPLER_REVISION = 3  # 3: time features held inside the training span
_DRAWS = 7  # uniforms per rollout per step: type, price, volume, interval slots; 3 decode
# Steps of uniforms drawn at once per rollout: ``Generator.random(k * n)`` yields exactly the
# values of ``k`` calls of ``random(n)``, so the orders are the same, with one call per rollout
# every ``_DRAW_BLOCK`` steps instead of every step.
_DRAW_BLOCK = 64


class LMMGenerator:
    """Samples orders for many rollouts at once from a trained order model.

    ``temperature`` divides the logits (0: greedy, deterministic): one value for every field or
    four (type, price, volume, interval; default ``DEFAULT_TEMPERATURE``). ``top_p`` is the
    nucleus mass each field samples from, one value or four (default ``DEFAULT_TOP_P``).
    ``snap_cancels``: a cancel whose volume slot holds the size of the order the engine would
    remove (the newest at the level its price targets) cancels exactly that size, so the order
    goes as a whole, as most real cancels do, instead of leaving a remnant that keeps the level
    alive. ``levels`` is the most book levels per side the features read (default 10); ``begin``
    lowers it to the depth of ``history_rows`` so that a level-5 instrument (AMZN) is seen as it
    was in training.
    """

    def __init__(
        self,
        model: OrderModel,
        tokenizer: OrderTokenizer,
        *,
        temperature: PerField = DEFAULT_TEMPERATURE,
        top_p: PerField = DEFAULT_TOP_P,
        device: str = "cpu",
        levels: int = N_LEVELS,
        snap_cancels: bool = True,
    ) -> None:
        self.snap_cancels = snap_cancels
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        # the cancel volume bins' lower edges: a size's slot, as ``Bins.encode``, by bisection
        self._cancel_lo: list[int] = tokenizer.volume["cancel"].lo.tolist()
        self.temperature = temperature
        self.top_p = field_top_p(top_p)
        self.device = device
        self.levels = levels
        self._levels = levels  # levels used for this run's features (see begin)
        self._cache: KVCache | None = None
        self._rows: list[int] = []  # rollout index of each cache row
        self._index: dict[int, int] = {}  # id(book) -> rollout index
        self._rngs: list[np.random.Generator] = []
        self._draws = np.zeros((0, _DRAW_BLOCK, _DRAWS))  # each rollout's next uniforms
        self._drawn = _DRAW_BLOCK  # steps of ``_draws`` used
        self._prev = np.zeros(0, np.int64)  # previous token of each rollout (by rollout index)
        self._mid2 = np.zeros(0, np.float64)  # last known doubled mid of each rollout
        # order-flow averages of each rollout after its previous order (``tokenizer.flow``)
        self._flow = np.zeros((0, 0), np.float64)
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
            raise ContextError("LMMGenerator needs at least one history order as context")
        n = len(books)
        self._index = {id(b): i for i, b in enumerate(books)}
        self._rngs = [rollout_rng(seed, i, GENERATOR_STREAM) for i in range(n)]
        self._draws = np.zeros((n, _DRAW_BLOCK, _DRAWS))
        self._drawn = _DRAW_BLOCK
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
        feats = tok.rollout_features(after, open_mid, history.ts_ns, self._levels)
        lob = feats.lob
        if tok.flow:  # the averages over the history, from the prior at its first order
            signals = flow_signals(
                history.type, history.aggressive, history.qty, intervals_ns(history.ts_ns)
            )
            flow = flow_features(signals)
            lob = np.concatenate([lob, flow], axis=1)
            self._flow = np.repeat(flow[-1:].astype(np.float64), n, axis=0)
        m = min(len(history) - 1, self.model.cfg.block_size - 1)
        prompt = slice(len(history) - 1 - m, len(history) - 1)  # all but the last order
        if m > 0:
            x = [
                torch.from_numpy(np.ascontiguousarray(a[prompt])[None]).to(self.device)
                for a in (ids, lob, feats.mid_bucket, feats.tod)
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
        feats = tok.rollout_features(rows, self._open_mid, ts_ns, self._levels)
        mid2 = mid2_from_rows(rows, self._mid2[live])
        self._mid2[live] = mid2
        lob = feats.lob
        if tok.flow:  # the averages after each rollout's previous order
            lob = np.concatenate([lob, self._flow[live].astype(np.float32)], axis=1)
        u = self._uniforms(live)  # (B, 7)
        dev = self.device
        with torch.inference_mode():
            h = self.model.step(
                self._cache,
                torch.from_numpy(self._prev[live]).to(dev),
                torch.from_numpy(np.ascontiguousarray(lob)).to(dev),
                torch.from_numpy(feats.mid_bucket).to(dev),
                torch.from_numpy(feats.tod).to(dev),
            )
            new = self.model.sample(
                h, self.temperature, uniforms=torch.from_numpy(u[:, :4]).to(dev), top_p=self.top_p
            )
        ids = new.cpu().numpy()
        self._prev[live] = ids
        # an empty book decodes around its last known mid
        empty = (rows[:, 0] == EMPTY_ASK_PRICE) & (rows[:, 2] == EMPTY_BID_PRICE)
        mid = (np.rint(mid2 / (2 * tok.tick)) * tok.tick).astype(np.int64)
        ask = np.where(empty, mid, rows[:, 0])
        bid = np.where(empty, mid, rows[:, 2])
        dec = tok.decode(ids, ask, bid, u=u[:, 4:], rows=rows)
        types, prices, qtys = dec.type.tolist(), dec.price.tolist(), dec.qty.tolist()
        vslots = token_fields(ids)[2].tolist()
        asks, bids = ask.tolist(), bid.tolist()
        marketable = [
            (t == OrderType.BID and p >= a) or (t == OrderType.ASK and p <= b)
            for t, p, a, b in zip(types, prices, asks, bids, strict=True)
        ]
        for k, (t, p) in enumerate(zip(types, prices, strict=True)):
            if marketable[k]:
                if tok.sweep and vslots[k] == SWEEP_SLOT:
                    # v4: takes exactly what rests up to its price
                    qtys[k] = max(available_qty(books[k], t, p), 1)
                else:
                    qtys[k] = marketable_qty(books[k], t, p, qtys[k])
            elif t == OrderType.CANCEL and self.snap_cancels:
                target = cancel_target_qty(books[k], p)
                if target is not None and bisect_right(self._cancel_lo, target) - 1 == vslots[k]:
                    qtys[k] = target
        if tok.flow:
            signals = flow_signals(types, marketable, qtys, dec.interval_ns)
            self._flow[live] = flow_step(self._flow[live], signals)
        # v3: a cancel names a level of one side; with that side empty it finds nothing (void),
        # rather than being redirected to the other side's nearest level
        exact = tok.cancel_levels
        return [
            GeneratedOrder(t, p, q, i, exact=exact and t == OrderType.CANCEL)
            for t, p, q, i in zip(types, prices, qtys, dec.interval_ns.tolist(), strict=True)
        ]

    def _uniforms(self, live: list[int]) -> np.ndarray:
        """The next ``_DRAWS`` uniforms of each live rollout's stream, (B, 7). Every live rollout
        draws once per step and a stopped one never again, so one counter serves them all."""
        if self._drawn == _DRAW_BLOCK:
            for i in live:
                self._draws[i] = self._rngs[i].random((_DRAW_BLOCK, _DRAWS))
            self._drawn = 0
        u = self._draws[live, self._drawn]
        self._drawn += 1
        return u

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


def cancel_target_qty(book: OrderBook, price: int) -> int | None:
    """Resting size of the order a price-only cancel at ``price`` removes first (the rollout
    engine's side, level and ``newest`` choice), or None when it would find nothing."""
    side = cancel_side(book, price)
    if side == 0:
        return None
    newest = book.newest_order(side, price)
    if newest is None:
        near = nearest_level_price(book, side, price)
        if near is None:
            return None
        newest = book.newest_order(side, near)
    return None if newest is None else int(newest[1])


def sampler_version(
    temperature: PerField = DEFAULT_TEMPERATURE,
    snap_cancels: bool = True,
    top_p: PerField = DEFAULT_TOP_P,
) -> str:
    """``s<crc>`` of the sampling settings and ``SAMPLER_REVISION`` (the defaults: what
    ``load_generator`` samples with)."""
    text = json.dumps(
        [SAMPLER_REVISION, field_temperatures(temperature), snap_cancels, field_top_p(top_p)]
    )
    return f"s{zlib.crc32(text.encode()):08x}"


def load_generator(
    path: str | Path = DEFAULT_CHECKPOINT, device: str = "cpu", **kwargs
) -> LMMGenerator:
    """An ``LMMGenerator`` from a checkpoint (default: the bundled ``lmm-small``), sampling as
    its meta says (``models.checkpoint.sampling_of``) unless ``kwargs`` set it."""
    model, tokenizer, meta = load_checkpoint(path, device)
    kwargs = {**sampling_of(meta), **kwargs}
    return LMMGenerator(model, tokenizer, device=device, **kwargs)
