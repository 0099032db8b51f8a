"""The batched multi-turn rollout engine: N tasks x G episodes in, token-level trajectories (`TokenEpisode`) out.

Each turn, the engine generates for ALL live episodes in one batched call (finished episodes drop out and a free
slot starts the next pending episode), then steps every env in a thread pool (browsers and sandboxes wait on I/O).
Episode `k` of a call has seed `seed + k`: its env reset uses it, and its sampling at turn `t` uses its own
generator seeded from (seed + k, t), so an episode's samples do not depend on which episodes share its batch.

Token bookkeeping follows `turngym.agents.chat`: one append-only sequence per episode, equal to the chat template's
rendering of the episode's conversation (system, instructions + first observation, then assistant actions and user
observations); the observation that follows the last action is NOT part of the sequence (nothing is generated after
it; it is in `episode.steps[-1].observation`). `policy_mask` is 1 exactly on generated ids.

The policy must provide `chat` (a `ChatFormat`) and `generate(prompts, seed=...) -> list[Generation]`
(`HFPolicy`, `VLLMPolicy`).
"""

from __future__ import annotations

import functools
import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

import turngym  # noqa: F401  (registers the env ids)
from turngym.agents.base import EpisodeContext, Turn
from turngym.agents.constraints import constraints_for
from turngym.agents.parsing import parse_action
from turngym.agents.policy import TokenPolicy, check_token_policy
from turngym.agents.prompting import first_user_message, system_text
from turngym.agents.rollout import env_task_ids
from turngym.agents.slots import run_slots
from turngym.agents.trajectory import Episode, Step, TokenEpisode, clean_info
from turngym.errors import ConfigError, EnvError

if TYPE_CHECKING:
    from turngym.agents.stream import RolloutStream

log = logging.getLogger(__name__)


_UIDS = itertools.count()


@dataclass
class _Live:
    """One running episode: its env slot, the conversation and the token sequence built so far."""

    slot: int
    index: int
    group: int
    seed: int
    ctx: EpisodeContext
    episode: Episode
    messages: list[dict[str, str]]
    input_ids: list[int]
    policy_mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    turn_index: list[int] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    obs_keys: list[str] = field(default_factory=list)
    infos: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    sample_seed: int | None = None  # seeds the sampling of each turn (default: the env seed)
    versions: list[int] = field(default_factory=list)  # policy version that generated each turn
    batch: int = 0  # the stream batch it belongs to (async mode)
    uid: int = field(default_factory=lambda: next(_UIDS))  # names its KV cache in the policy (kv_reuse)
    images: list[Any] = field(
        default_factory=list
    )  # the images in input_ids, in order (vision-language policies)
    allowed: dict[int, list[int]] = field(default_factory=dict)  # constrained positions -> their allowed ids

    def add(self, ids: list[int], policy: bool, logprobs: list[float] | None = None, turn: int = -1) -> None:
        self.input_ids.extend(ids)
        self.policy_mask.extend([1 if policy else 0] * len(ids))
        self.logprobs.extend(logprobs if logprobs is not None else [0.0] * len(ids))
        self.turn_index.extend([turn if policy else -1] * len(ids))


