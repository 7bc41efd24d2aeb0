"""Training on a prefix of real data, checkpoints, and the generator behind the rollout engine."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from models.checkpoint import CHECKPOINT_DIR, load_checkpoint  # noqa: E402
from models.generator import (  # noqa: E402
    _DRAW_BLOCK,
    LMMGenerator,
    cancel_target_qty,
    load_generator,
    pad_rows,
)
from models.model import LMMConfig  # noqa: E402
from models.tokenizer import (  # noqa: E402
    LOB_DIM,
    MARKETABLE_BASE,
    TOKENIZER_VERSION,
    OrderTokenizer,
    time_of_day,
    token_fields,
)
from models.train import (  # noqa: E402
    DayTokens,
    TrainConfig,
    bigram_nll,
    evaluate,
    sample_batch,
    train,
    unigram_nll,
)
from simulator.book import EMPTY_ASK_PRICE, EMPTY_BID_PRICE, OrderBook  # noqa: E402
from simulator.lobster import load_lobster  # noqa: E402
from simulator.orderstream import OrderType, from_lobster  # noqa: E402
from simulator.rollout import (  # noqa: E402
    GENERATOR_STREAM,
    GeneratedOrder,
    available_qty,
    fork_rollouts,
    marketable_qty,
    rollout_rng,
)
from simulator.types import Side  # noqa: E402

SPREAD_FLOOR = 0.5  # rollout spread after 250-500 orders, as a share of the fork's spread
# the committed order models: the detector's default and the most realistic one measured
BUNDLED_MODELS = ("lmm-small", "lmm-depth")
TINY = LMMConfig(n_layer=1, n_head=2, d_model=32, block_size=32, dropout=0.0)


def _tiny_config(lobster_dir, out, seed: int = 0) -> TrainConfig:
    return TrainConfig(
        data_dir=lobster_dir,
        out=out,
        seed=seed,
        steps=40,
        eval_every=20,
        batch_size=8,
        lr=5e-3,
        warmup=5,
        max_orders=2500,
        model=TINY,
    )


@pytest.fixture(scope="module")
def trained(lobster_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt") / "lmm-tiny"
    torch.set_num_threads(1)  # bit-identical reruns
    return train(_tiny_config(lobster_dir, out), log=lambda _: None), out


def test_tiny_training_run_lowers_validation_loss(trained):
    result, _ = trained
    first, last = result.history[0]["val"], result.history[-1]["val"]
    assert last <= first
    # an untrained model is close to uniform over 49,152 ids (10.8 nats per token)
    assert result.val_loss < np.log(49_152) - 1.5
    assert result.history[-1]["train"] < np.log(49_152) - 1.5
    assert result.meta["validation"]["model_nats"] == result.val_loss
    assert [d["file"] for d in result.meta["data"]] == list(TrainConfig().files)


def test_checkpoint_round_trip_rebuilds_the_same_logits(trained):
    result, out = trained
    model, tok, meta = load_checkpoint(out.with_suffix(".pt"))
    assert meta["config"] == result.model.cfg.to_dict()
    assert tok.to_dict() == result.tokenizer.to_dict()
    assert tok.version == TOKENIZER_VERSION  # what training fits unless asked for --sweep
    assert len(meta["data"]) == 2 and all(len(d["sha256"]) == 64 for d in meta["data"])
    g = torch.Generator().manual_seed(0)
    x = (
        torch.randint(0, 49_152, (2, 10), generator=g),
        torch.rand(2, 10, LOB_DIM, generator=g),
        torch.randint(0, 21, (2, 10), generator=g),
        torch.rand(2, 10, 4, generator=g),
    )
    result.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model.hidden(*x), result.model.hidden(*x))
    state = torch.load(out.with_suffix(".pt"), weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())


def test_a_checkpoint_whose_tokenizer_features_do_not_fit_its_model_is_refused(trained, tmp_path):
    import shutil

    _, out = trained
    copy = tmp_path / "edited"
    shutil.copy(out.with_suffix(".pt"), copy.with_suffix(".pt"))
    meta = json.loads(out.with_suffix(".json").read_text())
    meta["tokenizer"]["features"]["level_gaps"] = True  # the weights read LOB_DIM features
    copy.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="reads 21 book features, its tokenizer gives 39"):
        load_checkpoint(copy.with_suffix(".pt"))


def test_training_is_deterministic_for_a_seed(trained, lobster_dir, tmp_path):
    result, _ = trained
    again = train(_tiny_config(lobster_dir, None), log=lambda _: None)
    assert again.history == [
        {**h, "s": again.history[i]["s"]} for i, h in enumerate(result.history)
    ]
    for (k, a), b in zip(
        result.model.state_dict().items(), again.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), k


def test_baselines_on_a_toy_sequence():
    train_ids = [np.array([1, 2, 1, 2, 1, 2])]
    val = [np.array([1, 2, 1])]
    # the bigram knows 1 -> 2 -> 1 for sure; the unigram only that 1 and 2 are common
    assert bigram_nll(train_ids, val, 1e-9) < 0.01
    assert unigram_nll(train_ids, [v[1:] for v in val], 1e-9) == pytest.approx(np.log(2), 1e-3)


def test_evaluate_scores_every_target_once(trained):
    """Windowed evaluation equals one pass when the sequence fits in a single window."""
    result, _ = trained
    model = result.model
    rng = np.random.default_rng(0)
    n = model.cfg.block_size
    day = DayTokens(
        "X",
        rng.integers(0, 49_152, n + 1),
        rng.random((n + 1, LOB_DIM), dtype=np.float32),
        rng.integers(0, 21, n + 1),
        rng.random((n + 1, 4), dtype=np.float32),
        0,
    )
    got = evaluate(model, [day], "cpu")
    with torch.no_grad():
        x = [torch.from_numpy(a[:n][None]) for a in (day.ids, day.lob, day.mid, day.tod)]
        want = float(model(*x, targets=torch.from_numpy(day.ids[1:][None])))
    assert got == pytest.approx(want, rel=1e-5)


# ---------------------------------------------------------------------- generator
def _book_from_row(row: np.ndarray) -> OrderBook:
    book = OrderBook("GOOG")
    for lvl in range(len(row) // 4):
        ask_px, ask_sz, bid_px, bid_sz = row[4 * lvl : 4 * lvl + 4]
        if ask_sz > 0 and ask_px != EMPTY_ASK_PRICE:
            book.add(book.mint_id(), Side.ASK, int(ask_px), int(ask_sz))
        if bid_sz > 0:
            book.add(book.mint_id(), Side.BID, int(bid_px), int(bid_sz))
    return book


@pytest.fixture(scope="module")
def fork_point(lobster_dir):
    day = load_lobster(lobster_dir / "LOBSTER_SampleFile_GOOG_2012-06-21_10.zip")
    stream = from_lobster(day)
    j = 3000  # fork just before order j

    history = stream.take(slice(j - 200, j))
    rows = day.orderbook[np.maximum(history.source_row - 1, 0)]
    book = _book_from_row(day.orderbook[stream.source_row[j] - 1])
    open_mid = (day.orderbook[0, 0] + day.orderbook[0, 2]) / 2
    return book, history, rows, open_mid, int(stream.ts_ns[j - 1])


def _roll(out, fork_point, n: int, seed: int = 1):
    book, history, rows, open_mid, ts = fork_point
    gen = load_generator(out.with_suffix(".pt"))
    return fork_rollouts(
        book,
        history,
        rows,
        gen,
        n=n,
        start_ns=ts,
        horizon_ns=30 * 10**9,
        open_mid=open_mid,
        seed=seed,
        max_orders=60,
    )


def test_generator_drives_rollouts_reproducibly(trained, fork_point):
    _, out = trained
    a = _roll(out, fork_point, n=4)
    b = _roll(out, fork_point, n=4)
    assert len(a) == 4 and all(len(r) > 0 for r in a)
    for ra, rb in zip(a, b, strict=True):
        assert np.array_equal(ra.price, rb.price) and np.array_equal(ra.ts_ns, rb.ts_ns)
    assert not all(np.array_equal(a[0].price, r.price) for r in a[1:])
    for r in a:
        assert np.all(r.price % 100 == 0) and np.all(r.qty > 0)
        assert set(np.unique(r.type).tolist()) <= {0, 1, 2}


def test_a_rollout_does_not_depend_on_its_siblings(trained, fork_point):
    _, out = trained
    two, four = _roll(out, fork_point, n=2), _roll(out, fork_point, n=4)
    for r2, r4 in zip(two, four[:2], strict=True):
        assert np.array_equal(r2.price, r4.price) and np.array_equal(r2.qty, r4.qty)


def test_a_rollout_does_not_depend_on_when_its_siblings_stop(trained, fork_point):
    """Past several blocks of pre-drawn uniforms (``models.generator._DRAW_BLOCK``), with
    siblings stopping at the horizon one by one, rollout 0 still draws its own stream."""
    _, out = trained
    book, history, rows, open_mid, ts = fork_point

    def roll(n: int):
        return fork_rollouts(
            book,
            history,
            rows,
            load_generator(out.with_suffix(".pt")),
            n=n,
            start_ns=ts,
            horizon_ns=60 * 10**9,
            open_mid=open_mid,
            seed=5,
            max_orders=400,
        )

    alone, among = roll(1)[0], roll(5)
    lengths = sorted(len(r) for r in among)
    assert lengths[0] < lengths[-1] and lengths[-1] > 3 * _DRAW_BLOCK, lengths
    assert np.array_equal(alone.price, among[0].price)
    assert np.array_equal(alone.qty, among[0].qty)
    assert np.array_equal(alone.ts_ns, among[0].ts_ns)


def test_each_rollout_draws_its_own_stream_in_order_as_siblings_stop(trained, fork_point):
    result, _ = trained
    book, history, rows, open_mid, ts = fork_point
    gen = LMMGenerator(result.model, result.tokenizer)
    books = [book.fork() for _ in range(4)]
    gen.begin(books, history, rows, open_mid, ts, seed=9)
    streams = [rollout_rng(9, i, GENERATOR_STREAM) for i in range(4)]
    live = [0, 1, 2, 3]
    for step in range(3 * _DRAW_BLOCK + 5):
        if step == 70:
            live = [0, 2, 3]  # rollout 1 stops
        if step == 150:
            live = [3]
        want = np.stack([streams[i].random(7) for i in live])
        assert np.array_equal(gen._uniforms(live), want), step


def test_generator_orders_are_priced_at_each_books_touch(trained, fork_point):
    result, _ = trained
    book, history, rows, open_mid, ts = fork_point
    tok = result.tokenizer
    gen = LMMGenerator(result.model, tok, temperature=1.0)
    far = book.fork()  # the same book shifted 500 ticks up: prices must follow the touch
    high = OrderBook("GOOG")
    for side in (Side.BID, Side.ASK):
        for level in far.iter_levels(side):
            high.add(high.mint_id(), side, level.price + 50_000, level.qty)
    gen.begin([book, high], history, rows, open_mid, ts, seed=3)
    marketable_slots = np.flatnonzero(tok.price["limit"].lo >= MARKETABLE_BASE)
    for _ in range(20):
        o_low, o_high = gen.next_orders([book, high], [ts, ts])
        slots = token_fields(gen._prev)[1]
        assert isinstance(o_low, GeneratedOrder)
        for o, b, slot in ((o_low, book, slots[0]), (o_high, high, slots[1])):
            assert abs(o.price - b.mid) < 2_000 * 100  # within $20 of its own book's mid
            assert o.type in (OrderType.ASK, OrderType.BID, OrderType.CANCEL)
            assert o.qty > 0 and o.interval_ns >= 0
            if o.type == OrderType.BID:  # a passive token never crosses the book it meets
                assert (o.price >= b.best_ask) == (slot in marketable_slots)
            elif o.type == OrderType.ASK:
                assert (o.price <= b.best_bid) == (slot in marketable_slots)
            else:  # a cancel names a price at or behind one side's best
                assert o.price >= b.best_ask or o.price <= b.best_bid
                # v3: the price of a resting level (by rank), and never redirected elsewhere
                assert tok.cancel_levels and o.exact
                assert b.level(Side.ASK, o.price) or b.level(Side.BID, o.price)


@pytest.mark.parametrize("name", BUNDLED_MODELS)
def test_committed_model_keeps_the_spread_of_a_real_book(fork_point, name):
    """The spread of rollouts from a bundled checkpoint must not collapse (it used to fall from
    ~30 ticks to ~5 within 50 orders when prices were tokenized relative to the mid)."""
    book, history, rows, open_mid, ts = fork_point
    torch.set_num_threads(1)
    results = fork_rollouts(
        book,
        history,
        rows,
        load_generator(CHECKPOINT_DIR / f"{name}.pt"),
        n=4,
        start_ns=ts,
        horizon_ns=3600 * 10**9,
        open_mid=open_mid,
        seed=0,
        max_orders=500,
        max_depth=10,
    )
    assert all(len(r) == 500 for r in results)
    late = np.concatenate([(r.best_ask - r.best_bid)[250:] for r in results]) / 100
    fork_spread = (book.best_ask - book.best_bid) / 100
    assert fork_spread >= 10
    assert SPREAD_FLOOR * fork_spread <= np.median(late) <= 3 * fork_spread, (late, fork_spread)


def test_marketable_size_is_capped_at_the_liquidity_it_can_take():
    book = OrderBook("T")
    book.add(book.mint_id(), Side.ASK, 10_100, 30)
    book.add(book.mint_id(), Side.ASK, 10_200, 50)
    book.add(book.mint_id(), Side.BID, 10_000, 40)
    assert marketable_qty(book, OrderType.BID, 10_100, 500) == 30  # only the best ask
    assert marketable_qty(book, OrderType.BID, 10_200, 500) == 80  # sweeps two levels
    assert marketable_qty(book, OrderType.BID, 10_200, 60) == 60
    assert marketable_qty(book, OrderType.ASK, 10_000, 500) == 40
    # the cancel a price targets: that level's newest order, else the nearest level's
    book.add(book.mint_id(), Side.ASK, 10_100, 7)
    assert cancel_target_qty(book, 10_100) == 7
    assert cancel_target_qty(book, 10_300) == 50
    assert cancel_target_qty(OrderBook("T"), 10_000) is None


def test_generator_handles_a_stopped_rollout(trained, fork_point):
    result, _ = trained
    book, history, _, open_mid, ts = fork_point
    books = [book.fork() for _ in range(3)]
    gen = LMMGenerator(result.model, result.tokenizer)
    gen.begin(books, history, None, open_mid, ts, seed=0)
    assert len(gen.next_orders(books, [ts] * 3)) == 3
    assert len(gen.next_orders([books[0], books[2]], [ts] * 2)) == 2
    with pytest.raises(RuntimeError, match="came back"):
        gen.next_orders(books, [ts] * 3)


def test_generator_reads_no_deeper_than_the_history_feed(trained, fork_point):
    result, _ = trained
    book, history, rows, open_mid, ts = fork_point
    gen = LMMGenerator(result.model, result.tokenizer)
    gen.begin([book], history, rows[:, :20], open_mid, ts, seed=0)  # a level-5 feed
    assert gen._depth.tolist() == [5]  # each rollout row reads its fork's feed depth
    gen.begin([book], history, rows, open_mid, ts, seed=0)
    assert gen._depth.tolist() == [10]


def test_rollouts_hold_their_time_features_inside_the_training_span(
    trained, fork_point, lobster_dir, monkeypatch
):
    result, out = trained
    tok = result.tokenizer
    firsts, lasts = [], []  # the training part of each day: its first 2,000 of 2,500 orders
    for name in TrainConfig().files:
        ts = from_lobster(load_lobster(lobster_dir / name)).ts_ns[:2500]
        part = ts[ts < ts[2000]]
        firsts.append(int(part[0]))
        lasts.append(int(part[-1]))
    assert tok.clock_span == (min(firsts), max(lasts))
    assert load_checkpoint(out.with_suffix(".pt"))[1].clock_span == tok.clock_span
    book, history, rows, open_mid, ts = fork_point
    end = tok.clock_span[1]
    late = end + 60 * 10**9 - int(history.ts_ns[0])  # the same fork, past the training part
    history = replace(history, ts_ns=history.ts_ns + late)
    ts += late

    def tods(tokenizer, clocks):
        gen = LMMGenerator(result.model, tokenizer)
        seen = []
        real_prefill, real_step = gen.model.prefill, gen.model.step
        monkeypatch.setattr(
            gen.model, "prefill", lambda *a: seen.append(a[3][0]) or real_prefill(*a)
        )
        # the live rollout's row only: the model also steps padding rows (at least four rows)
        monkeypatch.setattr(gen.model, "step", lambda *a: seen.append(a[4][:1]) or real_step(*a))
        books = [book.fork()]
        gen.begin(books, history, rows, open_mid, ts, seed=0)
        for clock in clocks:
            gen.next_orders(books, [clock])
        return torch.cat(seen).numpy()

    clocks = [ts, ts + 3600 * 10**9]
    held = tods(tok, clocks)
    assert len(held) == 31 + 2 and np.all(held == time_of_day([end]))
    doc = tok.to_dict()
    del doc["features"]["clock_span_ns"]  # a checkpoint from before spans: the real clock
    real = tods(OrderTokenizer.from_dict(doc), clocks)
    assert np.allclose(real, time_of_day([*history.ts_ns[-32:-1], *clocks]))


@pytest.mark.parametrize("name", BUNDLED_MODELS)
def test_committed_model_was_trained_before_the_held_out_windows(name):
    _, tok, meta = load_checkpoint(CHECKPOINT_DIR / f"{name}.pt")
    assert meta["validation"]["holdout"] == "last 90 minutes of each day"
    start, end = tok.clock_span
    assert (9 * 3600 + 1800) * 10**9 <= start < end < (14 * 3600 + 1800) * 10**9


def test_pad_rows_fills_missing_levels_with_empty_sentinels():
    row = np.array([[10_100, 5, 10_000, 7]])
    padded = pad_rows(row, 3)
    assert padded.shape == (1, 12)
    assert padded[0, 4] == EMPTY_ASK_PRICE and padded[0, 5] == 0


def test_train_command_writes_a_checkpoint(lobster_dir, tmp_path):
    from surveillance.cli import main

    out = tmp_path / "cli-model"
    argv = ["train", "--data-dir", str(lobster_dir), "--out", str(out), "--steps", "3"]
    argv += ["--eval-every", "3", "--max-orders", "800", "--layers", "1", "--d-model", "16"]
    argv += ["--heads", "2", "--block-size", "16", "--batch-size", "4", "--threads", "1"]
    argv += ["--top-p", "1,0.9,1,1"]
    assert main(argv) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    # the sampling its rollouts use travels with it (the temperature: the sampler's default)
    assert meta["sampling"] == {"temperature": [1.0, 0.8, 1.0, 1.0], "top_p": [1.0, 0.9, 1.0, 1.0]}
    assert "--top-p 1,0.9,1,1" in meta["command"] and "--temperature" not in meta["command"]
    gen = load_generator(out.with_suffix(".pt"))
    assert gen.top_p == (1.0, 0.9, 1.0, 1.0) and gen.temperature == (1.0, 0.8, 1.0, 1.0)
    gen = load_generator(out.with_suffix(".pt"), top_p=1.0, temperature=0.5)  # a run's own
    assert gen.top_p == (1.0,) * 4 and gen.temperature == 0.5
    assert meta["command"].startswith("surveillance train --data-dir ")
    assert "--steps 3" in meta["command"]
    assert "--no-level-gaps" in meta["command"]  # an on/off flag reproduces as a flag
    assert "--no-feed-depth --no-relative-units --level-dropout 0.0" in meta["command"]  # flags
    assert "feed_depth" not in meta["tokenizer"]["features"]
    assert set(meta["validation"]) >= {"model_nats", "unigram_nats", "bigram_nats"}
    assert out.with_suffix(".pt").stat().st_size < 25 * 2**20


def test_level_gap_features_say_where_the_levels_are():
    from models.tokenizer import GAP_SCALE, LOB_DIM_GAPS, N_LEVELS, features_from_rows

    # asks at +0, +1, +4 ticks from the best ask; bids at 0, -3 ticks; level-3 file
    row = np.array([[10_100, 5, 10_000, 7, 10_200, 5, 9_700, 7, 10_500, 5, 0, 0]])
    row[0, 10] = EMPTY_BID_PRICE
    plain = features_from_rows(row, 10_050.0, [0])
    f = features_from_rows(row, 10_050.0, [0], gaps=True)
    assert plain.lob.shape == (1, LOB_DIM) and f.lob.shape == (1, LOB_DIM_GAPS)
    assert np.array_equal(f.lob[0, :LOB_DIM], plain.lob[0])
    asks, bids = f.lob[0, LOB_DIM : LOB_DIM + N_LEVELS - 1], f.lob[0, LOB_DIM + N_LEVELS - 1 :]
    assert np.allclose(asks[:2] * GAP_SCALE, np.log1p([1, 4])) and not asks[2:].any()
    assert np.isclose(bids[0] * GAP_SCALE, np.log1p(3)) and not bids[1:].any()


def test_train_command_reports_missing_data_in_one_line(tmp_path, capsys):
    from surveillance.cli import main

    assert main(["train", "--data-dir", str(tmp_path), "--steps", "1"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not found" in err[0]


def test_v4_sweep_tokens_take_exactly_what_rests_up_to_their_price(
    lobster_dir, tmp_path, fork_point, monkeypatch
):
    from models.tokenizer import SWEEP_SLOT, token_id

    torch.set_num_threads(1)
    cfg = replace(_tiny_config(lobster_dir, tmp_path / "lmm-v4"), sweep=True)
    train(cfg, log=lambda _: None)
    gen = load_generator(tmp_path / "lmm-v4.pt")
    tok = gen.tokenizer
    assert tok.version == 4 and tok.sweep
    real, history, rows, open_mid, ts = fork_point
    book = real.fork()  # 37 more shares one tick through the ask
    book.add(book.mint_id(), Side.ASK, book.best_ask + 100, 37)
    gen.begin([book], history, rows, open_mid, ts, seed=5)
    # the sampler is pinned (this checks the decoding, not what a tiny model learned): a buy
    # priced one level through the ask, then with the sweep slot, then with a 3-share slot
    through = int(np.flatnonzero(tok.price["limit"].lo <= MARKETABLE_BASE + 1)[-1])
    small = int(tok.volume["limit"].encode([3])[0])
    tokens = iter([token_id(OrderType.BID, through, v, 0) for v in (SWEEP_SLOT, small)])
    monkeypatch.setattr(gen.model, "sample", lambda *a, **k: torch.tensor([next(tokens)]))
    (sweep,) = gen.next_orders([book], [ts])
    (plain,) = gen.next_orders([book], [ts])
    assert sweep.price > book.best_ask and plain.price == sweep.price
    available = available_qty(book, OrderType.BID, sweep.price)
    touch = book.level(Side.ASK, book.best_ask).qty
    assert available >= touch + 37  # two levels at least
    assert sweep.qty == available  # clears every level up to its price
    lo, hi = tok.volume["limit"].bounds(small)
    assert lo <= plain.qty <= hi and plain.qty < available  # a size slot keeps its size


def test_model_version_changes_with_the_weights_and_with_the_sampler(monkeypatch, tmp_path):
    import models.generator as generator
    from models.checkpoint import CHECKPOINT_DIR
    from tests.conftest import checkpoint_version

    bundled = checkpoint_version(None)
    assert bundled.startswith("lmm-lmm-small-") and bundled.endswith(generator.sampler_version())
    # the bundled calibration was fitted with this checkpoint and these sampling rules
    cal = json.loads((CHECKPOINT_DIR / "calibration.json").read_text())
    assert cal["model_version"] == bundled
    # ... and the default detection configuration (a setting added later with its old
    # behaviour as default keeps the digest; turned on, it changes it)
    from surveillance.detection.scoring import DetectionConfig

    assert cal["config_version"] == DetectionConfig().version()
    empirical = json.loads((CHECKPOINT_DIR / "calibration-empirical.json").read_text())
    assert empirical["config_version"] == DetectionConfig().version()
    # on the benchmark's calibration windows of both days, the default grid (one every 5
    # minutes); the order model's without scenarios (deploy/OPERATIONS.md says why)
    from surveillance.studies.evaluate import EvaluationConfig

    default_windows = 2 * len(EvaluationConfig().calibration_starts())
    assert default_windows == 100
    assert empirical["n_normal"] == default_windows
    assert cal["n_normal"] == default_windows
    assert "every 5m" in cal["method"]
    assert not cal.get("scenarios")
    # time-of-day norms for the open and the close, each instrument's from the other's
    # windows only (leave one instrument out)
    for inst, other in (("GOOG", "AMZN"), ("AMZN", "GOOG")):
        for bucket in ("open", "close"):
            norms = cal["tod_norms"][inst][bucket]
            assert norms["instruments"] == [other] and norms["windows"] >= 5
    assert DetectionConfig(refill=True).version() != DetectionConfig().version()
    with pytest.raises(ValueError, match="max_depth"):
        DetectionConfig(refill=True, max_depth=None)
    assert generator.sampler_version((1.0, 0.9, 1.0, 1.0)) != generator.sampler_version()
    assert generator.sampler_version(top_p=1.0) != generator.sampler_version()
    monkeypatch.setattr(generator, "SAMPLER_REVISION", generator.SAMPLER_REVISION + 1)
    assert checkpoint_version(None) != bundled
    copy = tmp_path / "lmm-small.pt"
    copy.write_bytes(b"other weights")
    assert checkpoint_version(copy) != checkpoint_version(None)


def test_the_realistic_model_ships_with_its_sampling_and_its_own_calibration():
    """``lmm-depth``: the v4 + feed-depth model (seed 1), sampled with the price tail cut; a
    stream worker or replay pointed at it finds its calibration as they find the default's."""
    from models.checkpoint import sampling_of
    from surveillance.cli.wiring import bundled_calibration
    from surveillance.detection.scoring import DetectionConfig
    from surveillance.studies.evaluate import EvaluationConfig
    from tests.conftest import checkpoint_version

    path = CHECKPOINT_DIR / "lmm-depth.pt"
    assert path.stat().st_size < 25 * 2**20
    meta = json.loads(path.with_suffix(".json").read_text())
    assert sampling_of(meta) == {"temperature": (1.0,) * 4, "top_p": (1.0, 0.8, 1.0, 1.0)}
    command = meta["command"].split()
    for flag in ("--sweep", "--feed-depth", "--top-p"):
        assert flag in command
    assert command[command.index("--level-dropout") + 1] == "0.5"
    assert command[command.index("--seed") + 1] == "1"
    _, tok, _ = load_checkpoint(path)
    assert tok.sweep
    found = {}
    for checkpoint in (path, None):
        hit = bundled_calibration(checkpoint_version(checkpoint))
        assert hit is not None
        found[checkpoint] = hit
    assert found[path][0].name == "calibration-lmm-depth.json"
    assert found[None][0].name == "calibration.json"
    cal = found[path][1]
    assert cal.config_version == DetectionConfig().version()
    # refitted with the sweep facts on one window every 25 minutes (the default's is on the
    # 5-minute grid)
    every_25m = EvaluationConfig(calibration_stride_ns=25 * 60 * 10**9)
    assert cal.n_normal == 2 * len(every_25m.calibration_starts())


