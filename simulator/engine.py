"""The engine: fork simulated futures for a batch of requests. Every use of the simulator calls
this (detection, the realism study, the manipulation benchmark, benchmarks; forecasting and
what-if runs next), and none runs its own fork loop.

A ``ForkRequest`` says what to fork: an instrument's book at a moment, the real orders before it
(the order model's context), the day's open mid, the horizon, how many rollouts and the seed.
``Engine.fork`` returns one ``Futures`` per request, in request order: each rollout's orders and
touches (``RolloutResult``), its ``Trajectory`` (what the stylized facts read) and, where the
request asks for them, its book at chosen times.

The engine reaches the order model only through the sampler protocol (``Sampler``, which
``models.generator.LMMGenerator`` and ``simulator.generators.EmpiricalGenerator`` implement),
so this layer never imports torch. With a sampler that can ``join`` forks to a run
(``BatchSampler``: the order model and the empirical generator) the rollouts of every request of
a call are stepped together, one sampler call per step for all of them; ``max_batch`` caps the
rollouts in flight, and a request waits until enough rollouts have ended. A request's futures are
the same whichever requests share its call (docs/decisions/batched-forking.md). Other samplers
fork the requests one after the other.

Agents acting inside a rollout (a TWAP, a manipulator) come with the request: each rollout gets
its own agent from each factory, and their orders are matched in that rollout's clearing house
before the model's next order, which then sees the book they leave (``simulator.agents``).
"""

from __future__ import annotations

import multiprocessing
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from simulator.agents import AgentFactory
from simulator.book import OrderBook
from simulator.matching import MatchingRules
from simulator.orderstream import OrderStream
from simulator.rollout import (
    AgentFill,
    GeneratedOrder,
    OrderGenerator,
    RolloutError,
    RolloutGroup,
    RolloutResult,
    run_group,
)
from simulator.trajectory import Trajectory
from simulator.units import NS_PER_S

# What the engine asks of an order model (``simulator.rollout.OrderGenerator``).
Sampler = OrderGenerator


@runtime_checkable
class BatchSampler(Protocol):
    """A sampler whose run can hold several forks: ``begin`` starts a run with one fork's
    books, ``join`` adds another fork's (same arguments) at any step, and ``next_orders``
    takes the live books of every fork of the run, each fork's in its own order, forks in the
    order they began or joined. A fork's orders must not depend on the other forks of the run."""

    def begin(
        self,
        books: list[OrderBook],
        history: OrderStream,
        history_rows: np.ndarray | None,
        open_mid: float,
        ts_ns: int,
        seed: int,
    ) -> None: ...

    def join(
        self,
        books: list[OrderBook],
        history: OrderStream,
        history_rows: np.ndarray | None,
        open_mid: float,
        ts_ns: int,
        seed: int,
    ) -> None: ...

    def next_orders(self, books: list[OrderBook], ts_ns: list[int]) -> list[GeneratedOrder]: ...


@dataclass(frozen=True, slots=True)
class ForkRequest:
    """One fork: ``rollouts`` futures of ``[start_ns, start_ns + horizon_ns)`` from ``book``.

    ``context`` is the real order flow before the fork (the model conditions on it) and
    ``context_rows[j]`` the level-N book row just before ``context[j]`` (LOBSTER layout), or
    ``None`` (the model reads the forked book). ``max_depth`` keeps rollout books to the depth a
    level-N feed shows, ``refill`` keeps them full to it (``simulator.rollout``).
    ``snapshot_times_ns``: times at which each rollout's book is kept (``snapshot_levels``
    levels per side, LOBSTER layout).
    """

    instrument: str
    book: OrderBook
    context: OrderStream
    open_mid: float
    start_ns: int
    horizon_ns: int
    rollouts: int
    seed: int
    context_rows: np.ndarray | None = None
    rules: MatchingRules | None = None
    max_depth: int | None = None
    refill: bool = False
    max_orders: int | None = None
    agents: tuple[AgentFactory, ...] = ()
    snapshot_times_ns: tuple[int, ...] = ()
    snapshot_levels: int = 10
    keep_books: bool = False  # each rollout's final book in its result (to fork again from)

    @property
    def end_ns(self) -> int:
        return self.start_ns + self.horizon_ns

    @property
    def tick_size(self) -> int:
        return (self.rules or MatchingRules()).tick_size


