"""Training of the order model on LOBSTER days, with unigram and bigram baselines.

Data: each day becomes an ``OrderStream`` (``simulator.orderstream.from_lobster``); order ``i``
is tokenized against the book just before it (orderbook row ``source_row[i] - 1``) and paired
with the features of the book just after it (the book the next order meets). The last
``val_minutes`` of every day are held out; the tokenizer bins, the baselines and the model see
the training part only.

Validation loss is the mean negative log-likelihood, in nats per token, of every held-out order
after the first one of each day's held-out part (the model reads only held-out orders as context;
windows of ``block_size`` with 50% overlap, each target scored once). The unigram and bigram
baselines are scored on exactly the same targets; their add-k constant is the best of a small
grid on the held-out data, which only flatters the baselines.

The held-out orders' time features read their real clock, although rollouts hold the clock
inside the training span (``OrderTokenizer.clock``), so that the checkpoint choice stays what it
was when the bundled model was trained (docs/decisions/held-clock.md).

``level_dropout`` (``--level-dropout``) hides each side's deepest levels in a share of the
training windows (``sample_batch``), and ``feed_depth`` (``--feed-depth``) tells the model how
many levels the feed shows. Why, what they measured, and why the bundled model uses neither:
docs/decisions/tokenizer-depth-features.md.
"""

from __future__ import annotations

import hashlib
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.checkpoint import save_checkpoint
from models.generator import DEFAULT_TEMPERATURE, DEFAULT_TOP_P
from models.model import LMMConfig, OrderModel, PerField, field_temperatures, field_top_p
from models.tokenizer import (
    N_LEVELS,
    VOCAB_SIZE,
    OrderTokenizer,
    features_from_rows,
    flow_features,
    flow_signals,
    hide_levels,
    mid2_from_rows,
    pad_rows,
)
from models.tokenizer.units import rolling_scales
from simulator.book import EMPTY_ASK_PRICE, EMPTY_BID_PRICE, OrderBook
from simulator.feeds import load_feed, venue_day_start
from simulator.lobster import LobsterDay, Messages, load_lobster
from simulator.normalized import to_messages
from simulator.orderstream import OrderStream, convert_messages, intervals_ns
from simulator.replay import FeedReplayer
from simulator.types import Instrument, Side
from simulator.units import NS_PER_S

DEFAULT_FILES = (
    "LOBSTER_SampleFile_GOOG_2012-06-21_10.zip",
    "LOBSTER_SampleFile_AMZN_2012-06-21_5.zip",
)
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "lobster"


@dataclass
class TrainConfig:
    data_dir: Path = DEFAULT_DATA_DIR
    files: tuple[str, ...] = DEFAULT_FILES
    out: Path | None = REPO_ROOT / "models" / "checkpoints" / "lmm-small"
    seed: int = 0
    device: str = "cpu"
    steps: int = 1500
    max_minutes: float = 20.0  # safety stop; a run cut by it is no longer step-deterministic
    batch_size: int = 32
    lr: float = 2e-3
    min_lr: float = 1e-4
    warmup: int = 50
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_every: int = 250
    val_minutes: float = 90.0
    max_orders: int | None = None  # use only the first orders of each day (tests)
    level_gaps: bool = False  # features also give where the levels are (LOB_DIM_GAPS)
    sweep: bool = False  # tokenizer v4: a volume slot for "takes all that rests up to its price"
    flow: bool = False  # features also give moving averages of the order flow (FLOW_DIM)
    feed_depth: bool = False  # features also give the feed's depth (DEPTH_DIM)
    # sizes and intervals in each day's own rolling scale (``models.tokenizer.units``)
    relative_units: bool = False
    # share of training windows whose book features hide each side's deepest levels
    # (``sample_batch``, ``models.tokenizer.hide_levels``)
    level_dropout: float = 0.0
    # a venue file (any ``simulator.feeds`` format) instead of the LOBSTER ``files``: one day,
    # its clock turned into times of day, read only before ``train_until_ns`` (ns after the
    # venue's midnight; None: the whole file), validated on its last ``val_minutes``
    data: Path | None = None
    fmt: str = "auto"
    train_until_ns: int | None = None
    # how the model's rollouts sample, recorded in the checkpoint (``sampling`` of its meta;
    # None: the sampler's defaults, recorded only when the other one is set)
    temperature: PerField | None = None
    top_p: PerField | None = None
    model: LMMConfig = field(default_factory=LMMConfig)