def test_a_checkpoints_own_sampling_is_part_of_its_version(tmp_path):
    from models.checkpoint import DEFAULT_CHECKPOINT, sampling_of
    from tests.conftest import checkpoint_version

    copy = tmp_path / "lmm-small.pt"
    copy.write_bytes(DEFAULT_CHECKPOINT.read_bytes())
    meta = json.loads(DEFAULT_CHECKPOINT.with_suffix(".json").read_text())
    assert "sampling" not in meta  # the bundled model samples with the sampler's defaults
    copy.with_suffix(".json").write_text(json.dumps(meta))
    assert checkpoint_version(copy) == checkpoint_version(None)
    meta["sampling"] = {"temperature": [1.0, 0.8, 1.0, 1.0], "top_p": 0.95}
    copy.with_suffix(".json").write_text(json.dumps(meta))
    assert checkpoint_version(copy) != checkpoint_version(None)
    meta["sampling"] = {"temperature": [1.0, 0.8, 1.0, 1.0], "top_p": [1.0, 0.95, 1.0, 1.0]}
    copy.with_suffix(".json").write_text(json.dumps(meta))  # the defaults, written out
    assert checkpoint_version(copy) == checkpoint_version(None)
    for bad, message in (
        ({"top_p": 0.0}, "top_p must be in"),
        ({"temperature": [1.0, 1.0]}, "need one temperature or four"),
        ({"temperature": -1.0}, "must be >= 0"),
        ({"top_k": 5}, "unknown sampling settings"),
    ):
        with pytest.raises(ValueError, match=message):
            sampling_of({"sampling": bad})