@dataclass(slots=True)
class Futures:
    """The simulated futures of one ``ForkRequest``."""

    request: ForkRequest
    results: list[RolloutResult]
    seconds: float  # wall time of the fork (model and matching)
    _trajectories: list[Trajectory] | None = field(default=None, repr=False)

    @property
    def trajectories(self) -> list[Trajectory]:
        """Each rollout's orders that reached the market with the touch after each."""
        if self._trajectories is None:
            tick = self.request.tick_size
            self._trajectories = [Trajectory.from_rollout(r, tick_size=tick) for r in self.results]
        return self._trajectories

    @property
    def agent_orders(self) -> list[list[tuple[int, int]]]:
        """Per rollout, (position among its orders, agent index) of every order an agent sent."""
        return [r.agent_orders for r in self.results]

    @property
    def agent_fills(self) -> list[list[AgentFill]]:
        """Per rollout, every fill of an agent's orders, in time order."""
        return [r.agent_fills for r in self.results]

    def books_at(self, ts_ns: int) -> np.ndarray:
        """Every rollout's book at ``ts_ns`` (one of the request's ``snapshot_times_ns``):
        shape ``(rollouts, 4 * snapshot_levels)``."""
        try:
            k = self.request.snapshot_times_ns.index(ts_ns)
        except ValueError:
            raise KeyError(f"no book kept at {ts_ns} ns; ask for it in snapshot_times_ns") from None
        return np.stack([r.snapshots[k] for r in self.results])


class Engine:
    """Forks futures with one sampler (the order model or a baseline generator).

    ``max_batch``: the most rollouts stepped together (None: every request of a call at once);
    a request that does not fit waits for rollouts to end. It bounds memory (the order model
    keeps a cache row per rollout), never the results.
    """

    def __init__(self, sampler: Sampler, *, max_batch: int | None = None) -> None:
        if max_batch is not None and max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.sampler = sampler
        self.max_batch = max_batch

    @property
    def batched(self) -> bool:
        """Whether requests of one call share the sampler's batch (``BatchSampler``)."""
        return isinstance(self.sampler, BatchSampler)

    def fork(self, requests: Sequence[ForkRequest]) -> list[Futures]:
        """The futures of each request, in request order. Rollout ``i`` of a request depends
        only on that request and its seed, never on the other requests of the batch.
        ``Futures.seconds`` is the wall time from the request's start to its last rollout's
        end (shared with the requests stepped beside it)."""
        if len(requests) > 1 and self.batched:
            return self._fork_together(requests)
        out: list[Futures] = []
        for req in requests:
            t0 = time.perf_counter()
            results = run_group(
                _group(req), self.sampler, req.context, req.context_rows, req.open_mid
            )
            out.append(Futures(req, results, time.perf_counter() - t0))
        return out

    def _fork_together(self, requests: Sequence[ForkRequest]) -> list[Futures]:
        """Every request's rollouts stepped in one sampler call per step (``BatchSampler``)."""
        sampler = self.sampler
        assert isinstance(sampler, BatchSampler)
        cap = self.max_batch
        reads = getattr(sampler, "reads_agents", False)
        observe = sampler.observe_agents if reads else None  # type: ignore[attr-defined]
        waiting = deque(enumerate(requests))
        running: list[tuple[int, RolloutGroup, float]] = []
        out: list[Futures | None] = [None] * len(requests)
        started = False
        in_flight = 0
        while waiting or running:
            # admit requests in order while they fit (at least one when nothing runs)
            while waiting and (
                cap is None or not running or in_flight + waiting[0][1].rollouts <= cap
            ):
                k, req = waiting.popleft()
                t0 = time.perf_counter()
                group = _group(req)
                args = (req.context, req.context_rows, req.open_mid, req.start_ns, req.seed)
                if started:
                    sampler.join(group.books, *args)
                else:
                    sampler.begin(group.books, *args)
                    started = True
                group.start()
                group.watch_agents = observe is not None and bool(group.agents)
                running.append((k, group, t0))
                in_flight += len(group.live)
            books: list[OrderBook] = []
            clocks: list[int] = []
            for _, group, _ in running:
                books += group.live_books
                clocks += group.live_clocks()
            orders = sampler.next_orders(books, clocks) if books else []
            if len(orders) != len(books):
                raise RolloutError(
                    f"sampler returned {len(orders)} orders for {len(books)} rollouts"
                )
            at = 0
            still: list[tuple[int, RolloutGroup, float]] = []
            in_flight = 0
            for k, group, t0 in running:
                n = len(group.live)
                group.apply(orders[at : at + n])
                at += n
                if group.watch_agents:
                    for book, turn in group.take_turns():
                        observe(book, turn)  # type: ignore[misc]
                if group.done:
                    out[k] = Futures(requests[k], group.results(), time.perf_counter() - t0)
                else:
                    still.append((k, group, t0))
                    in_flight += len(group.live)
            running = still
        return [f for f in out if f is not None]

    def fork_one(self, request: ForkRequest) -> Futures:
        return self.fork([request])[0]