@dataclass
class DayTokens:
    """One day, tokenized: inputs ``ids[i]`` with features of the book after order ``i``."""

    name: str
    ids: np.ndarray  # (N,) int64
    lob: np.ndarray  # (N, tokenizer.lob_dim) float32
    mid: np.ndarray  # (N,) int64
    tod: np.ndarray  # (N, TOD_DIM) float32
    n_train: int  # orders [0, n_train) train, [n_train, N) validation
    levels: int = N_LEVELS  # levels per side the day's feed shows

    def part(self, split: str) -> DayTokens:
        sl = slice(0, self.n_train) if split == "train" else slice(self.n_train, None)
        return DayTokens(
            self.name,
            self.ids[sl],
            self.lob[sl],
            self.mid[sl],
            self.tod[sl],
            self.n_train if split == "train" else 0,
            self.levels,
        )


@dataclass
class TrainResult:
    model: OrderModel
    tokenizer: OrderTokenizer
    val_loss: float
    unigram_loss: float
    bigram_loss: float
    history: list[dict[str, float]]
    meta: dict[str, Any]


def _rel(path: Path) -> str:
    """A path as the checkpoint meta records it: relative to the repository root if possible."""
    return os.path.relpath(Path(path).resolve(), REPO_ROOT)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _from_lobster(day: LobsterDay) -> OrderStream:
    try:
        from simulator.orderstream import from_lobster  # type: ignore[attr-defined]
    except ImportError as exc:  # pragma: no cover - until the converter lands
        raise RuntimeError("simulator.orderstream.from_lobster is not available") from exc
    return from_lobster(day)


# ---------------------------------------------------------------------- data
@dataclass
class _RawDay:
    name: str
    stream: OrderStream
    rows_before: np.ndarray
    rows_after: np.ndarray
    mid2: np.ndarray
    interval: np.ndarray
    open_mid: float
    n_train: int


def _raw_day(day: LobsterDay, val_minutes: float, max_orders: int | None) -> _RawDay:
    stream = _from_lobster(day)
    book = day.orderbook
    if book is None:
        raise ValueError(f"{day.source}: an orderbook file is needed for training")
    before = np.maximum(np.asarray(stream.source_row, np.int64) - 1, 0)
    after = np.append(before[1:], len(book) - 1)  # the book the next order meets
    if max_orders is not None:
        keep = slice(0, max_orders)
        stream = OrderStream(*(getattr(stream, f.name)[keep] for f in fields(stream)))
        before, after = before[keep], after[keep]
    n = len(stream)
    rows_before, rows_after = book[before], book[after]
    open_mid = float(mid2_from_rows(book[0], np.nan)) / 2.0
    mid2 = mid2_from_rows(rows_before, 2.0 * open_mid)
    ts = np.asarray(stream.ts_ns, np.int64)
    interval = intervals_ns(ts)
    if max_orders is None:
        val_start = day.name.end_ms * 1_000_000 - int(val_minutes * 60 * NS_PER_S)
    else:  # a prefix: hold out its last fifth
        val_start = int(ts[int(n * 0.8)])
    n_train = int(np.searchsorted(ts, val_start, side="left"))
    return _RawDay(
        day.name.symbol, stream, rows_before, rows_after, mid2, interval, open_mid, n_train
    )


