"""The one rollout loop (`agents.slots.run_slots`) on its own: slot assignment, lanes, refills, stopping.

Episodes here are counters (an episode of length n finishes after n turns), so every schedule is computed by hand.
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import pytest

from turngym.agents.slots import InlineExecutor, run_slots


class Ep:
    def __init__(self, name: str, length: int, slot: int):
        self.name, self.length, self.slot, self.turns = name, length, slot, 0


def setup(lengths: dict[str, int]):
    log: list[tuple[str, ...]] = []
    done: list[str] = []
    pending = deque((0, (name, n)) for name, n in lengths.items())

    def start(slot, job, batch):
        log.append(("start", job[0], str(slot)))
        return Ep(job[0], job[1], slot)

    def act(live):
        log.append(("act", *[e.name for e in live]))
        return len(live)

    def step(ep):
        ep.turns += 1
        return ep.turns >= ep.length

    return log, done, pending, start, act, step


def test_one_lane_is_the_synchronous_loop():
    # 3 slots, 5 episodes: a (1 turn), b (2), c (1), d (1), e (1)
    log, done, pending, start, act, step = setup({"a": 1, "b": 2, "c": 1, "d": 1, "e": 1})
    stats = run_slots(pending, 3, start, act, step, lambda e: done.append(e.name), InlineExecutor())
    assert log == [
        ("start", "a", "0"), ("start", "b", "1"), ("start", "c", "2"),
        ("act", "a", "b", "c"),  # turn 1: a and c finish; their slots take d and e (in slot order)
        ("start", "d", "0"), ("start", "e", "2"),
        ("act", "d", "b", "e"),  # slot order: d on 0, b on 1, e on 2
    ]  # fmt: skip
    assert done == ["a", "c", "d", "b", "e"]
    assert stats["env_steps"] == 6 and stats["generated_tokens"] == 6


def test_lanes_share_the_slots_and_overlap_with_a_pool():
    # 4 slots in 2 lanes (slot % 2): lane 0 = slots 0, 2; lane 1 = slots 1, 3
    log, done, pending, start, act, step = setup({n: 2 for n in "abcdef"})
    timeline: list = []
    with ThreadPoolExecutor(2) as pool:
        run_slots(
            pending, 4, start, act, step, lambda e: done.append(e.name), pool, lanes=2, timeline=timeline
        )
    acts = [entry[1:] for entry in log if entry[0] == "act"]
    # each lane takes at most its share of what is live or pending (6 episodes: 3 per lane, 2 slots each)
    assert acts[0] == ("a", "b") and acts[1] == ("c", "d")
    assert sorted(done) == list("abcdef") and len(done) == 6
    assert {k for k, *_ in timeline} == {"generate", "env"}


def test_load_refills_and_stop_ends_early():
    log, done, pending, start, act, step = setup({})
    feed = deque([{"x": 1}, {"y": 1, "z": 1}])

    def load():
        if feed and not pending:
            pending.extend((0, item) for item in feed.popleft().items())

    run_slots(pending, 2, start, act, step, lambda e: done.append(e.name), InlineExecutor(), load=load)
    assert done == ["x", "y", "z"]

    stop = threading.Event()
    log, done, pending, start, act, step = setup({"p": 5, "q": 5})

    def act_then_stop(live):
        stop.set()
        return act(live)

    run_slots(pending, 2, start, act_then_stop, step, done.append, InlineExecutor(), stop=stop)
    assert done == [] and [e for e in log if e[0] == "act"] == [("act", "p", "q")]


def test_an_env_error_stops_the_loop():
    log, done, pending, start, act, _ = setup({"a": 3, "b": 3})

    def step(ep):
        if ep.name == "b":
            raise RuntimeError("env b broke")
        return False

    with pytest.raises(RuntimeError, match="env b broke"):
        run_slots(pending, 2, start, act, step, done.append, InlineExecutor())