def test_sampling_set_for_a_run_reaches_the_scorers_model_and_its_version(tmp_path):
    """``evaluate`` / ``replay --temperature --top-p``: the scorer's generator samples with
    them, and its model version (which calibrations and cached forks are keyed by) is that of
    a checkpoint carrying the same settings."""
    from models.checkpoint import DEFAULT_CHECKPOINT
    from surveillance.cli.wiring import SamplerSpec, make_scorer
    from surveillance.detection.settings import DetectionSettings, SettingsError
    from tests.conftest import checkpoint_version

    top_p = (1.0, 0.8, 1.0, 1.0)
    copy = tmp_path / "lmm-small.pt"
    copy.write_bytes(DEFAULT_CHECKPOINT.read_bytes())
    meta = json.loads(DEFAULT_CHECKPOINT.with_suffix(".json").read_text())
    meta["sampling"] = {"top_p": list(top_p)}
    copy.with_suffix(".json").write_text(json.dumps(meta))

    scorer, _ = make_scorer(DetectionSettings(sampling={"top_p": top_p}))
    assert scorer.model_version == checkpoint_version(None, {"top_p": top_p})
    assert scorer.model_version != checkpoint_version(None)
    assert scorer.model_version == checkpoint_version(copy)  # same bytes, same name
    # the run's settings win over the checkpoint's own; the defaults written out change nothing
    assert checkpoint_version(copy, {"top_p": (1.0, 0.95, 1.0, 1.0)}) == checkpoint_version(None)
    defaults = {"temperature": (1.0, 0.8, 1.0, 1.0), "top_p": (1.0, 0.95, 1.0, 1.0)}
    assert checkpoint_version(None, defaults) == checkpoint_version(None)

    tuned = SamplerSpec(sampling=(("top_p", top_p),))()
    assert tuned.top_p == top_p  # type: ignore[attr-defined]
    assert SamplerSpec()().top_p == (1.0, 0.95, 1.0, 1.0)  # type: ignore[attr-defined]
    assert SamplerSpec(sampling=(("top_p", top_p),))() is tuned  # one per process
    with pytest.raises(SettingsError, match="generator lmm"):
        DetectionSettings(generator="empirical", sampling={"top_p": 0.9})


