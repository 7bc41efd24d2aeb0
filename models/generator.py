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

Agents inside a rollout (``simulator.agents``): their orders enter the rollout's context as
tokens too (``observe_agents``), each paired with the book after it, so the model's next
order is conditioned on them as MarS conditions on injected orders
(docs/decisions/agent-orders-in-context.md).

Randomness: rollout ``i`` draws only from ``rollout_rng(seed, i, GENERATOR_STREAM)`` (seven
uniforms per step: four for the token's fields, three for the concrete price, volume and
interval), so a rollout's orders do not depend on how many siblings it has or when they stop.

Batches across forks: ``begin`` starts a run with one fork's rollouts and ``join`` adds another
fork's to the same run; every ``next_orders`` steps the rollouts of all of them in one model
call. Each fork's history is encoded alone (batch 1) and its cache copied to each of its rows;
every cache row keeps its own position (``KVCache.positions``), so forks with different
histories or that joined later share the batch. A rollout that stops frees its row for a fork
that joins; stopped rows are moved out of the cache once they are an eighth of it.
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
    FLOW_DIM,
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
from models.tokenizer.units import MIN_SCALE_ORDERS, UnitScale, rolling_scales, scale_after
from simulator.book import EMPTY_ASK_PRICE, EMPTY_BID_PRICE, OrderBook
from simulator.orderstream import OrderStream, OrderType, intervals_ns
from simulator.rollout import (
    GENERATOR_STREAM,
    AgentTurn,
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
# The fewest rows the model is run on. On this CPU's MKL a float32 matmul gives a row other bits
# in a batch of 1 to 3 rows than in any batch of 4 or more (measured up to 2,400): a rollout's
# row must not fall into the small-batch kernel when its siblings stop, or its orders would
# depend on how many others share the batch (docs/decisions/batched-forking.md).
_MIN_ROWS = 4


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
    was in training. ``see_agents``: orders that agents send inside a rollout enter the model's
    context as tokens of their own (``observe_agents``), as MarS conditions generation on
    injected orders; off, the model sees them only through the book they leave.
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
        see_agents: bool = True,
    ) -> None:
        self.snap_cancels = snap_cancels
        self.see_agents = see_agents
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        # the cancel volume bins' lower edges: a size's slot, as ``Bins.encode``, by bisection
        self._cancel_lo: list[int] = tokenizer.volume["cancel"].lo.tolist()
        self.temperature = temperature
        self.top_p = field_top_p(top_p)
        self.device = device
        self.levels = levels
        self._cache: KVCache | None = None
        # Per rollout of the run (every fork that began or joined it, in that order): its
        # cache row (-1 once stopped), whether it is live, its random stream and uniforms, its
        # previous token, last doubled mid, order-flow averages, the day's open mid and the
        # levels its features read (the depth of its fork's feed).
        self._slot = np.zeros(0, np.int64)
        self._live = np.zeros(0, bool)
        self._nlive = 0
        self._stale: list[int] = []  # cache rows of stopped rollouts, free to reuse
        self._used = 0  # cache rows [0, used) hold live or stopped rollouts
        self._index: dict[int, int] = {}  # id(book) -> rollout index in the run
        self._rngs: list[np.random.Generator] = []
        self._draws = np.zeros((0, _DRAW_BLOCK, _DRAWS))  # each rollout's next uniforms
        self._drawn = np.zeros(0, np.int64)  # steps of each rollout's ``_draws`` used
        self._prev = np.zeros(0, np.int64)
        self._mid2 = np.zeros(0, np.float64)
        self._flow = np.zeros((0, FLOW_DIM), np.float64)  # ``tokenizer.flow``
        self._flow_prev = np.zeros((0, FLOW_DIM), np.float64)  # before the in-flight order
        self._open = np.zeros(0, np.float64)
        self._depth = np.zeros(0, np.int64)
        # ``tokenizer.relative_units``: each rollout's scale, its history's at the fork
        self._size = np.zeros(0, np.float64)
        self._ivl = np.zeros(0, np.float64)
        # per rollout index: agent orders to feed before its next step (token, book features)
        self._forced: dict[int, list[tuple[int, np.ndarray, int, np.ndarray]]] = {}

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
        """Start a run with one fork's rollouts (``join`` adds more forks to it)."""
        self._cache = None
        self._slot = np.zeros(0, np.int64)
        self._live = np.zeros(0, bool)
        self._nlive = 0
        self._stale = []
        self._used = 0
        self._index = {}
        self._rngs = []
        self._draws = np.zeros((0, _DRAW_BLOCK, _DRAWS))
        self._drawn = np.zeros(0, np.int64)
        self._prev = np.zeros(0, np.int64)
        self._mid2 = np.zeros(0, np.float64)
        self._flow = np.zeros((0, FLOW_DIM), np.float64)
        self._flow_prev = np.zeros((0, FLOW_DIM), np.float64)
        self._open = np.zeros(0, np.float64)
        self._depth = np.zeros(0, np.int64)
        self._size = np.zeros(0, np.float64)
        self._ivl = np.zeros(0, np.float64)
        self._forced = {}
        self.join(books, history, history_rows, open_mid, ts_ns, seed)

    def join(
        self,
        books: list[OrderBook],
        history: OrderStream,
        history_rows: np.ndarray | None,
        open_mid: float,
        ts_ns: int,
        seed: int,
    ) -> None:
        """Add one more fork's rollouts to the run: its history is prefilled alone (batch 1)
        and its rows join the batch that every later ``next_orders`` steps. Each row keeps its
        own position, random stream and state, so a fork samples the same orders whichever
        forks share its batch (docs/decisions/batched-forking.md)."""
        if len(history) == 0:
            raise ContextError("LMMGenerator needs at least one history order as context")
        if self._cache is None and len(self._slot):
            raise RuntimeError("join called before begin")
        n = len(books)
        first = len(self._rngs)  # rollout index of this fork's rollout 0 in the run
        # Features see as many levels as the feed the model was trained on shows: a level-5
        # history (AMZN) limits the rollout books' features to 5 levels too.
        levels = self.levels
        if history_rows is not None:
            levels = min(self.levels, np.asarray(history_rows).shape[-1] // 4)
        fork_row = pad_rows(books[0].snapshot(levels), N_LEVELS)
        if history_rows is None:
            before = np.repeat(fork_row[None], len(history), axis=0)
        else:
            before = pad_rows(history_rows, N_LEVELS)
        tok = self.tokenizer
        # relative units: each history order against the scale of the orders before it, as in
        # training; the rollouts generate against the scale after the last
        # (``models.tokenizer.units``)
        scales = None
        if tok.relative_units:
            if len(history) < MIN_SCALE_ORDERS:
                raise ContextError(
                    f"a relative-units model needs {MIN_SCALE_ORDERS} history orders to read "
                    f"the instrument's scale; this fork has {len(history)}"
                )
            scales = rolling_scales(history.type, history.qty, history.ts_ns)
        ids = tok.encode(history, before, scale=scales)
        # history order j is paired with the book after it: the row before j + 1, then the fork
        after = np.concatenate([before[1:], fork_row[None]])
        feats = tok.rollout_features(after, open_mid, history.ts_ns, levels, scales)
        lob = feats.lob
        flow = np.zeros((n, FLOW_DIM), np.float64)
        if tok.flow:  # the averages over the history, from the prior at its first order
            signals = flow_signals(
                history.type, history.aggressive, history.qty, intervals_ns(history.ts_ns)
            )
            flows = flow_features(signals)
            lob = np.concatenate([lob, flows], axis=1)
            flow = np.repeat(flows[-1:].astype(np.float64), n, axis=0)
        m = min(len(history) - 1, self.model.cfg.block_size - 1)
        prompt = slice(len(history) - 1 - m, len(history) - 1)  # all but the last order
        if m > 0:
            x = [
                torch.from_numpy(np.ascontiguousarray(a[prompt])[None]).to(self.device)
                for a in (ids, lob, feats.mid_bucket, feats.tod)
            ]
            cache, _ = self.model.prefill(*x)
        else:
            cache = KVCache(self.model.cfg, 1, self.device)
        slots = self._place_rows(cache, n, m)
        for i, b in enumerate(books):
            self._index[id(b)] = first + i
        self._slot = np.concatenate([self._slot, slots])
        self._live = np.concatenate([self._live, np.ones(n, bool)])
        self._nlive += n
        self._rngs += [rollout_rng(seed, i, GENERATOR_STREAM) for i in range(n)]
        self._draws = np.concatenate([self._draws, np.zeros((n, _DRAW_BLOCK, _DRAWS))])
        self._drawn = np.concatenate([self._drawn, np.full(n, _DRAW_BLOCK, np.int64)])
        self._prev = np.concatenate([self._prev, np.full(n, ids[-1], np.int64)])
        fork_mid2 = float(mid2_from_rows(fork_row, 2.0 * open_mid))
        self._mid2 = np.concatenate([self._mid2, np.full(n, fork_mid2)])
        self._flow = np.concatenate([self._flow, flow])
        self._flow_prev = np.concatenate([self._flow_prev, flow])
        self._open = np.concatenate([self._open, np.full(n, float(open_mid))])
        self._depth = np.concatenate([self._depth, np.full(n, levels, np.int64)])
        # the rollouts hold the scale after the history's last order
        last = (
            scale_after(history.type, history.qty, history.ts_ns)
            if scales is not None
            else UnitScale(1.0, 1.0)
        )
        self._size = np.concatenate([self._size, np.full(n, float(last.size))])
        self._ivl = np.concatenate([self._ivl, np.full(n, float(last.interval_ns))])

    def _scale(self, rollouts) -> UnitScale | None:
        """The scale the rollouts read and write sizes and intervals in (relative units)."""
        if not self.tokenizer.relative_units:
            return None
        return UnitScale(self._size[rollouts], self._ivl[rollouts])

    def _place_rows(self, prompt: KVCache, n: int, pos: int) -> np.ndarray:
        """Copy a batch-1 ``prompt`` cache at position ``pos`` into ``n`` cache rows: rows of
        stopped rollouts first (a rollout that ends frees its row), then new ones (the buffers
        grow by doubling, so joining forks one by one stays linear). Returns the rows."""
        cache = self._cache
        if cache is None:
            cache = self._cache = KVCache(self.model.cfg, max(n, _MIN_ROWS), self.device)
            cache.positions = torch.zeros(cache.k.shape[1], dtype=torch.long, device=self.device)
        reuse = self._stale[:n]
        del self._stale[:n]
        fresh = n - len(reuse)
        rows = reuse + list(range(self._used, self._used + fresh))
        self._used += fresh
        capacity = cache.k.shape[1]
        if self._used > capacity:
            grow = max(self._used, 2 * capacity) - capacity
            shape = (cache.k.shape[0], grow, *cache.k.shape[2:])
            cache.k = torch.cat([cache.k, cache.k.new_zeros(shape)], dim=1)
            cache.v = torch.cat([cache.v, cache.v.new_zeros(shape)], dim=1)
            assert cache.positions is not None
            cache.positions = torch.cat([cache.positions, cache.positions.new_zeros(grow)])
        at = torch.tensor(rows, dtype=torch.long, device=self.device)
        cache.k.index_copy_(1, at, prompt.k.expand(-1, n, -1, -1, -1))
        cache.v.index_copy_(1, at, prompt.v.expand(-1, n, -1, -1, -1))
        assert cache.positions is not None
        cache.positions[at] = pos
        return np.asarray(rows, np.int64)

    def next_orders(self, books: list[OrderBook], ts_ns: list[int]) -> list[GeneratedOrder]:
        if self._cache is None:
            raise RuntimeError("next_orders called before begin")
        index = self._index
        live = [index[id(b)] for b in books]
        if len(live) != self._nlive or not self._live[live].all():
            self._drop(live)
        tok = self.tokenizer
        depth = self._depth[live]
        scale = self._scale(live)
        if (depth == depth[0]).all():  # one feed depth: the common case, one pass
            rows = pad_rows(book_rows(books, int(depth[0])), N_LEVELS)
            feats = tok.rollout_features(rows, self._open[live], ts_ns, int(depth[0]), scale)
            lob, mid_bucket, tod = feats.lob, feats.mid_bucket, feats.tod
        else:
            rows, lob, mid_bucket, tod = self._features_by_depth(books, live, ts_ns, depth)
        mid2 = mid2_from_rows(rows, self._mid2[live])
        self._mid2[live] = mid2
        if tok.flow:  # the averages after each rollout's previous order
            lob = np.concatenate([lob, self._flow[live].astype(np.float32)], axis=1)
        if self._forced:
            self._feed_agent_orders()
        u = self._uniforms(live)  # (B, 7)
        ids = self._sample(self._slot[live], self._prev[live], lob, mid_bucket, tod, u)
        self._prev[live] = ids
        # an empty book decodes around its last known mid
        empty = (rows[:, 0] == EMPTY_ASK_PRICE) & (rows[:, 2] == EMPTY_BID_PRICE)
        mid = (np.rint(mid2 / (2 * tok.tick)) * tok.tick).astype(np.int64)
        ask = np.where(empty, mid, rows[:, 0])
        bid = np.where(empty, mid, rows[:, 2])
        dec = tok.decode(ids, ask, bid, u=u[:, 4:], rows=rows, scale=scale)
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
                # the slot's bins are in model units (relative units: the rollout's scale)
                size = target if scale is None or target is None else _in(scale, k, target)
                if size is not None and bisect_right(self._cancel_lo, size) - 1 == vslots[k]:
                    qtys[k] = target
        if tok.flow:
            signals = flow_signals(types, marketable, qtys, dec.interval_ns)
            self._flow_prev[live] = self._flow[live]  # ``observe_agents`` may replay the step
            self._flow[live] = flow_step(self._flow[live], signals)
        # v3: a cancel names a level of one side; with that side empty it finds nothing (void),
        # rather than being redirected to the other side's nearest level
        exact = tok.cancel_levels
        return [
            GeneratedOrder(t, p, q, i, exact=exact and t == OrderType.CANCEL)
            for t, p, q, i in zip(types, prices, qtys, dec.interval_ns.tolist(), strict=True)
        ]

    @property
    def reads_agents(self) -> bool:
        """Whether the engine should hand this sampler its rollouts' agent orders."""
        return self.see_agents

    def observe_agents(self, book: OrderBook, turn: AgentTurn) -> None:
        """Queue the orders a rollout's agents sent (``AgentTurn``) as tokens of its context.

        The rollout's cache holds the model's order before them; its next step feeds each
        agent order paired with the book after it, then the model's order that followed them
        (sampled before they went in) encoded again against the book it met and with its
        interval from the last of them: the order sequence a feed of that rollout would show,
        which is what the model was trained on. No uniforms are drawn for these steps, so a
        rollout's random stream is the same with or without agents.
        """
        if not self.see_agents or not turn.orders or turn.next_order is None:
            return
        k = self._index.get(id(book))
        if k is None or not self._live[k]:
            return
        tok = self.tokenizer
        depth = int(self._depth[k])
        scale = self._scale([k])

        def cut(row: np.ndarray) -> np.ndarray:  # the rollout's feed depth, as ``book_rows``
            return pad_rows(np.asarray(row, np.int64)[: 4 * depth], N_LEVELS)[None]

        def token(type_: int, price: int, qty: int, interval: int, before: np.ndarray) -> int:
            ids = tok.encode_fields(
                [type_], [price], [qty], [interval], before[:, 0], before[:, 2], before, scale
            )
            return int(ids[0])

        def flow_after(flow: np.ndarray, type_: int, price: int, qty: int, interval: int, row):
            taking = type_ != OrderType.CANCEL and _marketable(type_, price, row)
            return flow_step(flow, flow_signals([type_], [taking], [qty], np.array([interval])))

        queue = self._forced.setdefault(k, [])
        last = turn.since_ns
        # order-flow averages: from before the in-flight order, which now comes after these
        flow = self._flow_prev[k : k + 1]
        for o in turn.orders:
            after, before = cut(o.rows_after), cut(o.rows_before)
            feats = tok.rollout_features(after, self._open[k : k + 1], [o.ts_ns], depth, scale)
            lob = feats.lob[0]
            if tok.flow:
                flow = flow_after(flow, o.type, o.price, o.qty, o.ts_ns - last, before)
                lob = np.concatenate([lob, flow[0].astype(np.float32)])
            t = token(o.type, o.price, o.qty, o.ts_ns - last, before)
            queue.append((t, lob, int(feats.mid_bucket[0]), feats.tod[0]))
            last = o.ts_ns
        kind, price, qty, ts = turn.next_order
        met = cut(turn.orders[-1].rows_after)
        if tok.flow:
            self._flow[k] = flow_after(flow, kind, price, qty, ts - last, met)[0]
        self._prev[k] = token(kind, price, qty, ts - last, met)

    def _feed_agent_orders(self) -> None:
        """Step the queued agent orders into their rollouts' cache rows, one round per order
        (a rollout with three waits three rounds). Each round runs on those rows alone, copied
        out and back, padded to ``_MIN_ROWS`` with copies of its first row, so a row's result
        depends only on its own inputs (docs/decisions/batched-forking.md)."""
        cache = self._cache
        assert cache is not None and cache.positions is not None
        forced, self._forced = self._forced, {}
        forced = {k: q for k, q in forced.items() if self._live[k]}
        if not forced:
            return
        dev = self.device
        for r in range(max(len(q) for q in forced.values())):
            ks = [k for k, q in forced.items() if len(q) > r]
            slots = self._slot[ks]
            pad = np.concatenate([slots, np.full(max(_MIN_ROWS - len(ks), 0), slots[0])])
            at = torch.from_numpy(pad).to(dev)
            sub = KVCache.__new__(KVCache)
            sub.k, sub.v = cache.k.index_select(1, at), cache.v.index_select(1, at)
            sub.positions = cache.positions.index_select(0, at)
            sub.pos, sub.size = cache.pos, cache.size
            items = [forced[k][r] for k in ks]
            items += [items[0]] * (len(pad) - len(ks))
            with torch.inference_mode():
                self.model.step(
                    sub,
                    torch.tensor([t for t, _, _, _ in items], dtype=torch.long, device=dev),
                    torch.from_numpy(np.stack([lob for _, lob, _, _ in items])).to(dev),
                    torch.tensor([m for _, _, m, _ in items], dtype=torch.long, device=dev),
                    torch.from_numpy(np.stack([tod for _, _, _, tod in items])).to(dev),
                )
            n = len(ks)
            own = at[:n]
            cache.k[:, own] = sub.k[:, :n]
            cache.v[:, own] = sub.v[:, :n]
            cache.positions[own] = sub.positions[:n]

    def _features_by_depth(
        self, books: list[OrderBook], live: list[int], ts_ns: list[int], depth: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``next_orders``'s book rows and features when forks of feeds of different depths
        share the batch: each depth's rows in one pass, as a batch of that depth alone."""
        tok = self.tokenizer
        rows = np.zeros((len(live), 4 * N_LEVELS), np.int64)
        parts: list[tuple[np.ndarray, object]] = []
        for d in np.unique(depth).tolist():
            at = np.flatnonzero(depth == d)
            r = pad_rows(book_rows([books[k] for k in at], d), N_LEVELS)
            rows[at] = r
            live_at = [live[k] for k in at]
            feats = tok.rollout_features(
                r, self._open[live_at], [ts_ns[k] for k in at], d, self._scale(live_at)
            )
            parts.append((at, feats))
        feats0 = parts[0][1]
        lob = np.zeros((len(live), feats0.lob.shape[1]), feats0.lob.dtype)  # type: ignore[attr-defined]
        mid_bucket = np.zeros(len(live), np.int64)
        tod = np.zeros((len(live), feats0.tod.shape[1]), feats0.tod.dtype)  # type: ignore[attr-defined]
        for at, f in parts:
            lob[at], mid_bucket[at], tod[at] = f.lob, f.mid_bucket, f.tod  # type: ignore[attr-defined]
        return rows, lob, mid_bucket, tod

    def _sample(
        self,
        slots: np.ndarray,
        prev: np.ndarray,
        lob: np.ndarray,
        mid_bucket: np.ndarray,
        tod: np.ndarray,
        u: np.ndarray,
    ) -> np.ndarray:
        """One model step and token draw for every cache row in use; the tokens of the rows
        ``slots`` (the live rollouts', in ``next_orders`` order).

        Rows that hold no live rollout (stopped and not yet dropped, or padding up to
        ``_MIN_ROWS``) are stepped too, on zero inputs, and their draws thrown away: the model
        only ever runs on at least ``_MIN_ROWS`` rows (why: docs/decisions/batched-forking.md).
        """
        cache = self._cache
        assert cache is not None and cache.positions is not None
        total = max(self._used, _MIN_ROWS)
        if total < cache.k.shape[1]:  # the rows in use: a prefix, viewed (writes go through)
            view = KVCache.__new__(KVCache)
            view.k, view.v = cache.k[:, :total], cache.v[:, :total]
            view.positions = cache.positions[:total]
            view.pos, view.size = cache.pos, cache.size
        else:
            view = cache
        dev = self.device
        x_ids = np.zeros(total, np.int64)
        x_ids[slots] = prev
        x_lob = np.zeros((total, lob.shape[1]), np.float32)
        x_lob[slots] = lob
        x_mid = np.zeros(total, np.int64)
        x_mid[slots] = mid_bucket
        x_tod = np.zeros((total, tod.shape[1]), np.float32)
        x_tod[slots] = tod
        x_u = np.zeros((total, 4), u.dtype)
        x_u[slots] = u[:, :4]
        with torch.inference_mode():
            h = self.model.step(
                view,
                torch.from_numpy(x_ids).to(dev),
                torch.from_numpy(x_lob).to(dev),
                torch.from_numpy(x_mid).to(dev),
                torch.from_numpy(x_tod).to(dev),
            )
            new = self.model.sample(
                h, self.temperature, uniforms=torch.from_numpy(x_u).to(dev), top_p=self.top_p
            )
        cache.pos = view.pos
        return new.cpu().numpy()[slots]

    def _uniforms(self, live: list[int]) -> np.ndarray:
        """The next ``_DRAWS`` uniforms of each live rollout's stream, (B, 7): blocks of
        ``_DRAW_BLOCK`` steps drawn per rollout, each rollout with its own counter (forks that
        joined the run later are at other steps of their blocks)."""
        at = np.asarray(live, np.int64)
        drawn = self._drawn[at]
        for i in at[drawn == _DRAW_BLOCK].tolist():
            self._draws[i] = self._rngs[i].random((_DRAW_BLOCK, _DRAWS))
            self._drawn[i] = 0
        u = self._draws[at, self._drawn[at]]
        self._drawn[at] += 1
        return u

    def _drop(self, live: list[int]) -> None:
        """Free the rows of rollouts that stopped (absent from ``live``). Freed rows are
        reused by forks that join, or moved out once they are an eighth of the rows: a move
        copies the cache, so dropping one rollout at a time would copy it once per stop."""
        at = np.asarray(live, np.int64)
        if not self._live[at].all():
            back = at[~self._live[at]][0]
            raise RuntimeError(f"rollout {back} stopped earlier and came back")
        stopped = self._live.copy()
        stopped[at] = False
        gone = np.flatnonzero(stopped)
        self._stale += self._slot[gone].tolist()
        self._slot[gone] = -1
        self._live[gone] = False
        self._nlive = len(live)
        if 8 * len(self._stale) >= self._used:
            self._compact(at)

    def _compact(self, live: np.ndarray) -> None:
        """Move the live rollouts' rows to the front, in ``live`` order, and free the rest."""
        cache = self._cache
        assert cache is not None and cache.positions is not None
        b = len(live)
        src = torch.from_numpy(self._slot[live]).to(self.device)
        cache.k[:, :b] = cache.k.index_select(1, src)
        cache.v[:, :b] = cache.v.index_select(1, src)
        cache.positions[:b] = cache.positions.index_select(0, src)
        self._slot[live] = np.arange(b)
        self._used = b
        self._stale = []
        keep = max(b, _MIN_ROWS)
        if 2 * keep <= cache.k.shape[1]:  # give back what the run no longer needs
            cache.k = cache.k[:, :keep].clone()
            cache.v = cache.v[:, :keep].clone()
            cache.positions = cache.positions[:keep].clone()


def _in(scale: UnitScale, k: int, qty: int) -> int:
    """Rollout ``k``'s size ``qty`` in model units."""
    return int(scale.take(k).qty_in(qty))


def _marketable(type_: int, price: int, before: np.ndarray) -> bool:
    """Whether a limit order was marketable on the book it met (one LOBSTER row, (1, 4 N))."""
    if type_ == OrderType.BID:
        return price >= int(before[0, 0])
    return price <= int(before[0, 2])


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
