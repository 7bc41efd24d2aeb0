"""Forecasting on the engine (the MarS paper's Sec. 4.1) against direct forecasters.

At every start time of the evaluated hours the engine forks ``rollouts`` futures from the real
book (``DayForks`` + ``Engine``, one fork per start with the longest horizon; shorter horizons
are read from the same trajectories). Each rollout gives the paper's target l per horizon
(``targets``) and the mid at each horizon. The engine's class forecast is the majority class of
its rollouts (the paper aggregates 128 simulations per start into one class); its predictive
distribution of the mid is the rollouts' mids, scored by CRPS and by the coverage of its central
50% and 90% intervals.

The class thresholds, the most-frequent class and the logistic regression are fitted on a grid
of start times of the training hours (by default 09:45 to 14:30 minus the longest horizon, so
no target of the grid reads a held-out order), before anything of the evaluated hours is read.
Direct forecasters trained elsewhere (DeepLOB, from the command) hand in their classes for the
same start times (``external``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from simulator.dayforks import CONTEXT_NS, DayForks
from simulator.engine import Engine, Sampler, fork_in_processes
from simulator.lobster import LobsterDay
from simulator.orderstream import OrderStream
from simulator.units import NS_PER_MIN, NS_PER_S, clock
from surveillance.forecast.baselines import LogisticBaseline, MostFrequent, no_change
from surveillance.forecast.features import logistic_features
from surveillance.forecast.metrics import (
    BlockBootstrap,
    accuracy,
    covered,
    crps_samples,
    macro_f1,
)
from surveillance.forecast.targets import (
    CLASSES,
    FLAT,
    DayPaths,
    ForecastError,
    MidPath,
    Thresholds,
)

HELD_OUT_START_NS = (14 * 60 + 30) * NS_PER_MIN  # the order model trains on the day before it
TRAIN_START_NS = (9 * 60 + 45) * NS_PER_MIN  # after the open's first quarter hour
DEFAULT_HORIZONS_NS = tuple(k * NS_PER_MIN for k in range(1, 6))
FAN_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
# The forecasters of the report, in its order; the engine's is the goal's subject.
ENGINE = "engine"
METHODS = (ENGINE, "engine_mean", "deeplob", "logistic", "no_change", "most_frequent")


@dataclass(frozen=True, slots=True)
class ForecastConfig:
    """How a forecast is set up. ``train_every_ns``: spacing of the training grid;
    ``bootstrap_block``: start times per bootstrap block (None: as many as the longest horizon
    spans, so blocks cover the overlap of consecutive targets)."""

    horizons_ns: tuple[int, ...] = DEFAULT_HORIZONS_NS
    rollouts: int = 32
    seed: int = 0
    train_start_ns: int = TRAIN_START_NS
    held_out_start_ns: int = HELD_OUT_START_NS
    train_every_ns: int = 10 * NS_PER_S
    context_ns: int = CONTEXT_NS
    bootstrap_draws: int = 1000
    bootstrap_block: int | None = None

    def __post_init__(self) -> None:
        if not self.horizons_ns or min(self.horizons_ns) <= 0:
            raise ForecastError("horizons must be positive")
        if list(self.horizons_ns) != sorted(set(self.horizons_ns)):
            raise ForecastError("horizons must be distinct and increasing")
        if self.rollouts < 1:
            raise ForecastError("a forecast needs at least one rollout")

    @property
    def max_horizon_ns(self) -> int:
        return max(self.horizons_ns)


def grid(start_ns: int, end_ns: int, every_ns: int, horizon_ns: int) -> list[int]:
    """Start times ``start, start + every, ...`` whose horizon ends by ``end_ns``."""
    if every_ns <= 0:
        raise ForecastError("the spacing of start times must be positive")
    last = end_ns - horizon_ns
    if last < start_ns:
        raise ForecastError(
            f"no start time between {clock(start_ns)} and {clock(end_ns)} leaves room for a "
            f"{horizon_ns // NS_PER_S}s horizon"
        )
    return list(range(start_ns, last + 1, every_ns))


@dataclass(slots=True)
class ForecastDay:
    """A recorded day readied for forecasting: its forks, its real mid path, and everything
    fitted on the training grid (thresholds, most-frequent class, logistic regression)."""

    day: LobsterDay
    config: ForecastConfig
    forks: DayForks
    paths: DayPaths
    train_starts: list[int]
    train_targets: np.ndarray  # (starts, horizons)
    thresholds: Thresholds
    most_frequent: MostFrequent
    logistic: LogisticBaseline

    @classmethod
    def prepare(
        cls, day: LobsterDay, config: ForecastConfig, stream: OrderStream | None = None
    ) -> ForecastDay:
        forks = DayForks(day, stream, config.context_ns)
        paths = DayPaths(forks.real(forks.first_ns, forks.last_ns + 1))
        train_starts = grid(
            max(config.train_start_ns, forks.first_ns),
            config.held_out_start_ns,
            config.train_every_ns,
            config.max_horizon_ns,
        )
        targets = paths.targets(train_starts, config.horizons_ns)
        thresholds = Thresholds.fit(targets, config.horizons_ns, train_starts)
        y = thresholds.classify(targets)
        x = logistic_features(forks, paths, train_starts)
        return cls(
            day,
            config,
            forks,
            paths,
            train_starts,
            targets,
            thresholds,
            MostFrequent().fit(y),
            LogisticBaseline(config.seed).fit(x, y),
        )

    @property
    def instrument(self) -> str:
        return self.day.symbol

    def labels(self, starts_ns: Sequence[int]) -> np.ndarray:
        """Real classes (starts x horizons) by the frozen thresholds."""
        return self.thresholds.classify(self.paths.targets(starts_ns, self.config.horizons_ns))


@dataclass(slots=True)
class InstrumentForecast:
    """Every forecast and outcome of one instrument's evaluated start times."""

    instrument: str
    starts_ns: np.ndarray  # (n,)
    m0: np.ndarray  # (n,) the mid at each start
    real_targets: np.ndarray  # (n, H)
    real_classes: np.ndarray  # (n, H)
    real_mid: np.ndarray  # (n, H) the real mid at start + horizon
    sim_targets: np.ndarray  # (n, R, H) each rollout's l
    sim_mid: np.ndarray  # (n, R, H) each rollout's mid at start + horizon
    predictions: dict[str, np.ndarray]  # method -> (n, H) classes
    thresholds: Thresholds
    fork_seconds: float
    orders_per_rollout: float  # mean over the forks: how busy the simulated market was
    real_orders: float  # mean real orders over the longest horizon

    @property
    def sim_classes(self) -> np.ndarray:
        return self.thresholds.classify(self.sim_targets)

    @property
    def class_probabilities(self) -> np.ndarray:
        """(n, H, 3): the share of rollouts in each class."""
        c = self.sim_classes  # (n, R, H)
        return np.stack([(c == k).mean(axis=1) for k in range(len(CLASSES))], axis=-1)


