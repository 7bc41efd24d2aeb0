"""A disk cache of forked rollouts, so a benchmark or a replay can be rescored without the model.

Forking the rollouts is the expensive part of detection (the order model generates every
order); scoring them is cheap. The rollouts of a window depend only on what went into the fork:
the instrument, the window, the generator and its version, the rollout count, the seed, the
context length, the depth the books are kept to, the levels the feed shows and the day's open
mid (the model reads the mid's move since the open). ``key`` hashes exactly those, so a cached fork is reused only where
forking again would have produced the same trajectories; change any of them (a retrained
checkpoint, or a bumped ``models.generator.SAMPLER_REVISION``, changes the model version) and
the cache misses.

One ``.npz`` per fork, written atomically, read with ``allow_pickle=False``.

The feed depth entered the key on 2026-12-07 (a level-1 and a level-10 fork of the same window
hashed alike before): a LOBSTER day's forks cached before then miss, and ``--cached-only``
leaves their windows out (it names them).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from surveillance.detection.metrics import Trajectory
from surveillance.detection.pipeline import ClosedWindow
from surveillance.detection.scoring import DetectionConfig, open_mid_of

log = logging.getLogger(__name__)

CACHE_FORMAT = 2  # 2: order ids (the fleeting-order test of the tail facts needs them)
_COLUMNS = ("ts_ns", "type", "qty", "aggressive", "best_bid", "best_ask")
_DEPTH = ("bid_qty", "ask_qty")
_IDS = ("order_id",)


def key(
    *,
    instrument: str,
    start_ns: int,
    end_ns: int,
    generator_version: str,
    rollouts: int,
    seed: int,
    history_orders: int,
    max_depth: int | None,
    tick_size: int,
    open_mid: float,
    refill: bool = False,
    feed_depth: int | None = None,
) -> str:
    """The hash of everything a fork's trajectories depend on (``open_mid``: the mid the order
    model reads its mid-move feature against; ``feed_depth``: the levels the feed shows, so a
    level-1 and a level-10 feed of one instrument and day never share a fork)."""
    what = {
        "format": CACHE_FORMAT,
        "instrument": instrument,
        "start_ns": int(start_ns),
        "end_ns": int(end_ns),
        "generator": generator_version,
        "rollouts": int(rollouts),
        "seed": int(seed),
        "history_orders": int(history_orders),
        "max_depth": max_depth,
        "tick_size": int(tick_size),
        "open_mid": float(open_mid),
        **({"refill": True} if refill else {}),  # keys of forks made before it stay valid
        **({"feed_depth": int(feed_depth)} if feed_depth is not None else {}),
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:32]


class SimCache:
    """Forks stored under ``root``, one file per ``key``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.hits = 0
        self.misses = 0

    def _path(self, k: str) -> Path:
        return self.root / f"{k}.npz"

    def load(self, k: str) -> list[Trajectory] | None:
        path = self._path(k)
        if not path.exists():
            self.misses += 1
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                if int(z["format"]) != CACHE_FORMAT:
                    self.misses += 1
                    return None
                offsets = z["offsets"]
                head = z["head"]  # per rollout: start, end, bid0, ask0, tick, qty0 bid/ask
                has_depth = bool(z["has_depth"])
                has_ids = bool(z["has_ids"])
                names = _COLUMNS + (_DEPTH if has_depth else ()) + (_IDS if has_ids else ())
                cols = {c: z[c] for c in names}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            # a truncated or foreign file is a miss: the fork is run again and rewritten
            log.warning("simulation cache: ignoring unreadable %s (%s)", path.name, exc)
            self.misses += 1
            return None
        sims = []
        for j in range(len(head)):
            a, b = int(offsets[j]), int(offsets[j + 1])
            start, end, bid0, ask0, tick, q_bid, q_ask = (int(x) for x in head[j])
            sims.append(
                Trajectory(
                    start,
                    end,
                    bid0,
                    ask0,
                    *(cols[c][a:b] for c in _COLUMNS),
                    tick_size=tick,
                    bid_qty=cols["bid_qty"][a:b] if has_depth else None,
                    ask_qty=cols["ask_qty"][a:b] if has_depth else None,
                    qty0=(q_bid, q_ask),
                    order_id=cols["order_id"][a:b] if has_ids else None,
                )
            )
        self.hits += 1
        return sims

    def save(self, k: str, sims: Sequence[Trajectory]) -> None:
        if not sims:
            raise ValueError("nothing to cache: no rollouts")
        has_depth = all(s.bid_qty is not None for s in sims)
        has_ids = all(s.order_id is not None for s in sims)
        lengths = [len(s.ts_ns) for s in sims]
        arrays: dict[str, np.ndarray] = {
            "format": np.array(CACHE_FORMAT),
            "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            "head": np.array(
                [
                    (s.start_ns, s.end_ns, s.bid0, s.ask0, s.tick_size, s.qty0[0], s.qty0[1])
                    for s in sims
                ],
                dtype=np.int64,
            ),
            "has_depth": np.array(has_depth),
            "has_ids": np.array(has_ids),
        }
        for c in _COLUMNS + (_DEPTH if has_depth else ()) + (_IDS if has_ids else ()):
            arrays[c] = np.concatenate([np.asarray(getattr(s, c)) for s in sims])
        fd, tmp = tempfile.mkstemp(dir=self.root, suffix=".tmp.npz")
        os.close(fd)
        try:
            np.savez_compressed(tmp, **arrays)
            os.replace(tmp, self._path(k))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def window_key(window: ClosedWindow, config: DetectionConfig, model_version: str) -> str:
    """The key of a closed window's fork with ``config``'s settings: the one the benchmark,
    the replay and the stream worker share."""
    return key(
        instrument=window.instrument,
        start_ns=window.start_ns,
        end_ns=window.horizon_end_ns,
        generator_version=model_version,
        rollouts=config.rollouts,
        seed=config.seed,
        history_orders=config.history_orders,
        max_depth=config.max_depth,
        tick_size=config.tick_size,
        refill=config.refill,
        open_mid=open_mid_of(window),
        feed_depth=window.feed_depth,
    )


class WindowForkCache:
    """A ``SimCache`` keyed by a closed window, as the product's scorer asks for a fork
    (``surveillance.detection.scorer.ForkCache``): the same key as the benchmark's, so a
    replay reuses the forks ``evaluate --sim-cache`` made of the same windows. Picklable (it
    holds only the directory)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._cache: SimCache | None = None

    def __getstate__(self) -> dict[str, object]:
        return {"root": self.root}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.root = Path(state["root"])  # type: ignore[arg-type]
        self._cache = None

    @property
    def cache(self) -> SimCache:
        if self._cache is None:
            self._cache = SimCache(self.root)
        return self._cache

    def key(self, window: ClosedWindow, config: DetectionConfig, model_version: str) -> str:
        return window_key(window, config, model_version)

    def load(
        self, window: ClosedWindow, config: DetectionConfig, model_version: str
    ) -> list[Trajectory] | None:
        return self.cache.load(self.key(window, config, model_version))

    def save(
        self,
        window: ClosedWindow,
        config: DetectionConfig,
        model_version: str,
        sims: Sequence[Trajectory],
    ) -> None:
        self.cache.save(self.key(window, config, model_version), sims)
