"""The one rollout loop: live episodes on env slots, one batched action per turn, finished slots refilled.

Evaluation (`agents.rollout.run_episodes`, over any `Agent`), the rollout engine's synchronous `collect`/`branch`
and its async stream (`agents.stream`, over a `TokenPolicy`) all run `run_slots`; they differ only in how a turn
is produced (`act`) and what happens to a finished episode (`finished`).

Per lane (slot % lanes), in turn: wait for the lane's env steps, hand each finished episode to `finished`, start
pending jobs on the lane's free slots, produce one turn for its live episodes in one batch (`act`), and hand their
env steps to the executor without waiting. With one lane the next round waits for them at once: the synchronous
loop. With several lanes, one lane's env steps run while the next lane generates (see `agents.stream`).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future
from typing import Any


class InlineExecutor(Executor):
    """Runs each call at once in the calling thread (evaluation steps its envs where it made them); an exception
    propagates at once, so the turn stops at the failing env as a plain loop would."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        fut: Future = Future()
        fut.set_result(fn(*args, **kwargs))
        return fut

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any], **_: Any) -> Any:  # type: ignore[override]
        return [fn(*args) for args in zip(*iterables)]


def run_slots(
    pending: deque[tuple[int, Callable[[int], Any]]],
    n_slots: int,
    start: Callable[[int, Callable[[int], Any], int], Any],
    act: Callable[[list[Any]], list[int]],
    step: Callable[[Any], bool],
    finished: Callable[[Any], None],
    executor: Executor,
    lanes: int = 1,
    prepare: Callable[[list[int]], None] = lambda slots: None,
    load: Callable[[], None] = lambda: None,
    more: Callable[[], bool] = lambda: False,
    wait: Callable[[], None] = lambda: None,
    stop: threading.Event | None = None,
    timeline: list[tuple[str, int, float, float]] | None = None,
) -> dict[str, float]:
    """Run `pending` `(batch, job)` pairs on `n_slots` slots until none is left (or `stop` is set).

    `start(slot, job, batch)` starts an episode on a slot (runs in `executor`, several at once) and returns it;
    `act(live)` produces one turn for a batch of live episodes and returns the number of tokens it generated (0
    where that means nothing); `step(ep)` applies the episode's turn to its env and says whether it finished (runs
    in `executor`); `finished(ep)` receives each finished episode, in slot order; `prepare(slots)` runs in this
    thread before episodes start on `slots` (e.g. making their envs). `load()` may refill `pending`,
    `more()` says whether it still may (then an idle loop calls `wait()`, e.g. for a new policy version). Returns
    the totals: wall time, time generating, time waiting for env steps, generated tokens, env steps and rates.
    """
    live: dict[int, Any] = {}
    inflight: list[list[tuple[int, Future]]] = [[] for _ in range(lanes)]
    timeline = [] if timeline is None else timeline
    t0, gen_s, wait_s, tokens, steps = time.perf_counter(), 0.0, 0.0, 0, 0

    def timed_step(lane: int, ep: Any) -> bool:
        te = time.perf_counter()
        try:
            return step(ep)
        finally:
            timeline.append(("env", lane, te, time.perf_counter()))

    def fill(lane: int) -> None:
        free = [s for s in range(lane, n_slots, lanes) if s not in live]
        if not free or not pending:
            return
        # the lanes share the pending episodes evenly (a lane may not take more than its share)
        quota = math.ceil((len(live) + len(pending)) / lanes) - sum(1 for s in live if s % lanes == lane)
        todo = [(s, *pending.popleft()) for s in free[: max(0, min(quota, len(pending)))]]
        if not todo:
            return
        prepare([s for s, _, _ in todo])
        for (s, _, _), ep in zip(todo, executor.map(lambda t: start(t[0], t[2], t[1]), todo)):
            live[s] = ep

    stopped = stop.is_set if stop is not None else (lambda: False)
    try:
        while not stopped():
            load()
            for lane in range(lanes):
                tw = time.perf_counter()
                for slot, fut in inflight[lane]:
                    if fut.result():
                        finished(live.pop(slot))
                wait_s += time.perf_counter() - tw
                inflight[lane] = []
                load()
                fill(lane)
                order = sorted(s for s in live if s % lanes == lane)
                if not order or stopped():
                    continue
                tg = time.perf_counter()
                tokens += act([live[s] for s in order])
                t1 = time.perf_counter()
                timeline.append(("generate", lane, tg, t1))
                gen_s += t1 - tg
                steps += len(order)
                inflight[lane] = [(s, executor.submit(timed_step, lane, live[s])) for s in order]
            if not live and not any(inflight):
                load()
                if not pending:
                    if not more():
                        break
                    wait()
    finally:
        for lane_jobs in inflight:
            for _, fut in lane_jobs:
                fut.exception()  # let running env steps end before the envs are reused
    wall = time.perf_counter() - t0
    return {
        "wall_s": wall,
        "generate_s": gen_s,
        "env_wait_s": wait_s,
        "generated_tokens": tokens,
        "env_steps": steps,
        "env_steps_per_s": steps / wall if wall else 0.0,
        "generated_tokens_per_s": tokens / wall if wall else 0.0,
    }
