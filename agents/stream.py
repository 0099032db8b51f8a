"""Async mode of the rollout engine: pipelined turns and a background stream of batches with bounded staleness.

Two things overlap here that the synchronous loop (`RolloutEngine.collect`, the default) runs one after the other:

1. **Generation and env steps.** The env slots are split into `engine.lanes` micro-batches ("lanes", slot % lanes).
   The loop generates one turn for lane 0, hands lane 0's env steps to the thread pool *without waiting*, generates
   for lane 1 while lane 0's envs step, then collects lane 0's results and generates its next turn while lane 1's
   envs step, and so on. Env latency (browsers, sandboxes, remote actors) hides behind generation. Each lane's
   batch is smaller, so this pays when env steps take a noticeable share of a turn.
2. **Rollouts and training.** A `RolloutStream` runs that loop in a background thread over a sequence of batches
   (each a `collect()` request). Slots are refilled continuously, so episodes of batch i+1 generate while batch i's
   last envs step and while the trainer trains on earlier batches.

Staleness is bounded by policy versions (AReaL's rule, Fu et al., 2025, "AReaL: A Large-Scale Asynchronous
Reinforcement Learning System for Language Reasoning"): the trainer publishes a version per training step
(`engine.update_policy()` / `with engine.policy_update():`), and the episodes of batch i may only start when
`policy_version >= v0 + i - max_staleness` (v0: the version when the stream started). A batch consumed after i
updates therefore holds only turns sampled from versions >= v0 + i - max_staleness. Generation and weight updates
take the same lock, so each turn is sampled from one set of weights, and its recorded log-probs are exactly those of
the weights that sampled it (`meta["policy_versions"]` says which, per turn). When a batch is handed out,
`meta["staleness"] = policy_version - meta["policy_version"]` (the oldest version in the episode).

`CollectStream` applies the same rule to an engine whose rollouts run elsewhere (`RayRolloutEngine.stream`): its
thread calls the engine's collect once per batch, one batch in flight, instead of the in-process slot loop.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from turngym.agents.trajectory import TokenEpisode
from turngym.errors import ConfigError

log = logging.getLogger(__name__)

_END = object()


class RolloutStream:
    """Iterate over batches of `TokenEpisode`s collected in a background thread (see the module docstring).

    Args:
      engine: the `RolloutEngine` (its slots, lanes, policy and version lock are used; one run at a time).
      batches: `collect()` keyword dicts: `task_ids`, `group_size`, `seed`, `split`, `options`. May be endless.
      max_staleness: the policy-version lag bound; None = no bound (batches are then read ahead only as far as
        needed to keep the slots full).

    `timeline` holds `(kind, lane, t0, t1)` for every generation ("generate") and env step ("env")
    (`time.perf_counter()` seconds); `stats` the totals once the stream has ended. Use as a context manager or call
    `close()`: it stops the thread (episodes in flight are dropped) and frees the engine.
    """

    def __init__(self, engine: Any, batches: Iterable[dict[str, Any]], max_staleness: int | None = 1):
        if max_staleness is not None and max_staleness < 0:
            raise ConfigError(f"max_staleness must be >= 0 or None, got {max_staleness}")
        self.engine = engine
        self.max_staleness = max_staleness
        self.timeline: list[tuple[str, int, float, float]] = []
        self.stats: dict[str, float] = {}
        self._specs = iter(batches)
        self._out: queue.Queue[Any] = queue.Queue()
        self._stop = threading.Event()
        self._ended = False
        self._open()
        self._v0 = engine.policy_version
        self._thread = threading.Thread(target=self._main, name="turngym-rollout-stream", daemon=True)
        self._thread.start()

    # ---- the consumer side -----------------------------------------------------------------------------------
    def __iter__(self) -> RolloutStream:
        return self

    def __next__(self) -> list[TokenEpisode]:
        if self._ended:
            raise StopIteration
        item = self._out.get()
        if item is _END:
            self._ended = True
            raise StopIteration
        if isinstance(item, BaseException):
            self._ended = True
            raise item
        version = self.engine.policy_version
        for ep in _episodes(item):
            ep.meta["staleness"] = version - ep.meta["policy_version"]
        return item

    def close(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._wake()
        self._thread.join()
        self._thread = None
        self._shut()

    # ---- the engine's side (RolloutEngine) -------------------------------------------------------------------
    def _open(self) -> None:
        self.engine._acquire()
        self.engine._stream = self

    def _wake(self) -> None:
        with self.engine._cond:
            self.engine._cond.notify_all()

    def _shut(self) -> None:
        self.engine._release_kv()
        self.engine._stream = None
        self.engine._busy = False

    def __enter__(self) -> RolloutStream:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- the producer thread ---------------------------------------------------------------------------------
    def _main(self) -> None:
        try:
            self._produce()
        except BaseException as exc:  # handed to the consumer, raised by __next__
            log.debug("rollout stream failed", exc_info=True)
            self._out.put(exc)
        finally:
            self._out.put(_END)

    def _allowed(self, batch: int) -> bool:
        return (
            self.max_staleness is None or self.engine.policy_version >= self._v0 + batch - self.max_staleness
        )

    def _produce(self) -> None:
        """The engine's rollout loop (`RolloutEngine.schedule`) over the batches, read ahead as staleness allows;
        a batch is handed out once all its episodes are done, in order."""
        eng = self.engine
        pending: deque[tuple[int, Any]] = deque()  # (batch, job(slot) -> a live episode)
        batches: dict[
            int, dict[int, TokenEpisode | None]
        ] = {}  # batch -> episode index -> episode (when done)
        state = {"loaded": 0, "exhausted": False, "emit": 0}

        def load() -> None:
            while not state["exhausted"] and self._allowed(state["loaded"]) and len(pending) < eng.num_envs:
                try:
                    spec = dict(next(self._specs))
                except StopIteration:
                    state["exhausted"] = True
                    return
                b = state["loaded"]
                jobs = eng._jobs(
                    spec.get("task_ids", 1),
                    spec.get("group_size", 1),
                    spec.get("seed", 0),
                    spec.get("split"),
                    spec.get("options"),
                )
                batches[b] = {k: None for k, _ in jobs}
                pending.extend((b, job) for _, job in jobs)
                state["loaded"] += 1

        def finished(lv: Any) -> None:
            ep = eng._finish(lv)
            batches[lv.batch][lv.index] = ep
            if eng.on_episode:
                eng.on_episode(ep)
            while state["emit"] in batches and all(e is not None for e in batches[state["emit"]].values()):
                done = batches.pop(state["emit"])
                self._out.put([done[k] for k in sorted(done)])
                state["emit"] += 1

        self.stats = eng.schedule(
            pending,
            finished,
            lanes=eng.lanes,
            load=load,
            more=lambda: not state["exhausted"],
            stop=self._stop,
            timeline=self.timeline,
        )


class CollectStream(RolloutStream):
    """The stream of an engine whose rollouts run elsewhere (`RayRolloutEngine`): a background thread calls the
    engine's `_collect_many` once per batch, batch i only once `policy_version >= v0 + i - max_staleness` (the same
    rule as `RolloutStream`; the engine's `update_policy` may run at any time, from the consumer's thread). One batch
    is in flight at a time; the next starts when it is back and the bound allows (there is no slot refill across
    batches). A batch is a `collect()` keyword dict (its item: the episodes) or `{"requests": [dicts]}` (its item:
    one episode list per request, as `collect_many` returns). `close()` aborts a batch in flight (the workers end it
    after their current turn) and drops it."""

    def _open(self) -> None:
        if self.engine._stream is not None:
            raise ConfigError("this engine already has an open stream; one run at a time")
        self.engine._stream = self

    def _wake(self) -> None:
        pass  # the producer polls the version and the stop event

    def _shut(self) -> None:
        self.engine._stream = None

    def _produce(self) -> None:
        t0 = time.perf_counter()
        batches, episodes = 0, 0
        # a request is read before it may start (a finite list ends at once, not at the next update); the trainer's
        # read-ahead position is reset to the consumed batches' when the stream closes
        for i, spec in enumerate(self._specs):
            while not self._allowed(i):
                if self._stop.wait(0.02):
                    return
            if self._stop.is_set():
                return
            spec = dict(spec)
            nested = "requests" in spec
            out = self.engine._collect_many(spec["requests"] if nested else [spec], stop=self._stop)
            if out is None:  # aborted by close()
                return
            batches += 1
            episodes += sum(len(part) for part in out)
            self.stats = {
                **self.engine.stats,
                "batches": batches,
                "stream_episodes": episodes,
                "stream_wall_s": time.perf_counter() - t0,
            }
            self._out.put(out if nested else out[0])


def _episodes(item: list[Any]) -> list[TokenEpisode]:
    """A stream item's episodes: a list of episodes, or of episode lists (`CollectStream` with `requests`)."""
    return [ep for x in item for ep in (x if isinstance(x, list) else [x])]
