"""`check_env`: Gymnasium's checker plus turngym's contract checks. Every registered id must pass it.

Ours: the `info` schema at reset and on every step; determinism (same seed, task and actions give the same
trajectory); actions listed in `admissible_actions` are not flagged invalid; bad actions (`GARBAGE_ACTIONS`: empty,
huge, deeply nested, lone surrogates, NULs, non-string values) never raise and are flagged `invalid_action`; `close()` is
idempotent; and making, playing and closing the env leaves no child process, thread or file descriptor behind.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils.env_checker import check_env as gym_check_env

from turngym.envs.actiontext import bad_char
from turngym.envs.core import INFO_SCHEMA, MAX_ACTION, refuse_action

DEEP = 3000  # nesting depth of the deep garbage: past Python's parser and json's recursion limits


def _deep_json_object(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


GARBAGE_ACTIONS: list[Any] = [
    "",
    "   ",
    "\x00\x01 qzx!!## not an action ###",
    "🙂" * 50,
    "x" * 5000,
    "click[[[[",
    "((((",
    # text no engine can take: lone surrogates, NULs, control characters (raw and as escapes inside literals)
    "\ud800",
    "click(1)\udfff",
    'fill(5, "\ud800")',
    'type("\\ud800")',
    "look\x00",
    "\x01\x02\x1b[31m\x7f\x08",
    "\t\r\n\x0b\x0c",
    'fill(1, "a\\x00b")',
    '{"name": "bash", "arguments": {"cmd": "echo \\u0000"}}',
    '{"name": "python", "arguments": {"code": "\\ud800"}}',
    # as long as an action may be
    "y" * MAX_ACTION,
    "-" * (MAX_ACTION - 1) + "1",
    "(" * (MAX_ACTION // 2) + ")" * (MAX_ACTION // 2),
    # deep nesting in every bracket kind, in expressions, in JSON and in JSON inside a tool call
    *(o * DEEP + c * DEEP for o, c in ("()", "[]", "{}", "<>")),
    *(f"click({o * DEEP}1{c * DEEP})" for o, c in ("()", "[]", "{}")),
    "-" * DEEP + "1",
    "x" + "[0]" * DEEP,
    "click(x" + ".a" * DEEP + ")",
    "noop(" + "1+" * DEEP + "1)",
    _deep_json_object(DEEP),
    "[" * DEEP + "]" * DEEP,
    '{"name": "python", "arguments": ' + _deep_json_object(DEEP) + "}",
    "<tool_call>" + _deep_json_object(DEEP) + "</tool_call>",
    "<tool_call>" + "[" * DEEP + "]" * DEEP + "</tool_call>",
    "<tool_call>" * 9000,
    # not str: the contract is an invalid action whose error names the type (see TurnEnv.step)
    None,
    42,
    3.5,
    True,
    b"click(1)",
    ["click(1)"],
    {"name": "submit", "arguments": {}},
]


class EnvCheckError(AssertionError):
    """The env broke the contract; the message says which check and what was seen."""


def _children() -> set[int]:
    me = str(os.getpid())
    kids = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if fields[1] == me and fields[0] != "Z":
                kids.add(int(pid))
        except (OSError, IndexError):
            continue
    return kids


def _fds() -> set[str]:
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            out.add(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass
    return {f for f in out if not f.startswith(("anon_inode:", "/dev/", "pipe:", "socket:"))}


def check_info(info: dict[str, Any], where: str) -> None:
    for key, typ in INFO_SCHEMA.items():
        if key not in info:
            raise EnvCheckError(f"{where}: info has no {key!r} (the schema needs {sorted(INFO_SCHEMA)})")
        val = info[key]
        if typ is float and isinstance(val, int) and not isinstance(val, bool):
            val = float(val)
        if not isinstance(val, typ) or (typ is int and isinstance(val, bool)):
            raise EnvCheckError(f"{where}: info[{key!r}] should be {typ}, got {type(info[key]).__name__}")
    if not 0.0 <= info["score"] <= 1.0:
        raise EnvCheckError(f"{where}: info['score'] = {info['score']} is outside [0, 1]")
    if info["invalid_action"] and not info["error"]:
        raise EnvCheckError(f"{where}: invalid_action is True but info['error'] is empty")
    for name, cost in {**info["cost"], **info["total_cost"]}.items():
        if not isinstance(name, str) or not isinstance(cost, float):
            raise EnvCheckError(f"{where}: costs must be {{str: float}}, got {name!r}: {cost!r}")
    if not all(isinstance(a, str) for a in info["admissible_actions"]):
        raise EnvCheckError(f"{where}: admissible_actions must be a list of strings")


def _obs_ok(env: gym.Env, obs: Any, where: str) -> None:
    if not isinstance(obs, dict) or not isinstance(obs.get("text"), str):
        raise EnvCheckError(
            f"{where}: observation must be a dict with a 'text' string, got {type(obs).__name__}"
        )
    if not env.observation_space.contains(obs):
        raise EnvCheckError(f"{where}: observation is not in the observation space {env.observation_space}")


def _play(env: gym.Env, seed: int, steps: int, options: dict | None) -> list[tuple]:
    """Reset with `seed` and take `steps` actions: admissible ones chosen by a seeded rng, or the expert's."""
    rng = np.random.default_rng(seed)
    obs, info = env.reset(seed=seed, options=options)
    _obs_ok(env, obs, "reset")
    check_info(info, "reset")
    trace = [(obs["text"], info["obs_key"], info["task_id"])]
    for t in range(steps):
        acts = info["admissible_actions"]
        if acts:
            action = acts[int(rng.integers(len(acts)))]
        else:
            try:
                action = env.unwrapped.expert_action()
            except NotImplementedError:
                action = env.action_space.sample()
        obs, reward, term, trunc, info = env.step(action)
        _obs_ok(env, obs, f"step {t + 1} ({action!r:.60})")
        check_info(info, f"step {t + 1} ({action!r:.60})")
        if acts and info["invalid_action"]:
            raise EnvCheckError(
                f"step {t + 1}: {action!r:.60} was listed in admissible_actions but failed: {info['error']:.200}"
            )
        if not isinstance(reward, float):
            raise EnvCheckError(f"step {t + 1}: reward must be a float, got {type(reward).__name__}")
        trace.append((action, obs["text"], reward, term, trunc, info["obs_key"], info["success"]))
        if term or trunc:
            break
    return trace


