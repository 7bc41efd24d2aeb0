"""``SimulationScorer.score_batch``: many closed windows forked in one engine call, each scored
exactly as the worker scores it alone."""

from __future__ import annotations

import dataclasses

import pytest

from simulator.lobster import load_lobster
from simulator.normalized import iter_events, lobster_to_frame
from surveillance.cli.wiring import EMPIRICAL_VERSION, SamplerSpec
from surveillance.detection.pipeline import InstrumentPipeline
from surveillance.detection.scorer import SimulationScorer
from surveillance.detection.scoring import DetectionConfig
from tests.conftest import lobster_zip

NS = 1_000_000_000
OPEN_NS = 34_200 * NS  # 09:30


@pytest.fixture(scope="module")
def windows(lobster_dir):
    """AMZN level 1, 09:30 to 09:50 in 5-minute windows, on two grids (the second shifted by
    two minutes: other books), the first window of each without history (never forked)."""
    frame = lobster_to_frame(load_lobster(lobster_zip(lobster_dir, "AMZN", 1)))
    frame = frame[frame.ts_ns < OPEN_NS + 20 * 60 * NS].reset_index(drop=True)
    out = []
    for k, shift in enumerate((0, 2 * 60 * NS)):
        pipe = InstrumentPipeline(f"AMZN{k}", window_ns=5 * 60 * NS, origin_ns=OPEN_NS + shift)
        for event in iter_events(frame.assign(instrument=f"AMZN{k}")):
            out += pipe.on_event(event)
    return out


def test_a_batch_of_windows_scores_each_as_alone(windows) -> None:
    config = DetectionConfig(window_ns=5 * 60 * NS, rollouts=4, seed=0)
    scorer = SimulationScorer(config, SamplerSpec("empirical"), EMPIRICAL_VERSION)
    alone = [scorer(w) for w in windows]
    # the same windows under other names as well: other seeds, other futures
    renamed = [dataclasses.replace(w, instrument=w.instrument + "X") for w in windows]
    batch = scorer.score_batch([*windows, *renamed], max_batch=10)
    assert len(batch) == 2 * len(windows)
    scored = [a for a in alone if a.score is not None]
    assert 4 <= len(scored) < len(alone)  # the windows without history are decided unscored
    for a, b in zip(alone, batch, strict=False):
        assert (a.score, dict(a.facts), a.diverged) == (b.score, dict(b.facts), b.diverged)
    assert [b.score for b in batch[len(windows) :]] != [a.score for a in alone]


def test_a_mixture_of_order_models_drives_the_rollouts(windows) -> None:
    """``--model`` given twice: rollout i driven by model i mod 2 (``MixtureGenerator``), each
    member with a seed of its own, so the same window's futures differ from one model's."""
    from simulator.generators import MixtureGenerator
    from surveillance.cli.wiring import DEFAULT_MODEL
    from surveillance.detection.settings import DetectionSettings

    forked = next(w for w in windows if w.history)
    settings = DetectionSettings(window_ns=5 * 60 * NS, rollouts=4, model=(str(DEFAULT_MODEL),) * 2)
    spec = SamplerSpec.of(settings)
    assert isinstance(spec(), MixtureGenerator)
    single = SamplerSpec.of(dataclasses.replace(settings, model=str(DEFAULT_MODEL)))
    assert spec.model_version == f"{single.model_version}+{single.model_version}"
    mixed = SimulationScorer(settings.config(), spec, spec.model_version)(forked)
    alone = SimulationScorer(settings.config(), single, single.model_version)(forked)
    assert mixed.score is not None and alone.score is not None
    assert dict(mixed.facts) != dict(alone.facts)
    # both members can join forks to a run: windows fork together, each scored as alone
    from simulator.engine import Engine
    from simulator.generators import BatchMixture

    assert isinstance(spec(), BatchMixture) and Engine(spec()).batched
    scorer = SimulationScorer(settings.config(), spec, spec.model_version)
    other = next(w for w in windows if w.history and w.instrument != forked.instrument)
    batch = scorer.score_batch([forked, other])
    for a, b in zip([mixed, scorer(other)], batch, strict=True):
        assert (a.score, dict(a.facts)) == (b.score, dict(b.facts))


def test_every_scored_window_says_whether_its_rollouts_looked_like_it(windows) -> None:
    """``detail.simulation``: the rollouts' orders (those a level-1 feed shows) and median
    spread against the real window's, off when three or more times apart either way."""
    config = DetectionConfig(window_ns=5 * 60 * NS, rollouts=4, seed=0)
    scorer = SimulationScorer(config, SamplerSpec("empirical"), EMPIRICAL_VERSION)
    checked = []
    for w in windows:
        v = scorer(w)
        if v.score is None:
            assert "simulation" not in v.detail
            continue
        c = v.detail["simulation"]
        assert c["real_orders"] == v.detail["real_orders"] > 0
        # a level-1 feed: only the rollout orders such a feed shows are counted (all of the
        # empirical generator's may be at the touch: test_simulation_check has one that are not)
        assert c["orders_per_rollout"] <= v.detail["rollout_orders"] / 4 + 0.05
        assert abs(c["order_ratio"] - c["orders_per_rollout"] / c["real_orders"]) < 1e-3
        ratios = {"orders": c["order_ratio"], "spread": c["spread_ratio"]}
        assert None not in ratios.values()
        assert c["off"] == [k for k, r in ratios.items() if not 1 / 3 < r < 3]
        assert c["faithful"] == (not c["off"])
        checked.append(c)
    assert len(checked) >= 4