def _book_rows_after(messages: Messages, symbol: str, levels: int = N_LEVELS) -> np.ndarray:
    """LOBSTER-style orderbook rows: the book after each message, replayed from an empty book
    (a venue feed's first events seed it)."""
    replayer = FeedReplayer(OrderBook(symbol))
    book = replayer.book
    rows = np.zeros((len(messages), 4 * levels), np.int64)
    rows[:, 0::4] = EMPTY_ASK_PRICE
    rows[:, 2::4] = EMPTY_BID_PRICE
    cols = zip(
        messages.kind.tolist(),
        messages.order_id.tolist(),
        messages.qty.tolist(),
        messages.price.tolist(),
        messages.side.tolist(),
        strict=True,
    )
    for i, (k, o, q, p, sd) in enumerate(cols):
        replayer.apply(k, o, q, p, sd)
        for j, (price, qty) in enumerate(book.depth(Side.ASK, levels)):
            rows[i, 4 * j], rows[i, 4 * j + 1] = price, qty
        for j, (price, qty) in enumerate(book.depth(Side.BID, levels)):
            rows[i, 4 * j + 2], rows[i, 4 * j + 3] = price, qty
    return rows


def raw_feed_day(
    path: Path,
    fmt: str,
    train_until_ns: int | None,
    val_minutes: float,
    max_orders: int | None,
) -> tuple[_RawDay, Instrument]:
    """One venue file (Bitstamp, Databento, normalized) as a training day: its times become
    times of day (the clock the benchmark forks at), only events before ``train_until_ns`` are
    read, and the book each order meets is replayed from the events. Orders a reconciliation
    wrote (``synthetic``: the opening seed, resyncs) move the book but are not trained on."""
    feed = load_feed(path, fmt)
    frame = feed.frame
    if frame.empty:
        raise ValueError(f"{path}: no events")
    symbol = str(frame["instrument"].iloc[0])
    instrument = feed.instrument or Instrument(symbol)
    ts_all = frame["ts_ns"].to_numpy(np.int64) - venue_day_start(frame, feed.instrument)
    if train_until_ns is not None:
        stop = int(np.searchsorted(ts_all, train_until_ns, side="left"))
        frame, ts_all = frame.iloc[:stop], ts_all[:stop]
    messages = to_messages(frame)
    messages = replace(messages, ts_ns=ts_all)
    rows = _book_rows_after(messages, symbol)
    stream, _ = convert_messages(messages)
    synthetic = frame["synthetic"].to_numpy(bool)
    stream = stream.take(np.flatnonzero(~synthetic[np.asarray(stream.source_row, np.int64)]))
    before = np.maximum(np.asarray(stream.source_row, np.int64) - 1, 0)
    after = np.append(before[1:], len(rows) - 1)
    if max_orders is not None:
        stream = stream.take(slice(0, max_orders))
        before, after = before[:max_orders], after[:max_orders]
    n = len(stream)
    if n < 10:
        raise ValueError(f"{path}: only {n} orders before the training cut")
    two_sided = np.flatnonzero((rows[:, 0] != EMPTY_ASK_PRICE) & (rows[:, 2] != EMPTY_BID_PRICE))
    if len(two_sided) == 0:
        raise ValueError(f"{path}: the book is never two-sided")
    open_mid = float(mid2_from_rows(rows[two_sided[0]], np.nan)) / 2.0
    rows_before, rows_after = rows[before], rows[after]
    mid2 = mid2_from_rows(rows_before, 2.0 * open_mid)
    ts = np.asarray(stream.ts_ns, np.int64)
    if max_orders is None:
        end = int(ts_all[-1]) if train_until_ns is None else train_until_ns
        val_start = end - int(val_minutes * 60 * NS_PER_S)
    else:  # a prefix: hold out its last fifth
        val_start = int(ts[int(n * 0.8)])
    n_train = int(np.searchsorted(ts, val_start, side="left"))
    raw = _RawDay(
        symbol, stream, rows_before, rows_after, mid2, intervals_ns(ts), open_mid, n_train
    )
    return raw, instrument


