"""Training the order model on a venue file: the start of the shared Bitstamp day."""

from __future__ import annotations

import bz2
import dataclasses
from pathlib import Path

import pytest

from models.generator import load_generator
from models.model import LMMConfig
from models.train import TrainConfig, train
from simulator.bitstamp import load_bitstamp
from simulator.normalized import write_events

BITSTAMP_DAY = (
    Path(__file__).resolve().parents[2].parent / "shared/data/bitstamp/2015-05-01.log.bz2"
)
TINY = LMMConfig(n_layer=1, n_head=2, d_model=16, block_size=16, dropout=0.0)


def day_head(tmp_path: Path, lines: int = 3_000) -> Path:
    """The first ``lines`` lines of the shared day (about its first nine minutes)."""
    if not BITSTAMP_DAY.exists():
        pytest.skip(f"shared Bitstamp data not found at {BITSTAMP_DAY}")
    path = tmp_path / "head.log"
    with bz2.open(BITSTAMP_DAY, "rt", encoding="utf-8") as src:
        path.write_text("".join(next(src) for _ in range(lines)), encoding="utf-8")
    return path


def tiny_config(data: Path, fmt: str, out: Path | None) -> TrainConfig:
    return TrainConfig(
        data=data,
        fmt=fmt,
        out=out,
        steps=4,
        eval_every=2,
        batch_size=4,
        warmup=1,
        model=TINY,
        # a cut inside the file: nothing at or after 00:06 UTC is read
        train_until_ns=6 * 60 * 1_000_000_000,
        val_minutes=1.0,
    )


def test_a_bitstamp_prefix_trains_into_a_loadable_venue_checkpoint(tmp_path: Path) -> None:
    result = train(tiny_config(day_head(tmp_path), "bitstamp", tmp_path / "lmm-bs"), log=print)
    meta = result.meta
    assert meta["instrument"]["venue"] == "Bitstamp" and meta["instrument"]["symbol"] == "BTCUSD"
    (day,) = meta["data"]
    assert day["train_orders"] > 0 and day["val_orders"] > 0
    # the tokenizer counts the venue's ticks and its 24-hour session
    assert result.tokenizer.tick == 100
    assert result.tokenizer.session == (0, 24 * 3600 * 1_000_000_000)
    gen = load_generator(tmp_path / "lmm-bs.pt")
    assert gen.tokenizer.session == result.tokenizer.session
    # a replay's epoch clock reads as the benchmark's times of day (UTC)
    epoch_minute = 1_430_438_400 * 1_000_000_000 + 60 * 1_000_000_000
    assert gen.tokenizer.clock(epoch_minute) == gen.tokenizer.clock(60 * 1_000_000_000)
    assert (tmp_path / "lmm-bs.pt").stat().st_size < 2_000_000


def test_the_tokenizer_takes_the_instruments_tick(tmp_path: Path) -> None:
    """A venue quoting in quarter cents: the bins count its ticks, not NASDAQ's cent."""
    feed = load_bitstamp(day_head(tmp_path))
    quarter = dataclasses.replace(feed.instrument, tick_size=25)
    path = tmp_path / "quarter.parquet"
    write_events(feed.frame, path, quarter)
    result = train(tiny_config(path, "normalized", None), log=lambda _: None)
    assert result.tokenizer.tick == 25
    assert result.meta["instrument"]["tick_size"] == 25