def test_a_flow_model_reads_the_order_flow_of_its_history_and_of_its_own_orders(
    lobster_dir, tmp_path, fork_point, monkeypatch
):
    from models.tokenizer import (
        FLOW_DIM,
        flow_features,
        flow_signals,
        flow_step,
        token_id,
    )

    torch.set_num_threads(1)
    cfg = replace(_tiny_config(lobster_dir, tmp_path / "lmm-flow"), flow=True)
    train(cfg, log=lambda _: None)
    meta = json.loads((tmp_path / "lmm-flow.json").read_text())
    assert meta["config"]["lob_dim"] == LOB_DIM + FLOW_DIM and meta["training"]["flow"] is True
    gen = load_generator(tmp_path / "lmm-flow.pt")
    tok = gen.tokenizer
    assert tok.flow
    real, history, rows, open_mid, ts = fork_point
    books = [real.fork(), real.fork()]
    gen.begin(books, history, rows, open_mid, ts, seed=5)
    interval = np.diff(history.ts_ns, prepend=history.ts_ns[:1])
    after_history = flow_features(
        flow_signals(history.type, history.aggressive, history.qty, interval)
    )[-1]
    assert np.allclose(gen._flow, after_history, atol=1e-6)  # both rollouts start there
    # pinned sampler (this checks the bookkeeping, not what a tiny model learned): rollout 0
    # buys at the ask, rollout 1 cancels at a best level
    through = int(np.flatnonzero(tok.price["limit"].lo <= MARKETABLE_BASE)[-1])
    pinned = torch.tensor(
        [token_id(OrderType.BID, through, 5, 3), token_id(OrderType.CANCEL, 10, 5, 3)]
    )
    monkeypatch.setattr(gen.model, "sample", lambda *a, **k: pinned)
    orders = gen.next_orders(books, [ts, ts])
    assert orders[0].price >= books[0].best_ask and orders[1].type == OrderType.CANCEL
    signals = flow_signals(
        [o.type for o in orders],
        [True, False],
        [o.qty for o in orders],
        [o.interval_ns for o in orders],
    )
    want = flow_step(np.repeat(after_history[None].astype(np.float64), 2, axis=0), signals)
    assert np.allclose(gen._flow, want, atol=1e-6)
    assert gen._flow[0, 1] > after_history[1] > gen._flow[1, 1]  # the marketable share
    # an agent's sell at the bid went in before rollout 0's in-flight buy: the averages are
    # stepped again in that order, from where they stood before the buy
    from simulator.rollout import AgentTurn, SeenOrder

    row = books[0].snapshot(10)
    sell = SeenOrder(ts, int(OrderType.ASK), books[0].best_bid, 100, row, row)
    buy = orders[0]
    gen.observe_agents(books[0], AgentTurn(ts, [sell], (buy.type, buy.price, buy.qty, ts + 7)))
    start = after_history[None].astype(np.float64)
    then = flow_step(start, flow_signals([int(OrderType.ASK)], [True], [100], [0]))
    then = flow_step(then, flow_signals([buy.type], [True], [buy.qty], [7]))
    assert np.allclose(gen._flow[0], then[0], atol=1e-6)
    assert np.allclose(gen._flow[1], want[1], atol=1e-6)  # rollout 1 had no agent
    # and it drives reproducible rollouts
    a = _roll(tmp_path / "lmm-flow", fork_point, n=3)
    b = _roll(tmp_path / "lmm-flow", fork_point, n=3)
    assert all(np.array_equal(x.price, y.price) for x, y in zip(a, b, strict=True))