class RolloutEngine:
    """Run a token-level policy in `num_envs` copies of an env; `collect()` returns `TokenEpisode`s.

    Args:
      policy: an `HFPolicy`/`VLLMPolicy` (anything with `.chat` and `.generate`).
      env_id, env_kwargs: what `gym.make` gets.
      num_envs: episodes run concurrently (the generation batch size).
      max_turns: per-episode turn limit (passed to `reset` as the `max_turns` option).
      system_prompt: a fixed system message; `prompt_hook(instructions) -> str | None` may add to it per episode
        (retrieved skills and memories, see `turngym.agents.memory.PromptContext`).
      parser: action format (`turngym.agents.parsing.PARSERS`); a parse failure is an invalid action for the env.
      max_episode_tokens: token budget per episode; an episode whose next turn would not fit ends (truncated) with
        `meta["stop_reason"] == "token_budget"`.
      env_threads: threads stepping envs (default: `num_envs`).
      env_backend: "local" (envs in this process) or "ray" (each env in a Ray actor, `turngym.agents.remote`).
      overlap: async mode for `collect()`: the slots are split into `lanes` micro-batches and one lane generates
        while the others' envs step (`turngym.agents.stream`). Default False: the synchronous loop.

    Every episode records the policy version that generated each turn (`meta["policy_versions"]`, the oldest in
    `meta["policy_version"]`) and its `meta["staleness"]` when handed out (see `update_policy`, `stream`).
    """

    def __init__(
        self,
        policy: TokenPolicy,
        env_id: str,
        env_kwargs: dict[str, Any] | None = None,
        num_envs: int = 16,
        max_turns: int | None = None,
        system_prompt: str | None = None,
        parser: str = "raw",
        max_episode_tokens: int | None = None,
        env_threads: int | None = None,
        prompt_hook: Callable[[str], str | None] | None = None,
        on_episode: Callable[[TokenEpisode], None] | None = None,
        env_backend: str = "local",
        overlap: bool = False,
        lanes: int = 2,
    ):
        if num_envs < 1:
            raise ConfigError(f"num_envs must be >= 1, got {num_envs}")
        if env_backend not in ("local", "ray"):
            raise ConfigError(f"env_backend must be 'local' or 'ray', got {env_backend!r}")
        self.env_backend = env_backend
        check_token_policy(policy, "RolloutEngine")
        if policy.multimodal and policy.keep_images is not None:
            raise ConfigError(
                "RolloutEngine keeps every image of an episode in its one token sequence (what the model saw is "
                "what the trainer scores); keep_images is for evaluation only: build the policy without it"
            )
        self.policy = policy
        self.env_id = env_id
        self.env_kwargs = dict(env_kwargs or {})
        self.num_envs = int(num_envs)
        self.max_turns = max_turns
        self.system_prompt = system_prompt
        self.parser = parser
        self.max_episode_tokens = max_episode_tokens
        self.prompt_hook = prompt_hook
        self.on_episode = on_episode
        self._envs: list[gym.Env] = []
        self._pool = ThreadPoolExecutor(
            max_workers=env_threads or self.num_envs, thread_name_prefix="turngym-env"
        )
        self.stats: dict[str, float] = {}
        self.timeline: list[tuple[str, int, float, float]] = []  # async collect: (kind, lane, t0, t1)
        self.overlap = bool(overlap)
        if lanes < 1:
            raise ConfigError(f"lanes must be >= 1, got {lanes}")
        self.lanes = int(lanes)
        self._cond = threading.Condition(threading.RLock())  # guards generation and the policy version
        self._version = 0
        self._busy = False
        self._kv_keys: set[int] = set()  # live episodes' KV caches kept by the policy
        self._stream: RolloutStream | None = None  # the open stream, if any

    # ---- lifecycle -------------------------------------------------------------------------------------------
    def _ensure_envs(self, n: int) -> None:
        while len(self._envs) < n:
            if self.env_backend == "ray":
                from turngym.agents.remote import RayEnv

                self._envs.append(RayEnv(self.env_id, self.env_kwargs))
            else:
                self._envs.append(gym.make(self.env_id, **self.env_kwargs))

    def close(self) -> None:
        if self._stream is not None:  # a stream still running stops before its envs close
            self._stream.close()
        for env in self._envs:
            env.close()
        self._envs = []
        self._pool.shutdown(wait=True)

    def __enter__(self) -> RolloutEngine:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- planning --------------------------------------------------------------------------------------------
    def _task_list(self, task_ids: list[str] | int, seed: int, split: str | None, options: dict) -> list[str]:
        if not isinstance(task_ids, int):
            ids = [str(t) for t in task_ids]
            if not ids:
                raise ConfigError("collect() got an empty task list")
            return ids
        if task_ids < 1:
            raise ConfigError(f"collect() needs at least one task, got {task_ids}")
        self._ensure_envs(1)
        pool = env_task_ids(self._envs[0], split, options)
        order = np.random.default_rng(seed).permutation(len(pool))
        return [pool[int(order[i % len(pool)])] for i in range(task_ids)]

    # ---- policy versions (async mode) ------------------------------------------------------------------------
    @property
    def policy_version(self) -> int:
        """How many times the policy was updated through `update_policy`/`policy_update` (starts at 0)."""
        return self._version

    @contextmanager
    def policy_update(self) -> Iterator[None]:
        """Hold generation while the body changes the policy's weights in place; the version goes up by one after.

        For a trainer that optimises `policy.model` itself: wrap each weight change (`optimizer.step()`, or the
        whole optimisation phase of a training step) so that no turn is sampled from half-updated weights.
        """
        with self._cond:
            yield
            self._version += 1
            self._release_kv()  # kept KV caches belong to the old weights
            self._cond.notify_all()

    def update_policy(self, model: Any = None, version: int | None = None) -> int:
        """Publish a new policy version; with `model` (an nn.Module or a state dict), first copy its weights into
        the rollout policy (`policy.load_weights`). Returns the new version. Waits for a running generation turn.

        `version`: publish this number instead of the current one plus one (a replica catching up with the others,
        e.g. a restarted rollout actor, `turngym.agents.ray_engine`); it may not go back."""
        if version is not None and version < self._version:
            raise ConfigError(f"update_policy(version={version}) would go back from version {self._version}")
        with self.policy_update():
            if model is not None:
                self.policy.load_weights(model)
            if version is not None:
                self._version = version - 1  # policy_update adds the one
        return self._version

    def _release_kv(self, keys: Iterable[int] | None = None) -> None:
        with self._cond:
            keys = set(self._kv_keys if keys is None else keys)
            if keys:
                self.policy.release_cache(list(keys))
            self._kv_keys -= keys

    def _generate(self, eps: list[_Live]) -> list[Any]:
        """One batched generation turn for `eps` under the current policy version (recorded per turn)."""
        prompts = [ep.input_ids for ep in eps]
        # one sampling seed per episode and turn: an episode's samples do not depend on its batch-mates
        seeds = [ep.sample_seed * 1_000_003 + len(ep.rewards) for ep in eps]
        kw: dict[str, Any] = {}
        if self.policy.kv_reuse:  # HFPolicy keeps each episode's KV cache between turns
            kw["cache_keys"] = [ep.uid for ep in eps]
        if self.policy.multimodal:  # VLMPolicy: each prompt's images, in order
            kw["images"] = [ep.images for ep in eps]
        cons = constraints_for(self.policy, [ep.ctx for ep in eps])
        if cons is not None:  # decoding under the policy's constraint (turngym.agents.constraints)
            kw["constraints"] = cons
        with self._cond:
            self._kv_keys.update(kw.get("cache_keys", []))
            version = self._version
            gens = self.policy.generate(prompts, seed=seeds, **kw)
        for ep, g in zip(eps, gens):
            ep.versions.append(version)
            self._record_generation(ep, g)
        return gens

    # ---- the rollout -----------------------------------------------------------------------------------------
    def plan(
        self,
        task_ids: list[str] | int,
        group_size: int = 1,
        seed: int = 0,
        split: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[list[tuple[int, int, str]], dict[str, Any]]:
        """What `collect` with these arguments plays: [(episode index, group, task id)] in task-major order, and the
        reset options every episode gets. Any part of the plan can be played by `run_plan`, here or elsewhere."""
        if group_size < 1:
            raise ConfigError(f"group_size must be >= 1, got {group_size}")
        base = dict(options or {})
        if split:
            base["split"] = split
        if self.max_turns:
            base["max_turns"] = self.max_turns
        tasks = self._task_list(task_ids, seed, split, base)
        plan = [(g, tid) for g, tid in enumerate(tasks) for _ in range(group_size)]
        return [(k, g, tid) for k, (g, tid) in enumerate(plan)], base

    def collect(
        self,
        task_ids: list[str] | int,
        group_size: int = 1,
        seed: int = 0,
        split: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> list[TokenEpisode]:
        """Play `group_size` episodes of each task; returns them grouped (task-major order), `group` = task index.

        `task_ids` is a list of task ids, or a number of tasks drawn without replacement (seeded) from the split.
        With `overlap=True` (constructor) the turns are pipelined (see `turngym.agents.stream`); the episodes are
        the same either way (per-episode seeds).
        """
        if self.overlap:
            from turngym.agents.stream import RolloutStream

            spec = {"task_ids": task_ids, "group_size": group_size, "seed": seed, "split": split}
            with RolloutStream(self, [{**spec, "options": options}], max_staleness=None) as stream:
                out = next(stream)
            self.stats, self.timeline = stream.stats, stream.timeline
            return out
        return self._run(self._jobs(task_ids, group_size, seed, split, options))

    def _jobs(
        self, task_ids: list[str] | int, group_size: int, seed: int, split: str | None, options: dict | None
    ) -> list[tuple[int, Callable[[int], _Live]]]:
        """(episode index, job) per planned episode; a job starts its episode on the env slot it is given."""
        plan, base = self.plan(task_ids, group_size, seed, split, options)
        return self._plan_jobs(plan, seed, base)

    def _plan_jobs(
        self, plan: list[tuple[int, int, str]], seed: int, base: dict[str, Any]
    ) -> list[tuple[int, Callable[[int], _Live]]]:
        return [
            (k, functools.partial(self._start, index=k, group=g, task_id=tid, base_seed=seed, base=base))
            for k, g, tid in plan
        ]

    def run_plan(
        self,
        plan: list[tuple[int, int, str]],
        seed: int,
        options: dict[str, Any],
        stop: threading.Event | None = None,
    ) -> list[TokenEpisode]:
        """Play `plan`, a part of `plan(...)[0]`, with the `seed` given to `plan` and its reset `options`: each
        episode is the one `collect` returns at its index (its env and sampling seeds come from `seed` and the
        index), so a plan split across engines (`turngym.agents.ray_engine`) gives `collect`'s episodes. `stop`:
        set from another thread, the run ends after the current turn and returns the episodes finished by then."""
        return self.run_plans([(plan, seed, options)], stop)[0]

    def run_plans(
        self,
        parts: list[tuple[list[tuple[int, int, str]], int, dict[str, Any]]],
        stop: threading.Event | None = None,
    ) -> list[list[TokenEpisode]]:
        """Several `run_plan` calls in one run (one set of env slots, batched generation across them): each part is
        `(plan, seed, options)` of its own `plan(...)` call. Returns each part's episodes (ordered by index)."""
        jobs = [
            (b, job)
            for b, (plan, seed, base) in enumerate(parts)
            for _, job in self._plan_jobs(plan, seed, base)
        ]
        done = self._run_batches(jobs, stop)
        return [[done[(b, k)] for k in sorted(k for bb, k in done if bb == b)] for b in range(len(parts))]

    def _run(self, jobs: list[tuple[int, Callable[[int], _Live]]]) -> list[TokenEpisode]:
        """The synchronous run: `schedule` with one lane over `jobs` (each starts an episode on a slot); returns the
        episodes ordered by episode index."""
        done = self._run_batches([(0, job) for _, job in jobs])
        return [done[key] for key in sorted(done)]

    def _run_batches(
        self, jobs: list[tuple[int, Callable[[int], _Live]]], stop: threading.Event | None = None
    ) -> dict[tuple[int, int], TokenEpisode]:
        """`schedule` with one lane over `(batch, job)` pairs; returns {(batch, episode index): episode}."""
        self._acquire()
        try:
            done: dict[tuple[int, int], TokenEpisode] = {}

            def finished(lv: _Live) -> None:
                ep = self._finish(lv)
                done[(lv.batch, ep.meta["index"])] = ep
                if self.on_episode:
                    self.on_episode(ep)

            pending = deque(jobs)
            self.stats = {"episodes": len(jobs), **self.schedule(pending, finished, lanes=1, stop=stop)}
        finally:
            self._release_kv()
            self._busy = False
        for ep in done.values():
            ep.meta["staleness"] = self._version - ep.meta["policy_version"]
        return done

    def _acquire(self) -> None:
        with self._cond:
            if self._busy:
                raise ConfigError(
                    "this RolloutEngine is already running (a stream or another collect); one run at a time"
                )
            self._busy = True

    def schedule(
        self,
        pending: deque[tuple[int, Callable[[int], _Live]]],
        finished: Callable[[_Live], None],
        lanes: int,
        load: Callable[[], None] = lambda: None,
        more: Callable[[], bool] = lambda: False,
        stop: threading.Event | None = None,
        timeline: list[tuple[str, int, float, float]] | None = None,
    ) -> dict[str, float]:
        """`agents.slots.run_slots` on this engine's env slots: `pending` `(batch, job)` pairs (a job starts an
        episode on the slot it is given), one batched generation per lane and turn, env steps in the pool. Used by
        the synchronous `collect`/`branch` (one lane) and the async stream (`lanes` lanes, `load` refilling
        `pending` as staleness allows, an idle loop waiting for a policy update)."""

        def start(slot: int, job: Callable[[int], _Live], batch: int) -> _Live:
            lv = job(slot)
            lv.batch = batch
            return lv

        def act(eps: list[_Live]) -> int:
            return sum(len(g.token_ids) for g in self._generate(eps))

        def wait() -> None:
            with self._cond:  # a new policy version (or close) wakes it
                self._cond.wait(timeout=0.1)

        return run_slots(
            pending,
            self.num_envs,
            start,
            act,
            self._step,
            finished,
            self._pool,
            lanes=lanes,
            prepare=lambda slots: self._ensure_envs(max(slots) + 1),
            load=load,
            more=more,
            wait=wait,
            stop=stop,
            timeline=timeline,
        )

    def stream(self, batches: Iterable[dict[str, Any]], max_staleness: int | None = 1) -> RolloutStream:
        """Collect batches in a background thread (async mode); see `turngym.agents.stream.RolloutStream`.

        `batches`: an iterable of `collect()` keyword dicts (`task_ids`, `group_size`, `seed`, `split`, `options`).
        Batch i may start only once `policy_version >= (version at start) + i - max_staleness`: call
        `update_policy()` (or use `policy_update()`) once per consumed batch.
        """
        from turngym.agents.stream import RolloutStream

        return RolloutStream(self, batches, max_staleness=max_staleness)

    # ---- branching (ARPO) ------------------------------------------------------------------------------------
    def branch(self, episode: TokenEpisode, turn: int, n: int, seed: int) -> list[TokenEpisode]:
        """`n` continuations of `episode` from the state just before its action `turn` (ARPO's partial rollouts).

        Each branch re-creates the env state by resetting a fresh episode with the parent's seed and options and
        replaying the parent's first `turn` actions; every observation, reward and obs key of the replay must equal
        the parent's (`EnvError` otherwise: the env is not deterministic). The branch's token sequence starts with
        the parent's tokens up to turn `turn` (same ids, mask, log-probs: the shared prefix), then samples anew
        with seeds derived from (`seed`, branch number). Branches are `TokenEpisode`s of the parent's task and
        group, with `meta["branch"] = {"parent_index", "turn", "seed", "k"}`.
        """
        if episode.episode is None or "messages" not in episode.meta:
            raise ConfigError("branch() needs a TokenEpisode made by RolloutEngine (with .episode and meta)")
        if episode.images:
            raise ConfigError("branch() of episodes with images (vision-language policies) is not supported")
        if n < 1:
            raise ConfigError(f"branch() needs n >= 1, got {n}")
        n_turns = len(episode.rewards)
        if not 0 <= turn < n_turns:
            raise ConfigError(f"branch() turn must be in [0, {n_turns - 1}] for this episode, got {turn}")
        if episode.meta.get("env_id", self.env_id) != self.env_id:
            raise ConfigError(
                f"branch() got an episode of {episode.meta['env_id']!r}; this engine runs {self.env_id!r}"
            )
        jobs = [
            (k, functools.partial(self._resume, parent=episode, turn=turn, k=k, seed=seed)) for k in range(n)
        ]
        return self._run(jobs)

    def _resume(self, slot: int, parent: TokenEpisode, turn: int, k: int, seed: int) -> _Live:
        """Start branch `k`: replay the parent's first `turn` actions on the slot's env and copy its token prefix."""
        pep = parent.episode
        assert pep is not None
        opts = dict(pep.meta.get("options") or {})
        env_seed = int(parent.meta["seed"])
        env = self._envs[slot]
        obs, info = env.reset(seed=env_seed, options=opts)
        where = f"branch of episode {parent.meta.get('index')} (task {parent.task_id}, seed {env_seed})"
        _same(obs["text"], pep.observation, f"{where}: the reset observation")
        ctx = EpisodeContext.from_reset(env, obs, info, k, env_seed)
        for t in range(turn):
            step = pep.steps[t]
            obs, reward, term, trunc, info = env.step(step.action)
            _same(obs["text"], step.observation, f"{where}: the observation after action {t}")
            _same(float(reward), step.reward, f"{where}: the reward of action {t}")
            _same(str(ctx.info.get("obs_key", "")), parent.obs_keys[t], f"{where}: the obs key of turn {t}")
            if term or trunc:
                raise EnvError(f"{where}: the replay ended at action {t}, the original episode went on")
            ctx.history.append(Turn(ctx.observation["text"], step.action, float(reward), ctx.info))
            ctx.observation, ctx.info = obs, dict(info)
        cut = parent.turn_index.index(turn)  # the first token of action `turn`: the prompt the model saw
        pmsgs = parent.meta["messages"]
        n_head = next(i for i, m in enumerate(pmsgs) if m["role"] == "assistant")  # system? + first user turn
        messages = [dict(m) for m in pmsgs[: n_head + 2 * turn]]
        ep = Episode(
            env_id=self.env_id,
            task_id=pep.task_id,
            agent=pep.agent,
            seed=env_seed,
            instructions=pep.instructions,
            observation=pep.observation,
            steps=list(pep.steps[:turn]),
            meta={"options": opts},
        )
        live = _Live(
            slot,
            k,
            parent.group,
            env_seed,
            ctx,
            ep,
            messages,
            input_ids=list(parent.input_ids[:cut]),
            policy_mask=list(parent.policy_mask[:cut]),
            logprobs=list(parent.logprobs[:cut]),
            turn_index=list(parent.turn_index[:cut]),
            allowed={pos: ids for pos, ids in parent.allowed.items() if pos < cut},
            rewards=list(parent.rewards[:turn]),
            obs_keys=list(parent.obs_keys[:turn]),
            infos=[dict(i) for i in parent.infos[:turn]],
            sample_seed=int(np.random.SeedSequence([int(seed), k, 0xA290]).generate_state(1)[0]),
            versions=list(parent.meta.get("policy_versions", []))[:turn],
        )
        pm = parent.meta
        live.meta["prefix_stable"] = pm.get("prefix_stable")
        live.meta["finish_reasons"] = list(pm.get("finish_reasons", []))[:turn]
        for key in ("noncanonical_turns", "template_mismatch_turns"):
            kept = [t for t in pm.get(key, []) if t < turn]
            if kept:
                live.meta[key] = kept
        live.meta["branch"] = {"parent_index": pm.get("index"), "turn": turn, "seed": int(seed), "k": k}
        ctx.state["raw_actions"] = [m["content"] for m in messages if m["role"] == "assistant"]
        return live

    def _start(self, slot: int, index: int, group: int, task_id: str, base_seed: int, base: dict) -> _Live:
        seed, opts = base_seed + index, {**base, "task_id": task_id}
        env = self._envs[slot]
        obs, info = env.reset(seed=seed, options=opts)
        ctx = EpisodeContext.from_reset(env, obs, info, index, seed)
        system = system_text(self.system_prompt, self.prompt_hook, info["instructions"])
        messages: list[dict[str, str]] = []
        if system:
            messages.append({"role": "system", "content": system})
        image = self._image(obs)
        first = first_user_message(info["instructions"], obs["text"])
        messages.append({"role": "user", "content": self._user_content(first, image)})
        ep = Episode(
            env_id=self.env_id,
            task_id=info["task_id"],
            agent=str(self.policy.spec),
            seed=seed,
            instructions=info["instructions"],
            observation=obs["text"],
            meta={"options": opts},
        )
        live = _Live(slot, index, group, seed, ctx, ep, messages, input_ids=[], sample_seed=seed)
        ids = self.policy.chat.prompt_ids(messages)
        if image is not None:
            live.images.append(image)
            ids = self.policy.expand_images(ids, [image])
        live.add(ids, policy=False)
        live.meta["prefix_stable"] = self.policy.chat.prefix_stable
        return live

    def _record_generation(self, ep: _Live, g: Any) -> None:
        t = len(ep.rewards)
        for j, ids in enumerate(getattr(g, "allowed", None) or []):
            if ids is not None:
                ep.allowed[len(ep.input_ids) + j] = list(ids)
        ep.add(list(g.token_ids), policy=True, logprobs=list(g.logprobs), turn=t)
        ep.messages.append({"role": "assistant", "content": g.text})
        close, matched = self.policy.chat.close_assistant(ep.messages, list(g.token_ids))
        ep.add(close, policy=False)
        if not matched:
            ep.meta.setdefault("template_mismatch_turns", []).append(t)
        canon = self.policy.chat.encode(g.text)
        body = list(g.token_ids)
        if body and body[-1] in self.policy.chat.end_ids:
            body = body[:-1]
        if canon != body:
            ep.meta.setdefault("noncanonical_turns", []).append(t)
        ep.meta.setdefault("finish_reasons", []).append(g.finish_reason)
        ep.ctx.state.setdefault("raw_actions", []).append(g.text)

    def _step(self, ep: _Live) -> bool:
        """Parse and apply the last generated action; append the next observation if the episode goes on."""
        raw = ep.messages[-1]["content"]
        parsed = parse_action(raw, self.parser)
        ctx = ep.ctx
        obs_key = str(ctx.info.get("obs_key", ""))
        obs, reward, term, trunc, info = ctx.env.step(parsed.action)
        info = dict(info)
        if not parsed.ok:
            info["parse_error"] = parsed.error
        cinfo = clean_info(info)
        ep.rewards.append(float(reward))
        ep.obs_keys.append(obs_key)
        ep.infos.append(cinfo)
        ep.episode.steps.append(
            Step(
                action=parsed.action,
                observation=obs["text"],
                reward=float(reward),
                terminated=bool(term),
                truncated=bool(trunc),
                info=cinfo,
            )
        )
        ctx.history.append(Turn(ctx.observation["text"], parsed.action, float(reward), ctx.info))
        ctx.observation, ctx.info = obs, info
        if term or trunc:
            ep.meta["stop_reason"] = "terminated" if term else "max_turns"
            return True
        image = self._image(obs)
        messages = [*ep.messages, {"role": "user", "content": self._user_content(obs["text"], image)}]
        ids, matched = self.policy.chat.user_turn_ids(messages)
        if image is not None:
            ids = self.policy.expand_images(ids, [image])
        max_new = int(self.policy.max_new_tokens)
        if self.max_episode_tokens and len(ep.input_ids) + len(ids) + max_new > self.max_episode_tokens:
            ep.meta["stop_reason"] = "token_budget"
            ep.episode.steps[-1].truncated = True
            return True
        ep.messages = messages
        ep.add(ids, policy=False)
        if image is not None:
            ep.images.append(image)
        if not matched:
            ep.meta.setdefault("template_mismatch_turns", []).append(len(ep.rewards))
        return False

    def _image(self, obs: dict[str, Any]) -> Any:
        """The observation's image when the policy reads images (`VLMPolicy` with `use_images`), else None."""
        if not self.policy.multimodal or not self.policy.use_images:
            return None
        img = obs.get("image")
        return None if img is None else np.ascontiguousarray(img, dtype=np.uint8)

    def _user_content(self, text: str, image: Any) -> Any:
        return self.policy.user_content(text, image) if self.policy.multimodal else text

    def _finish(self, ep: _Live) -> TokenEpisode:
        self._release_kv([ep.uid])
        ep.meta.update(index=ep.index, seed=ep.seed, messages=ep.messages, env_id=self.env_id)
        ep.meta.update(
            sample_seed=ep.sample_seed, policy_versions=list(ep.versions), policy_version=min(ep.versions)
        )
        return TokenEpisode(
            input_ids=ep.input_ids,
            policy_mask=ep.policy_mask,
            logprobs=ep.logprobs,
            turn_index=ep.turn_index,
            rewards=ep.rewards,
            obs_keys=ep.obs_keys,
            infos=ep.infos,
            task_id=ep.episode.task_id,
            group=ep.group,
            episode=ep.episode,
            meta=ep.meta,
            allowed=ep.allowed,
            **self._image_fields(ep),
        )

    def _image_fields(self, ep: _Live) -> dict[str, Any]:
        if not self.policy.multimodal:
            return {}
        return {
            "images": list(ep.images),
            "image_inputs": self.policy.image_inputs(ep.images),
            "mm_token_type_ids": self.policy.mm_token_type_ids(ep.input_ids),
        }


def _same(got: Any, want: Any, what: str) -> None:
    if got != want:
        raise EnvError(
            f"{what} differs on replay ({str(got)[:80]!r} != {str(want)[:80]!r}): the env is not deterministic "
            "given its seed and actions, so its state cannot be re-created for branching"
        )