def tokenize_days(
    raw: list[_RawDay],
    seed: int,
    level_gaps: bool = False,
    sweep: bool = False,
    flow: bool = False,
    feed_depth: bool = False,
    tick: int = 100,
    session: tuple[int, int] | None = None,
    relative_units: bool = False,
) -> tuple[OrderTokenizer, list[DayTokens]]:
    """Fit the tokenizer on the training parts and tokenize every day. ``tick`` and
    ``session``: the instrument's (``Instrument.session_ns``; None: NASDAQ's day).
    ``relative_units``: sizes and intervals read against each day's own rolling scale
    (``models.tokenizer.units``), the bins fitted on them."""
    if relative_units and (sweep or flow):
        raise ValueError("relative units are not implemented with --sweep or --flow")
    scales = {
        id(r): rolling_scales(r.stream.type, r.stream.qty, r.stream.ts_ns)
        if relative_units
        else None
        for r in raw
    }

    def train_cat(get: Callable[[_RawDay], np.ndarray]) -> np.ndarray:
        return np.concatenate([get(r)[: r.n_train] for r in raw])

    def qty(r: _RawDay) -> np.ndarray:
        sc = scales[id(r)]
        return r.stream.qty if sc is None else sc.qty_in(r.stream.qty)

    def interval(r: _RawDay) -> np.ndarray:
        sc = scales[id(r)]
        return r.interval if sc is None else sc.interval_in(r.interval)

    tok = OrderTokenizer.fit(
        train_cat(lambda r: r.stream.type),
        train_cat(lambda r: r.stream.price),
        train_cat(qty),
        train_cat(interval),
        train_cat(lambda r: r.rows_before[:, 0]),
        train_cat(lambda r: r.rows_before[:, 2]),
        seed=seed,
        rows=train_cat(lambda r: pad_rows(r.rows_before)),
        sweep=sweep,
        tick=tick,
    )
    tok.session = session
    tok.relative_units = relative_units
    tok.level_gaps = level_gaps
    tok.flow = flow
    tok.feed_depth = feed_depth
    # the training orders' times of day: a rollout's time features stay inside them
    # (``OrderTokenizer.clock``; validation does not, see the module docstring)
    spans = [r.stream.ts_ns[[0, r.n_train - 1]] for r in raw if r.n_train > 0]
    if spans:
        tok.clock_span = (int(min(s[0] for s in spans)), int(max(s[1] for s in spans)))
    days = []
    for r in raw:
        s = r.stream
        ids = tok.encode_fields(
            s.type,
            s.price,
            s.qty,
            r.interval,
            r.rows_before[:, 0],
            r.rows_before[:, 2],
            pad_rows(r.rows_before),
            scales[id(r)],
        )
        levels = min(r.rows_after.shape[-1] // 4, N_LEVELS)
        f = features_from_rows(
            r.rows_after if scales[id(r)] is None else scales[id(r)].rows_in(r.rows_after),
            r.open_mid,
            s.ts_ns,
            tok.tick,
            gaps=level_gaps,
            depth=levels if feed_depth else None,
            session=session,
        )
        lob = f.lob
        if flow:  # order i's features: the averages over the day's orders up to i
            signals = flow_signals(s.type, s.aggressive, s.qty, r.interval)
            lob = np.concatenate([lob, flow_features(signals)], axis=1)
        days.append(DayTokens(r.name, ids, lob, f.mid_bucket, f.tod, r.n_train, levels))
    return tok, days


# ---------------------------------------------------------------------- baselines
def unigram_nll(train_ids: list[np.ndarray], targets: list[np.ndarray], k: float) -> float:
    counts = np.bincount(np.concatenate(train_ids), minlength=VOCAB_SIZE).astype(np.float64)
    logp = np.log(counts + k) - np.log(counts.sum() + k * VOCAB_SIZE)
    t = np.concatenate(targets)
    return float(-logp[t].mean())


def bigram_nll(train_ids: list[np.ndarray], val_ids: list[np.ndarray], k: float) -> float:
    """Add-k bigram; targets are ``val[1:]`` of every day, context the token before each."""
    prev = np.concatenate([d[:-1] for d in train_ids])
    nxt = np.concatenate([d[1:] for d in train_ids])
    pair_keys, pair_counts = np.unique(prev * VOCAB_SIZE + nxt, return_counts=True)
    ctx_counts = np.bincount(prev, minlength=VOCAB_SIZE).astype(np.float64)
    vp = np.concatenate([d[:-1] for d in val_ids])
    vn = np.concatenate([d[1:] for d in val_ids])
    keys = vp * VOCAB_SIZE + vn
    pos = np.clip(np.searchsorted(pair_keys, keys), 0, len(pair_keys) - 1)
    c = np.where(pair_keys[pos] == keys, pair_counts[pos], 0).astype(np.float64)
    logp = np.log(c + k) - np.log(ctx_counts[vp] + k * VOCAB_SIZE)
    return float(-logp.mean())


def baselines(
    train_ids, val_ids, grid=(3.0, 1.0, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001)
) -> dict[str, float]:
    targets = [d[1:] for d in val_ids]
    uni = {k: unigram_nll(train_ids, targets, k) for k in grid}
    bi = {k: bigram_nll(train_ids, val_ids, k) for k in grid}
    ku, kb = min(uni, key=uni.__getitem__), min(bi, key=bi.__getitem__)
    return {"unigram": uni[ku], "unigram_k": ku, "bigram": bi[kb], "bigram_k": kb}


# ---------------------------------------------------------------------- model data
def _tensors(d: DayTokens, idx: np.ndarray, device: str, lob: np.ndarray | None = None):
    """Gather windows: idx (B, T) positions -> model inputs on ``device`` (``lob``: the
    windows' book features, if already gathered)."""
    return (
        torch.from_numpy(d.ids[idx]).to(device),
        torch.from_numpy(d.lob[idx] if lob is None else lob).to(device),
        torch.from_numpy(d.mid[idx]).to(device),
        torch.from_numpy(d.tod[idx]).to(device),
    )


def sample_batch(
    days: list[DayTokens],
    T: int,
    B: int,
    rng: np.random.Generator,
    device: str,
    level_dropout: float = 0.0,
    gaps: bool = False,
):
    """B random training windows of T inputs (+1 target), days drawn by their length.

    ``level_dropout``: each window, with that probability, sees each side of its books
    (independently) through only its best ``v`` levels, ``v`` uniform in 1..depth - 1, for the
    whole window (``hide_levels``). No draws are made when it is 0, so a run without it samples
    exactly the windows it always did."""
    lengths = np.array([max(d.n_train - T, 0) for d in days], np.float64)
    which = rng.choice(len(days), size=B, p=lengths / lengths.sum())
    xs, ys = [], []
    for j, d in enumerate(days):
        n = int((which == j).sum())
        if n == 0:
            continue
        starts = rng.integers(0, d.n_train - T, size=n)
        idx = starts[:, None] + np.arange(T)[None, :]
        lob = None
        if level_dropout > 0 and d.levels > 1:
            lob = d.lob[idx]
            hide = rng.random(n) < level_dropout
            visible = rng.integers(1, d.levels, size=(n, 2))  # 1 .. depth - 1 per side
            visible = np.where(hide[:, None], visible, d.levels)
            hide_levels(lob, visible[:, :1], visible[:, 1:], d.levels, gaps)
        xs.append(_tensors(d, idx, device, lob))
        ys.append(torch.from_numpy(d.ids[idx + 1]).to(device))
    return tuple(torch.cat(parts) for parts in zip(*xs, strict=True)), torch.cat(ys)


@torch.no_grad()
def evaluate(model: OrderModel, days: list[DayTokens], device: str, batch: int = 32) -> float:
    """Mean NLL (nats/token) over ``ids[1:]`` of each (validation) day; see module docstring."""
    model.eval()
    T = model.cfg.block_size
    half = T // 2
    total, count = 0.0, 0
    for d in days:
        n_in = len(d.ids) - 1  # inputs 0..n-2 predict targets 1..n-1
        if n_in <= 0:
            continue
        windows = []  # (start, length, first scored offset)
        s = 0
        while True:
            length = min(T, n_in - s)
            windows.append((s, length, 0 if s == 0 else half))
            if s + T >= n_in:
                break
            s += half
        for group_len in sorted({w[1] for w in windows}):
            group = [w for w in windows if w[1] == group_len]
            for b in range(0, len(group), batch):
                chunk = group[b : b + batch]
                idx = np.array([np.arange(st, st + group_len) for st, _, _ in chunk])
                x = _tensors(d, idx, device)
                y = torch.from_numpy(d.ids[idx + 1]).to(device)
                lp = model.head.log_prob(model.hidden(*x), y)  # (b, L)
                for row, (_, _, first) in enumerate(chunk):
                    total += float(-lp[row, first:].sum())
                    count += group_len - first
    model.train()
    return total / max(count, 1)


def _lr(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    frac = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * frac))