def test_feed_depth_and_hidden_levels_features():
    from models.tokenizer import (
        DEPTH_DIM,
        GAP_SCALE,
        LOB_DIM,
        LOB_DIM_GAPS,
        N_LEVELS,
        features_from_rows,
        hide_levels,
    )

    # level-3 file: asks at +0, +1, +4 ticks, bids at 0, -3, -5 ticks
    row = np.array([[10_100, 5, 10_000, 7, 10_200, 6, 9_700, 8, 10_500, 9, 9_500, 3]])
    plain = features_from_rows(row, 10_050.0, [0], gaps=True)
    f = features_from_rows(row, 10_050.0, [0], gaps=True, depth=3)
    assert f.lob.shape == (1, LOB_DIM_GAPS + DEPTH_DIM)
    assert np.array_equal(f.lob[0, :LOB_DIM_GAPS], plain.lob[0]) and f.lob[0, -1] == 0.3
    with pytest.raises(ValueError, match="feed depth"):
        features_from_rows(row, 10_050.0, [0], depth=N_LEVELS + 1)

    lob = np.repeat(f.lob, 2, axis=0)
    hide_levels(lob, [1, 3], [2, 3], depth=3, gaps=True)
    asks, bids = lob[:, :N_LEVELS], lob[:, N_LEVELS : 2 * N_LEVELS]
    # window 0: asks show level 1 only, bids levels 1-2; window 1 shows all three levels
    assert asks[0, 0] > 0 and not asks[0, 1:].any()
    assert bids[0, :2].all() and not bids[0, 2:].any()
    assert np.array_equal(lob[1], f.lob[0])
    ask_gaps = lob[:, LOB_DIM : LOB_DIM + N_LEVELS - 1]
    bid_gaps = lob[:, LOB_DIM + N_LEVELS - 1 : LOB_DIM_GAPS]
    assert not ask_gaps[0].any()  # levels 2 and 3 hidden: no gap either
    assert np.isclose(bid_gaps[0, 0] * GAP_SCALE, np.log1p(3)) and not bid_gaps[0, 1:].any()
    assert np.array_equal(lob[:, 2 * N_LEVELS], f.lob[[0, 0], 2 * N_LEVELS])  # the spread stays
    assert np.all(lob[:, -1] == 0.3)


