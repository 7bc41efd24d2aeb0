"""The manipulation benchmark and the sampler choice on another venue (Bitstamp BTC/USD)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from simulator.bitstamp import instrument as bitstamp_instrument
from simulator.manipulation import Typology
from surveillance.cli import main
from surveillance.cli.wiring import (
    EMPIRICAL_VERSION,
    SamplerSpec,
    resolve_calibration,
    sampler_for_venue,
    venue_checkpoint,
)
from surveillance.studies.evaluate import campaign_units
from tests.models.test_train_venue import day_head


def test_the_benchmark_scores_every_typology_on_a_bitstamp_slice(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    log = day_head(tmp_path, 4_000)  # 00:00 to about 00:19 UTC
    argv = ["evaluate", "--data", str(log), "--format", "bitstamp", "--generator", "empirical"]
    argv += ["--window", "3m", "--rollouts", "3", "--intensities", "moderate", "--json"]
    argv += ["--calibration-span", "00:03-00:07", "--calibration-stride", "1m"]
    argv += ["--start", "00:07", "--end", "00:12", "--stride", "1m"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["windows"] == 3 and summary["calibration"]["normal_windows"] == 2
    assert set(summary["by_typology"]) == {t.value for t in Typology}
    cell = summary["by_typology"]["pump_and_dump"]["moderate"]
    assert cell["historical_diff"]["n_clean"] == 3 and cell["simulation"]["n_manipulated"] == 3
    assert summary["sampler"].startswith(EMPIRICAL_VERSION)
    assert "sampler: empirical" in captured.err


def test_campaigns_trade_in_the_instruments_units() -> None:
    from simulator.types import Instrument

    assert campaign_units(bitstamp_instrument()) == (100, 1)  # a cent, a satoshi
    assert campaign_units(Instrument("GOOG")) == (100, 100)  # NASDAQ's round lot


def test_a_venue_without_a_model_falls_back_to_the_empirical_generator() -> None:
    eth = dataclasses.replace(bitstamp_instrument(), symbol="ETHUSD", tick_size=1)
    chosen = sampler_for_venue(SamplerSpec(), eth)
    assert chosen.spec.kind == "empirical" and chosen.spec.tick_size == 1
    assert chosen.note == (
        f"{EMPIRICAL_VERSION}: no model trained for this venue (ETHUSD on Bitstamp)"
    )
    # NASDAQ keeps the bundled model
    from simulator.types import Instrument

    assert sampler_for_venue(SamplerSpec(), Instrument("GOOG")).spec.kind == "lmm"


def test_a_venue_with_a_model_gets_it(tmp_path: Path) -> None:
    found = venue_checkpoint(bitstamp_instrument())
    if found is None:
        pytest.skip("no BTCUSD checkpoint bundled")
    chosen = sampler_for_venue(SamplerSpec(), bitstamp_instrument())
    assert chosen.spec.paths == (found,)
    assert chosen.note.endswith("trained for BTCUSD on Bitstamp")


def test_auto_calibration_skips_one_fitted_on_other_markets() -> None:
    """The bundled empirical calibration was fitted on NASDAQ stocks: not BTCUSD's."""
    resolved = resolve_calibration(
        "auto",
        model_version=EMPIRICAL_VERSION,
        config_version="",
        far=0.05,
        can_self=True,
        instrument=bitstamp_instrument(),
    )
    assert resolved.calibration is None and resolved.self_far == 0.05
    assert "BTCUSD (Bitstamp)" in resolved.source