# ---------------------------------------------------------------------- training
def train(
    cfg: TrainConfig, log: Callable[[str], None] = print, command: str | None = None
) -> TrainResult:
    """Tokenize, fit baselines, train (keeping the best validation state), save a checkpoint."""
    t_start = time.perf_counter()
    if not 0.0 <= cfg.level_dropout <= 1.0:
        raise ValueError(f"level_dropout must be in [0, 1], got {cfg.level_dropout}")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    instrument: Instrument | None = None
    if cfg.data is not None:
        paths = [Path(cfg.data)]
        if not paths[0].exists():
            raise FileNotFoundError(f"training data not found: {paths[0]}")
        day, instrument = raw_feed_day(
            paths[0], cfg.fmt, cfg.train_until_ns, cfg.val_minutes, cfg.max_orders
        )
        raw = [day]
    else:
        paths = [Path(cfg.data_dir) / f for f in cfg.files]
        for p in paths:
            if not p.exists():
                raise FileNotFoundError(f"training data not found: {p}")
        raw = [_raw_day(load_lobster(p), cfg.val_minutes, cfg.max_orders) for p in paths]
    tok, days = tokenize_days(
        raw,
        cfg.seed,
        cfg.level_gaps,
        cfg.sweep,
        cfg.flow,
        cfg.feed_depth,
        tick=instrument.tick_size if instrument is not None else 100,
        session=instrument.session_ns() if instrument is not None else None,
        relative_units=cfg.relative_units,
    )
    want = tok.lob_dim
    if cfg.model.lob_dim != want:
        cfg.model = replace(cfg.model, lob_dim=want)
    train_days = [d.part("train") for d in days]
    val_days = [d.part("val") for d in days]
    for d, t, v in zip(days, train_days, val_days, strict=True):
        log(f"{d.name}: {len(t.ids)} train orders, {len(v.ids)} validation orders")
    base = baselines([d.ids for d in train_days], [d.ids for d in val_days])
    log(
        f"baselines (nats/token): unigram {base['unigram']:.4f} (k={base['unigram_k']}), "
        f"bigram {base['bigram']:.4f} (k={base['bigram_k']})"
    )

    T = cfg.model.block_size
    if min(d.n_train for d in train_days) <= T:
        raise ValueError(f"a training split has no more than block_size={T} orders")
    model = OrderModel(cfg.model).to(cfg.device)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "emb" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2 or "emb" in n]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=cfg.lr,
        betas=(0.9, 0.95),
    )
    log(f"model: {model.num_params():,} parameters, {cfg.model}")
    history: list[dict[str, float]] = []
    # The checkpoint kept is the one with the lowest validation loss; rollout realism varies far
    # more between checkpoints and is noisy to choose by (docs/decisions/checkpoint-choice.md).
    best_loss, best_state, best_step = math.inf, None, -1
    t_train = time.perf_counter()
    step = 0
    stopped_by_time = False
    for step in range(cfg.steps):
        for group in opt.param_groups:
            group["lr"] = _lr(step, cfg)
        x, y = sample_batch(
            train_days, T, cfg.batch_size, rng, cfg.device, cfg.level_dropout, cfg.level_gaps
        )
        loss = model(*x, targets=y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        last = step == cfg.steps - 1
        out_of_time = (time.perf_counter() - t_start) / 60 > cfg.max_minutes
        if (step + 1) % cfg.eval_every == 0 or last or out_of_time:
            val = evaluate(model, val_days, cfg.device)
            elapsed = time.perf_counter() - t_train
            history.append(
                {"step": step + 1, "train": loss.item(), "val": val, "s": round(elapsed, 1)}
            )
            log(f"step {step + 1}: train {loss.item():.4f} val {val:.4f} ({elapsed:.0f} s)")
            if val < best_loss:
                best_loss, best_step = val, step + 1
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if out_of_time:
            stopped_by_time = True
            log(f"stopped by the {cfg.max_minutes} minute limit after {step + 1} steps")
            break
    assert best_state is not None
    model.load_state_dict(best_state)
    model.eval()
    train_s = time.perf_counter() - t_train

    meta = {
        "data": [
            {
                "file": p.name,
                "sha256": sha256_file(p),
                "symbol": d.name,
                "orders": len(d.ids),
                "train_orders": d.n_train,
                "val_orders": len(d.ids) - d.n_train,
            }
            for p, d in zip(paths, days, strict=True)
        ],
        "validation": {
            "holdout": f"last {cfg.val_minutes:g} minutes of each day"
            + (
                f" before {cfg.train_until_ns / 3.6e12:g} h (later events never read)"
                if cfg.train_until_ns is not None
                else ""
            ),
            "targets": int(sum(max(len(d.ids) - 1, 0) for d in val_days)),
            "model_nats": best_loss,
            "unigram_nats": base["unigram"],
            "unigram_k": base["unigram_k"],
            "bigram_nats": base["bigram"],
            "bigram_k": base["bigram_k"],
            "best_step": best_step,
            "note": (
                f"tokenizer v{tok.version}: prices relative to the touch (same-side best, "
                "spread fractions, depth past the opposite best; cancels by side and "
                + (
                    "the rank of the level they name); limit-order tokens are those of v2, "
                    "cancel tokens are not, so losses compare with v2 checkpoints only on "
                    "limit orders"
                    if tok.cancel_levels
                    else "depth behind the best)"
                )
                + "; losses are not comparable with v1 (mid-relative) checkpoints"
            ),
        },
        "training": {
            **{
                k: (_rel(v) if isinstance(v, Path) else v)
                for k, v in asdict(cfg).items()
                if k != "model"
            },
            "files": list(cfg.files),
            "steps_run": step + 1,
            "stopped_by_time": stopped_by_time,
            "train_seconds": round(train_s, 1),
            "history": history,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "threads": torch.get_num_threads(),
        },
        "command": command,
    }
    if instrument is not None:
        # which venue and instrument the model knows: the wiring picks it for their feeds
        meta["instrument"] = instrument.as_dict()
    if cfg.temperature is not None or cfg.top_p is not None:
        temperature = DEFAULT_TEMPERATURE if cfg.temperature is None else cfg.temperature
        top_p = DEFAULT_TOP_P if cfg.top_p is None else cfg.top_p
        meta["sampling"] = {
            "temperature": list(field_temperatures(temperature)),
            "top_p": list(field_top_p(top_p)),
        }
    if cfg.out is not None:
        weights, meta_path = save_checkpoint(cfg.out, model, tok, meta)
        log(f"wrote {weights} ({weights.stat().st_size / 1e6:.2f} MB) and {meta_path.name}")
    return TrainResult(model, tok, best_loss, base["unigram"], base["bigram"], history, meta)