def test_level_dropout_hides_deep_levels_of_training_windows_only():
    from models.tokenizer import LOB_DIM, N_LEVELS, features_from_rows

    rows = np.tile(np.array([10_100, 5, 10_000, 7] * N_LEVELS, np.int64), (400, 1))
    for k in range(N_LEVELS):
        rows[:, 4 * k] += 100 * k
        rows[:, 4 * k + 2] -= 100 * k
    f = features_from_rows(rows, 10_050.0, np.zeros(400, np.int64), depth=N_LEVELS)
    ids = np.arange(400, dtype=np.int64)
    day = DayTokens("X", ids, f.lob, f.mid_bucket, f.tod, 400, N_LEVELS)

    def batch(dropout: float, seed: int = 3):
        return sample_batch([day], 16, 64, np.random.default_rng(seed), "cpu", dropout)

    (x_ids, x_lob, _, _), y = batch(0.0)
    assert np.all(x_lob[..., :LOB_DIM].numpy() == f.lob[0, :LOB_DIM])  # nothing hidden
    (d_ids, d_lob, _, _), d_y = batch(1.0)
    assert torch.equal(d_ids, x_ids) and torch.equal(d_y, y)  # the same windows
    shown = (d_lob[..., : 2 * N_LEVELS].numpy() > 0).reshape(64, 16, 2, N_LEVELS)
    per_side = shown.sum(-1)
    assert np.all(per_side == per_side[:, :1])  # one depth per side for a whole window
    assert per_side.min() >= 1 and per_side.max() <= N_LEVELS - 1
    assert np.all(shown == (np.arange(N_LEVELS) < per_side[..., None]))  # the best ones
    assert len(np.unique(per_side)) > 3
    (_, half, _, _), _ = batch(0.5)
    hidden = (half[..., : 2 * N_LEVELS].numpy() == 0).reshape(64, -1).any(-1)
    assert 0.5 < hidden.mean() < 0.95  # a window's books are hidden with p 0.5 (seeded draws)
    assert np.all(half[..., 2 * N_LEVELS :].numpy() == f.lob[0, 2 * N_LEVELS :])