def engine_vote(probabilities: np.ndarray) -> np.ndarray:
    """The majority class of the rollouts; a tie goes to flat, then to the lower class."""
    bias = np.zeros(len(CLASSES))
    bias[FLAT] = 1e-9
    return np.argmax(probabilities + bias, axis=-1).astype(np.int64)


def forecast_instrument(
    fday: ForecastDay,
    engine: Engine,
    starts_ns: Sequence[int],
    *,
    external: Mapping[str, np.ndarray] | None = None,
    jobs: int = 1,
    sampler_factory: Callable[[], Sampler] | None = None,
    progress: Callable[[str], None] | None = None,
) -> InstrumentForecast:
    """Fork the engine at every start time and collect every forecaster's classes there.

    ``external``: classes (n, H) of forecasters fitted outside this layer (DeepLOB) for the
    same starts. ``jobs`` > 1 forks in that many processes, each with a sampler from
    ``sampler_factory`` (the figures are the same as with one)."""
    cfg = fday.config
    starts = [int(s) for s in starts_ns]
    if not starts:
        raise ForecastError("no start times to evaluate")
    if starts != sorted(starts):
        raise ForecastError("start times must increase")
    if jobs > 1 and sampler_factory is None:
        raise ForecastError("forking in several processes needs a sampler factory")
    if starts[0] < cfg.held_out_start_ns and progress is not None:
        progress(f"note: start {clock(starts[0])} lies in the training hours")
    hs = cfg.horizons_ns
    n, r, k = len(starts), cfg.rollouts, len(hs)
    requests = [fday.forks.request(s, cfg.max_horizon_ns, r, cfg.seed) for s in starts]
    sim_targets = np.empty((n, r, k))
    sim_mid = np.empty((n, r, k))
    orders = []
    t0 = time.perf_counter()
    factory = sampler_factory or (lambda: engine.sampler)
    for i, fut in enumerate(fork_in_processes(requests, factory, jobs, engine=engine)):
        for j, traj in enumerate(fut.trajectories):
            p = MidPath.of(traj)
            sim_targets[i, j] = [p.target(h) for h in hs]
            sim_mid[i, j] = [p.mid_at(h) for h in hs]
            orders.append(len(traj.ts_ns))
        if progress is not None:
            progress(
                f"{fday.instrument} {clock(starts[i])}  {i + 1}/{n}  "
                f"{time.perf_counter() - t0:.0f}s"
            )
    seconds = time.perf_counter() - t0
    real_targets = fday.paths.targets(starts, hs)
    real_mid = fday.paths.mids_at(starts, hs)
    m0 = np.array([fday.paths.mid_before(s) for s in starts])
    x = logistic_features(fday.forks, fday.paths, starts)
    fc = InstrumentForecast(
        instrument=fday.instrument,
        starts_ns=np.asarray(starts, dtype=np.int64),
        m0=m0,
        real_targets=real_targets,
        real_classes=fday.thresholds.classify(real_targets),
        real_mid=real_mid,
        sim_targets=sim_targets,
        sim_mid=sim_mid,
        predictions={},
        thresholds=fday.thresholds,
        fork_seconds=seconds,
        orders_per_rollout=float(np.mean(orders)),
        real_orders=float(
            np.mean([fday.paths.at(s).count_before(cfg.max_horizon_ns) for s in starts])
        ),
    )
    preds = {
        ENGINE: engine_vote(fc.class_probabilities),
        # the class of the rollouts' mean l: reported beside the vote, never the goal's subject
        "engine_mean": fday.thresholds.classify(sim_targets.mean(axis=1)),
        "logistic": fday.logistic.predict(x),
        "no_change": no_change(n, k),
        "most_frequent": fday.most_frequent.predict(n),
    }
    for name, classes in (external or {}).items():
        classes = np.asarray(classes, dtype=np.int64)
        if classes.shape != (n, k):
            raise ForecastError(f"{name}: {classes.shape} classes for {n} starts x {k} horizons")
        preds[name] = classes
    fc.predictions = {m: preds[m] for m in METHODS if m in preds} | {
        m: v for m, v in preds.items() if m not in METHODS
    }
    return fc