def check_env(
    env: gym.Env | str,
    make: Callable[[], gym.Env] | None = None,
    steps: int = 8,
    seed: int = 0,
    options: dict | None = None,
    gymnasium_checks: bool = True,
    leak_checks: bool = True,
) -> None:
    """Run all checks. `env` is an id (preferred: fresh envs are made for the leak check) or an instance."""
    if isinstance(env, str):
        env_id = env
        make = make or (lambda: gym.make(env_id))
    elif make is None and env.spec is not None:
        spec = env.spec
        make = lambda: gym.make(spec)  # noqa: E731
    base_threads = {t.ident for t in threading.enumerate()}
    base_children = _children()
    base_fds = _fds()

    instance = make() if isinstance(env, str) else env
    try:
        if gymnasium_checks:
            with warnings.catch_warnings():
                warnings.simplefilter("error", category=UserWarning)
                warnings.filterwarnings("ignore", message=".*is different from the unwrapped version.*")
                warnings.filterwarnings("ignore", message=".*Not able to test alternative render modes.*")
                gym_check_env(instance.unwrapped, skip_render_check=False, skip_close_check=make is None)
        # determinism: same seed + same actions => same trajectory
        a = _play(instance, seed, steps, options)
        b = _play(instance, seed, steps, options)
        if a != b:
            diff = (
                next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
                if len(a) == len(b)
                else min(len(a), len(b))
            )
            raise EnvCheckError(
                f"not deterministic under seed={seed}: trajectories differ at step {diff}: "
                f"{(a + [None])[diff]!r:.300} vs {(b + [None])[diff]!r:.300}"
            )
        # bad actions never raise, are flagged, and the episode goes on
        instance.reset(seed=seed, options=options)
        free_text = getattr(instance.unwrapped, "accepts_free_text", False)
        for bad in [*GARBAGE_ACTIONS, "y" * (MAX_ACTION + 1)]:
            try:
                obs, r, term, trunc, info = instance.step(bad)  # type: ignore[arg-type]
            except Exception as exc:
                raise EnvCheckError(f"step({bad!r:.40}) raised {type(exc).__name__}: {exc}") from exc
            check_info(info, f"bad action {bad!r:.40}")
            _obs_ok(instance, obs, f"bad action {bad!r:.40}")
            must_flag = refuse_action(bad) is not None or not free_text
            if must_flag and not info["invalid_action"]:
                raise EnvCheckError(f"bad action {bad!r:.40} was not flagged invalid_action")
            if bad_char(obs["text"]) or bad_char(info["error"]):
                raise EnvCheckError(
                    f"bad action {bad!r:.40}: the observation or error holds {bad_char(obs['text'] + info['error'])}"
                )
            if term or trunc:
                instance.reset(seed=seed, options=options)
        # max_turns truncation, settable per episode
        opts = dict(options or {}, max_turns=2)
        instance.reset(seed=seed, options=opts)
        done = False
        for _ in range(2):
            *_, term, trunc, info = instance.step("\x00 not an action")
            done = term or trunc
        if not done:
            raise EnvCheckError("reset(options={'max_turns': 2}) did not end the episode after 2 turns")
    finally:
        instance.close()
        try:
            instance.close()
        except Exception as exc:
            raise EnvCheckError(f"a second close() raised {type(exc).__name__}: {exc}") from exc

    if leak_checks and make is not None:
        e2 = make()
        _play(e2, seed + 1, 3, options)
        e2.close()
        deadline = time.time() + 5
        while True:
            children = _children() - base_children
            threads = [t for t in threading.enumerate() if t.ident not in base_threads and t.is_alive()]
            fds = _fds() - base_fds
            if not (children or threads or fds) or time.time() > deadline:
                break
            time.sleep(0.1)
        if children:
            raise EnvCheckError(f"child processes left after close(): {sorted(children)}")
        if threads:
            raise EnvCheckError(f"threads left after close(): {[t.name for t in threads]}")
        if fds:
            raise EnvCheckError(f"files left open after close(): {sorted(fds)[:10]}")