def test_a_feed_depth_model_reads_the_depth_of_its_history_feed(
    lobster_dir, tmp_path, fork_point, monkeypatch
):
    cfg = replace(
        _tiny_config(lobster_dir, tmp_path / "depth"), steps=4, feed_depth=True, level_dropout=0.5
    )
    result = train(cfg, log=lambda _: None)
    tok = load_checkpoint(tmp_path / "depth.pt")[1]
    assert tok.feed_depth and tok.lob_dim == result.model.cfg.lob_dim
    with pytest.raises(ValueError, match="feed depth"):
        tok.rollout_features(np.zeros((1, 40), np.int64), 1.0, [0])
    book, history, rows, open_mid, ts = fork_point
    seen = []
    real_prefill, real_step = result.model.prefill, result.model.step
    monkeypatch.setattr(
        result.model, "prefill", lambda *a: seen.append(a[1][0, :, -1]) or real_prefill(*a)
    )
    # the two rollouts' rows only: the model also steps padding rows (at least four rows)
    monkeypatch.setattr(result.model, "step", lambda *a: seen.append(a[2][:2, -1]) or real_step(*a))
    for width, depth in ((40, 1.0), (20, 0.5)):
        seen.clear()
        gen = LMMGenerator(result.model, tok)
        books = [book.fork(), book.fork()]
        gen.begin(books, history, rows[:, :width], open_mid, ts, seed=0)
        gen.next_orders(books, [ts, ts])
        assert len(seen) == 2 and np.all(torch.cat(seen).numpy() == np.float32(depth))