@dataclass(slots=True)
class ForecastReport:
    """The figures of one or more instruments' forecasts, pooled and per instrument."""

    config: ForecastConfig
    every_ns: int
    instruments: list[InstrumentForecast]
    generator: str = ""
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    _metrics: dict[str, object] | None = field(default=None, repr=False)

    @property
    def block(self) -> int:
        if self.config.bootstrap_block is not None:
            return self.config.bootstrap_block
        return max(1, -(-self.config.max_horizon_ns // self.every_ns))

    def _bootstrap(self, parts: Sequence[InstrumentForecast]) -> BlockBootstrap:
        return BlockBootstrap(
            [len(p.starts_ns) for p in parts],
            self.block,
            self.config.bootstrap_draws,
            self.config.seed,
        )

    def metrics(self, parts: Sequence[InstrumentForecast]) -> dict[str, object]:
        """Per horizon: each method's accuracy and macro-F1, the engine's CRPS (and no
        change's), coverage and the engine-minus-method macro-F1 differences, each with a
        paired block-bootstrap 95% interval; and the same averaged over the horizons."""
        boot = self._bootstrap(parts)
        hs = self.config.horizons_ns
        y = np.concatenate([p.real_classes for p in parts])  # (N, H)
        methods = [m for m in parts[0].predictions]
        pred = {m: np.concatenate([p.predictions[m] for p in parts]) for m in methods}
        # CRPS in basis points of the start mid, so instruments pool on one scale
        m0 = np.concatenate([p.m0 for p in parts])[:, None]
        real_bps = 1e4 * (np.concatenate([p.real_mid for p in parts]) - m0) / m0
        sim = np.concatenate([p.sim_mid for p in parts])  # (N, R, H)
        sim_bps = 1e4 * (sim - m0[:, :, None]) / m0[:, :, None]
        crps = crps_samples(np.moveaxis(sim_bps, 1, -1), real_bps)  # (N, H)
        crps_nc = np.abs(real_bps)
        cov50 = covered(np.moveaxis(sim_bps, 1, -1), real_bps, 0.5)
        cov90 = covered(np.moveaxis(sim_bps, 1, -1), real_bps, 0.9)

        # statistics of index arrays (rows, N) -> one value per row (``BlockBootstrap``)
        def f1(m: str, h: int) -> Callable[[np.ndarray], np.ndarray]:
            return lambda ix: macro_f1(y[ix, h], pred[m][ix, h])

        def acc(m: str, h: int) -> Callable[[np.ndarray], np.ndarray]:
            return lambda ix: accuracy(y[ix, h], pred[m][ix, h])

        def avg_f1(m: str) -> Callable[[np.ndarray], np.ndarray]:
            return lambda ix: np.mean(
                [macro_f1(y[ix, h], pred[m][ix, h]) for h in range(len(hs))], 0
            )

        def diff(a: Callable, b: Callable) -> Callable[[np.ndarray], np.ndarray]:
            return lambda ix: np.asarray(a(ix)) - np.asarray(b(ix))

        def mean_of(v: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
            return lambda ix: v[ix].mean(-1)

        per_h = []
        for h, h_ns in enumerate(hs):
            row: dict[str, object] = {"horizon_s": h_ns // NS_PER_S}
            row["methods"] = {
                m: {
                    "accuracy": boot.interval(acc(m, h)).as_dict(),
                    "macro_f1": boot.interval(f1(m, h)).as_dict(),
                }
                for m in methods
            }
            row["engine_minus"] = {
                m: boot.interval(diff(f1(ENGINE, h), f1(m, h))).as_dict()
                for m in methods
                if m != ENGINE
            }
            row["crps_bps"] = {
                ENGINE: boot.interval(mean_of(crps[:, h])).as_dict(),
                "no_change": boot.interval(mean_of(crps_nc[:, h])).as_dict(),
                "engine_minus_no_change": boot.interval(
                    mean_of(crps[:, h] - crps_nc[:, h])
                ).as_dict(),
            }
            row["coverage"] = {
                "50": boot.interval(mean_of(cov50[:, h])).as_dict(3),
                "90": boot.interval(mean_of(cov90[:, h])).as_dict(3),
            }
            row["real_class_shares"] = [round(float(np.mean(y[:, h] == c)), 3) for c in range(3)]
            per_h.append(row)
        average = {
            "macro_f1": {m: boot.interval(avg_f1(m)).as_dict() for m in methods},
            "engine_minus": {
                m: boot.interval(diff(avg_f1(ENGINE), avg_f1(m))).as_dict()
                for m in methods
                if m != ENGINE
            },
            "crps_bps": {
                ENGINE: boot.interval(mean_of(crps.mean(1))).as_dict(),
                "no_change": boot.interval(mean_of(crps_nc.mean(1))).as_dict(),
                "engine_minus_no_change": boot.interval(
                    mean_of((crps - crps_nc).mean(1))
                ).as_dict(),
            },
            "coverage": {
                "50": boot.interval(mean_of(cov50.mean(1))).as_dict(3),
                "90": boot.interval(mean_of(cov90.mean(1))).as_dict(3),
            },
        }
        return {"starts": len(y), "per_horizon": per_h, "average": average}

    @property
    def pooled(self) -> dict[str, object]:
        if self._metrics is None:
            self._metrics = self.metrics(self.instruments)
        return self._metrics

    def goals(self) -> dict[str, object]:
        """The issue's goals on the pooled figures (point estimates; intervals beside them)."""
        pooled = self.pooled
        per_h = pooled["per_horizon"]  # type: ignore[index]
        avg = pooled["average"]  # type: ignore[index]
        out: dict[str, object] = {}
        minus = per_h[0]["engine_minus"]  # type: ignore[index]
        if "deeplob" in minus:
            d1 = minus["deeplob"]["value"]
            da = avg["engine_minus"]["deeplob"]["value"]  # type: ignore[index]
            out["engine_vs_deeplob_first_horizon_plus_5pts"] = _ge(d1, 0.05)
            out["engine_vs_deeplob_average_plus_5pts"] = _ge(da, 0.05)
        for m in ("no_change", "logistic"):
            if m in avg["engine_minus"]:  # type: ignore[operator]
                out[f"engine_ahead_of_{m}_average"] = _gt(avg["engine_minus"][m]["value"])  # type: ignore[index]
                out[f"engine_ahead_of_{m}_every_horizon"] = all(
                    _gt(row["engine_minus"][m]["value"])
                    for row in per_h  # type: ignore[index]
                )
        cov = [row["coverage"]["90"]["value"] for row in per_h]  # type: ignore[index]
        out["coverage90_in_85_95_every_horizon"] = all(
            c is not None and 0.85 <= c <= 0.95 for c in cov
        )
        return out

    def fans(self, per_instrument: int = 3) -> list[dict[str, object]]:
        """A few start times per instrument (evenly spaced): the rollouts' quantiles of the mid
        at each horizon and the real mid there, in basis points of the start mid."""
        out = []
        for p in self.instruments:
            n = len(p.starts_ns)
            picks = np.unique(np.linspace(0, n - 1, min(per_instrument, n)).round().astype(int))
            for i in picks:
                m0 = p.m0[i]
                q = np.quantile(1e4 * (p.sim_mid[i] - m0) / m0, FAN_QUANTILES, axis=0)  # (Q, H)
                out.append(
                    {
                        "instrument": p.instrument,
                        "start": clock(int(p.starts_ns[i])),
                        "horizons_s": [h // NS_PER_S for h in self.config.horizons_ns],
                        "quantiles": {
                            str(a): [round(float(v), 3) for v in q[j]]
                            for j, a in enumerate(FAN_QUANTILES)
                        },
                        "real_bps": [round(float(1e4 * (v - m0) / m0), 3) for v in p.real_mid[i]],
                    }
                )
        return out

    def as_dict(self) -> dict[str, object]:
        cfg = self.config
        return {
            "generator": self.generator,
            "settings": {
                "horizons_s": [h // NS_PER_S for h in cfg.horizons_ns],
                "rollouts": cfg.rollouts,
                "every_s": self.every_ns // NS_PER_S,
                "seed": cfg.seed,
                "training_grid": f"{clock(cfg.train_start_ns)} to {clock(cfg.held_out_start_ns)} "
                f"minus the longest horizon, every {cfg.train_every_ns // NS_PER_S}s",
                "bootstrap": {"draws": cfg.bootstrap_draws, "block_starts": self.block},
            },
            "instruments": {
                p.instrument: {
                    "starts": len(p.starts_ns),
                    "first_start": clock(int(p.starts_ns[0])),
                    "last_start": clock(int(p.starts_ns[-1])),
                    "thresholds": p.thresholds.as_dict(),
                    "fork_seconds": round(p.fork_seconds, 1),
                    "orders_per_rollout": round(p.orders_per_rollout, 1),
                    "real_orders": round(p.real_orders, 1),
                    "metrics": self.metrics([p]),
                }
                for p in self.instruments
            },
            "pooled": self.pooled,
            "goals": self.goals(),
            "fans": self.fans(),
            "seconds": {k: round(v, 1) for k, v in self.seconds.items()},
            "notes": list(self.notes),
        }


_ARRAYS = ("starts_ns", "m0", "real_targets", "real_classes", "real_mid", "sim_targets", "sim_mid")


def save_arrays(path: str, forecasts: Sequence[InstrumentForecast]) -> None:
    """Every instrument's per-start forecasts and outcomes in one ``.npz`` (re-scored later
    with ``load_arrays`` without forking again)."""
    blobs: dict[str, np.ndarray] = {}
    for f in forecasts:
        for name in _ARRAYS:
            blobs[f"{f.instrument}/{name}"] = getattr(f, name)
        for m, v in f.predictions.items():
            blobs[f"{f.instrument}/pred/{m}"] = v
        th = f.thresholds
        blobs[f"{f.instrument}/thresholds"] = np.array([th.lower, th.upper])
        blobs[f"{f.instrument}/meta"] = np.array(
            [f.fork_seconds, f.orders_per_rollout, f.real_orders, th.samples, *th.fitted_on]
        )
    blobs["horizons_ns"] = np.asarray(forecasts[0].thresholds.horizons_ns)
    np.savez_compressed(path, **blobs)


def load_arrays(path: str) -> list[InstrumentForecast]:
    with np.load(path) as z:
        hs = tuple(int(h) for h in z["horizons_ns"])
        names = sorted({k.split("/")[0] for k in z.files if "/" in k})
        out = []
        for inst in names:
            lower, upper = z[f"{inst}/thresholds"]
            meta = z[f"{inst}/meta"]
            th = Thresholds(
                hs,
                tuple(float(v) for v in lower),
                tuple(float(v) for v in upper),
                (int(meta[4]), int(meta[5])),
                int(meta[3]),
            )
            preds = {k.split("/")[2]: z[k] for k in z.files if k.startswith(f"{inst}/pred/")}
            order = [m for m in METHODS if m in preds] + [m for m in preds if m not in METHODS]
            out.append(
                InstrumentForecast(
                    inst,
                    *(z[f"{inst}/{name}"] for name in _ARRAYS),
                    predictions={m: preds[m] for m in order},
                    thresholds=th,
                    fork_seconds=float(meta[0]),
                    orders_per_rollout=float(meta[1]),
                    real_orders=float(meta[2]),
                )
            )
        return out


def combine(forecasts: Sequence[InstrumentForecast]) -> list[InstrumentForecast]:
    """One forecast per instrument from several runs' (e.g. two interleaved grids of start
    times, forked apart: a start's forks depend only on it and the seed), sorted by start.
    Runs of one instrument must share thresholds and methods."""
    by: dict[str, list[InstrumentForecast]] = {}
    for f in forecasts:
        by.setdefault(f.instrument, []).append(f)
    out = []
    for inst, parts in by.items():
        first = parts[0]
        for p in parts[1:]:
            if p.thresholds != first.thresholds or list(p.predictions) != list(first.predictions):
                raise ForecastError(f"{inst}: runs with other thresholds or methods")
        starts = np.concatenate([p.starts_ns for p in parts])
        order = np.argsort(starts, kind="stable")
        if len(np.unique(starts)) != len(starts):
            raise ForecastError(f"{inst}: a start time appears in two runs")

        def cat(name: str, parts=parts, order=order) -> np.ndarray:
            return np.concatenate([getattr(p, name) for p in parts])[order]

        n = [len(p.starts_ns) for p in parts]
        out.append(
            InstrumentForecast(
                inst,
                *(cat(name) for name in _ARRAYS),
                predictions={
                    m: np.concatenate([p.predictions[m] for p in parts])[order]
                    for m in first.predictions
                },
                thresholds=first.thresholds,
                fork_seconds=sum(p.fork_seconds for p in parts),
                orders_per_rollout=float(
                    np.average([p.orders_per_rollout for p in parts], weights=n)
                ),
                real_orders=float(np.average([p.real_orders for p in parts], weights=n)),
            )
        )
    return out


def _ge(x: object, bar: float) -> bool:
    return x is not None and float(x) >= bar - 1e-12  # type: ignore[arg-type]


def _gt(x: object) -> bool:
    """Strictly ahead: a tie is not."""
    return x is not None and float(x) > 1e-12  # type: ignore[arg-type]


def evaluate_forecast(
    day: LobsterDay,
    engine: Engine,
    *,
    start_ns: int = HELD_OUT_START_NS,
    end_ns: int | None = None,
    every_ns: int = 60 * NS_PER_S,
    config: ForecastConfig | None = None,
    external: Callable[[ForecastDay, list[int]], Mapping[str, np.ndarray]] | None = None,
    jobs: int = 1,
    sampler_factory: Callable[[], Sampler] | None = None,
    progress: Callable[[str], None] | None = None,
) -> ForecastReport:
    """One day's forecast report: prepare the day on its training hours, then fork the engine
    at every start of ``[start, end - longest horizon]`` ``every_ns`` apart. ``external``
    builds the classes of outside forecasters from the prepared day and the starts."""
    config = config or ForecastConfig()
    t0 = time.perf_counter()
    fday = ForecastDay.prepare(day, config)
    end = end_ns if end_ns is not None else fday.forks.last_ns + NS_PER_S
    starts = grid(start_ns, end, every_ns, config.max_horizon_ns)
    prepared = time.perf_counter() - t0
    ext = external(fday, starts) if external is not None else None
    fc = forecast_instrument(
        fday,
        engine,
        starts,
        external=ext,
        jobs=jobs,
        sampler_factory=sampler_factory,
        progress=progress,
    )
    return ForecastReport(
        config, every_ns, [fc], seconds={"prepare": prepared, "fork": fc.fork_seconds}
    )