def _group(req: ForkRequest) -> RolloutGroup:
    return RolloutGroup(
        req.book,
        n=req.rollouts,
        start_ns=req.start_ns,
        horizon_ns=req.horizon_ns,
        seed=req.seed,
        rules=req.rules,
        max_orders=req.max_orders,
        max_depth=req.max_depth,
        refill=req.refill,
        snapshot_times_ns=req.snapshot_times_ns,
        snapshot_levels=req.snapshot_levels,
        agents=req.agents,
        keep_books=req.keep_books,
    )


def window_seed(seed: int, instrument: str, start_ns: int) -> int:
    """The rollout seed of a fork, from (seed, instrument, start): a replay reproduces a live
    run whatever else ran before, and every use of the engine seeds its forks so."""
    ss = np.random.SeedSequence([seed, zlib.crc32(instrument.encode()), start_ns // NS_PER_S])
    return int(ss.generate_state(1)[0])


# The engine of a worker process of ``fork_in_processes`` (built once per process).
_WORKER_ENGINE: Engine | None = None


def _init_worker(factory: Callable[[], Sampler]) -> None:
    global _WORKER_ENGINE
    _WORKER_ENGINE = Engine(factory())


def _fork_in_worker(request: ForkRequest) -> Futures:
    assert _WORKER_ENGINE is not None, "worker process without an engine"
    return _WORKER_ENGINE.fork_one(request)


def fork_in_processes(
    requests: Sequence[ForkRequest],
    sampler_factory: Callable[[], Sampler],
    jobs: int,
    engine: Engine | None = None,
) -> Iterator[Futures]:
    """The futures of each request, in request order, forked in up to ``jobs`` processes, each
    with its own sampler from ``sampler_factory`` (picklable). Processes are spawned, never
    forked, so no copy of this process's threads or torch state is made. With one job (or
    one request) the requests are forked here with ``engine`` (built from the factory when
    not given). Results equal one process's: a request's rollouts depend on it alone."""
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    if jobs == 1 or len(requests) <= 1:
        engine = engine if engine is not None else Engine(sampler_factory())
        for request in requests:
            yield engine.fork_one(request)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        min(jobs, len(requests)),
        mp_context=context,
        initializer=_init_worker,
        initargs=(sampler_factory,),
    ) as pool:
        yield from pool.map(_fork_in_worker, requests)