def test_a_relative_units_model_reads_each_day_against_its_own_scale(
    lobster_dir, tmp_path, fork_point
):
    """``--relative-units``: a day and its twin with every size a thousand times larger
    tokenize alike (each read against its own scale; read in shares they do not), the
    checkpoint says so, and its sampler holds the scale after the history it forks from."""
    from models.tokenizer.units import scale_after
    from models.train import _raw_day, tokenize_days

    day = _raw_day(load_lobster(lobster_dir / TrainConfig().files[0]), 90.0, 2000)
    rows_before, rows_after = day.rows_before.copy(), day.rows_after.copy()
    for r in (rows_before, rows_after):
        r[:, 1::4] *= 1000
        r[:, 3::4] *= 1000
    twin = replace(
        day,
        stream=replace(day.stream, qty=day.stream.qty * 1000),
        rows_before=rows_before,
        rows_after=rows_after,
    )
    _, (a, b) = tokenize_days([day, twin], seed=0, relative_units=True)
    assert np.array_equal(a.ids, b.ids) and np.array_equal(a.lob, b.lob)
    _, (a, b) = tokenize_days([day, twin], seed=0)
    assert not np.array_equal(a.ids, b.ids)

    torch.set_num_threads(1)
    cfg = replace(_tiny_config(lobster_dir, tmp_path / "lmm-rel"), relative_units=True, steps=4)
    assert train(cfg, log=lambda _: None).tokenizer.relative_units
    meta = json.loads((tmp_path / "lmm-rel.json").read_text())
    assert meta["training"]["relative_units"] is True
    assert "relative_units" in meta["tokenizer"]["features"]
    gen = load_generator(tmp_path / "lmm-rel.pt")
    book, history, rows, open_mid, ts = fork_point
    gen.begin([book.fork(), book.fork()], history, rows, open_mid, ts, seed=5)
    at_fork = scale_after(history.type, history.qty, history.ts_ns)
    assert gen._size.tolist() == [at_fork.size] * 2
    assert gen._ivl.tolist() == [at_fork.interval_ns] * 2
    with pytest.raises(ValueError, match="not implemented"):
        train(replace(cfg, flow=True), log=lambda _: None)
