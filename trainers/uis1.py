"""UI-S1 semi-online RL as a rollout strategy (`rollout_strategy: uis1`).

Lu et al. 2025, "UI-S1: Advancing GUI Automation via Semi-online Reinforcement Learning", arXiv:2509.11543.
Formula, defaults and what we measured: docs/algorithms.md, "UI-S1 semi-online RL".

The rollout. The policy acts at every step of every episode; the env family's scripted expert
(`env.unwrapped.expert_action()`) says what it would do in the same state. While the policy's action *matches* the
expert's, the policy's own output stays in the history and is what the env executes. When it diverges, the patch
module writes the expert's action into the history in place of the policy's output (a "thought-free" patch: just
the action, in the parser's format) and the env executes the expert's action, so the episode goes on along the
expert's path. At most K = `uis1_max_patches` patches per episode; after that a divergent action ends the episode
(`uis1_on_budget: stop`) or stays in the history, unpatched, and the episode goes on (`continue`).

Matching (`uis1_match`), turngym choice:
  action  the policy's parsed action (what the env would receive) equals the expert's, exactly (outer whitespace
          aside, which every parser strips). No looser normalisation is safe across families: envs differ in what
          they fold (ALFWorld lowercases commands, a lock or a code tool is case- and space-sensitive), and a
          "match" the env would reject would reward a wrong action. A paraphrase the env treats alike (another
          wording of the same question, `Click[x]` where the env ignores case) is a divergence here. Free.
  state   also equal when executing the policy's action leads to the same `obs_key` (the env's digest of its state),
          the same termination and no invalid-action flag as the expert's: the policy's action runs on a second env
          re-created by replaying the episode (reset with the episode's seed, then its actions; the env must be
          deterministic, as for ARPO branching), t + 1 env steps per check of a turn t whose texts differ. Honest
          (the env decides), but only cheap for cheap envs. Envs cannot be deep-copied here (fonts, locks, ctypes).

Rewards and advantages (per group of G episodes of one task):
  r_t  = w_f * format_t + w_m * match_t          (format_t: the reply parsed; w_f = 0.1, w_m = 0.9, turngym choice)
  R_t  = sum_{k >= t} gamma^(k-t) r_k             (gamma = 0.5, turngym choice)
  A^S_t = (R_t - mean R) / (std R + eps) over the steps of the group keyed by (t, obs_key) -- with patches every
         episode at step t is in the expert's state, so this is the paper's "same step" group; 0 for a lone step
  A^E  = (sum_t r_t - mean) / (std + eps) over the group's episodes
  A_t  = A^S_t + w * A^E                          (w = 1, turngym choice)
The env's own rewards are kept in `env_rewards` (logged as `env_reward`); `rewards` hold r_t.

What a training sample is. An episode's `TokenEpisode` is its history as the policy saw it at the end: its own
matched (or unpatched) outputs are policy tokens, each patch is the expert's action as context (policy_mask 0). The
policy's own divergent output at a patched turn t is not in that history, yet it is trained on with A_t: it becomes
a *side sample*, a `TokenEpisode` holding the history the policy saw at turn t (all context, policy_mask 0) followed
by its divergent output (policy tokens, turn_index t) and the template's end of the assistant turn. Every
generated token is a policy token of exactly one sample, with its sampling log-prob; every sample's tokens are the
chat template's rendering of its conversation (`meta["messages"]`). `training_samples` adds the side samples to
the update; the trainer's metrics and the rollout callbacks see the episodes only.

SOP, semi-online performance (turngym's reading of the paper's metric: the model's own history, scored up to its
first mismatch with the expert). Per episode, m = matched steps before the first divergence, L = m + the steps the
expert needs to finish from the state of that divergence (replayed on the second env; L = T when nothing diverged):
  sop_progress = mean m / L,   sop_success = mean [no divergence and success],   sop = (progress + success) / 2.
Logged per step as `uis1_sop`, `uis1_sop_progress`, `uis1_sop_success`, beside `uis1_online_success`: the success
of `uis1_online_episodes` unpatched episodes per task that the rollout engine plays with the same policy (not
trained on). The trainer's own `success` is that of the patched episodes (expert-assisted).

Needs: a `RolloutEngine`-like engine (`policy`, `env_id`, `env_kwargs`, `parser`, ...) over a text policy, and an
env family with a scripted expert. The episodes run on the library's one rollout loop (`agents.slots.run_slots`):
`num_envs` env slots, one batched generation per turn over the live episodes, a finished episode's slot refilled
with the next planned one; env steps (and the expert's patches) run in the calling thread.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from turngym.agents.parsing import parse_action
from turngym.agents.prompting import first_user_message, system_text
from turngym.agents.slots import InlineExecutor, run_slots
from turngym.agents.trajectory import Episode, Step, TokenEpisode, clean_info
from turngym.errors import ConfigError, EnvError
from turngym.trainers.advantages import anchor_advantages, discounted_returns, grpo_advantages
from turngym.trainers.strategies import RolloutStrategy, register_strategy


def same_action(action: str, expert: str) -> bool:
    """`uis1_match: action`: the parsed action is the expert's, exactly (outer whitespace aside)."""
    return action.strip() == expert.strip()


def patch_text(action: str, parser: str) -> str:
    """The assistant message a patch writes for the expert's `action`: the action in the format `parser` reads
    (`Action: ...` for react, the action itself otherwise)."""
    return f"Action: {action}" if parser == "react" else action


def step_rewards(
    format_ok: list[bool], matched: list[bool], format_weight: float = 0.1, match_weight: float = 0.9
) -> list[float]:
    """UI-S1 step rewards r_t = format_weight * format_t + match_weight * match_t (one per turn)."""
    if len(format_ok) != len(matched):
        raise ValueError("step_rewards: one format flag and one match flag per turn")
    return [format_weight * float(f) + match_weight * float(m) for f, m in zip(format_ok, matched)]


def uis1_advantages(
    rewards: list[Tensor],
    step_keys: list[list[str]],
    gamma: float = 0.5,
    omega: float = 1.0,
    eps: float = 1e-6,
) -> list[Tensor]:
    """UI-S1 advantages of one group: A_{i,t} = A^S_{i,t} + omega * A^E_i.

    rewards: G tensors [T_i] (step rewards r_t); step_keys: G lists [T_i] (which steps share a group: UI-S1 uses
    (turn, obs_key)). A^S: discounted returns R_t = sum_k gamma^(k-t) r_k, normalised over the steps with the same
    key (mean, unbiased std + eps; 0 for a lone step); A^E: GRPO normalisation of the episode sums sum_t r_t.
    Returns G tensors [T_i]."""
    returns = [discounted_returns(r, gamma) for r in rewards]
    a_step = anchor_advantages(returns, step_keys, std_norm=True, eps=eps)
    a_ep = grpo_advantages(torch.tensor([float(r.sum()) for r in rewards]), eps=eps)
    return [a_step[i] + omega * a_ep[i] for i in range(len(rewards))]


def step_keys(episode: TokenEpisode) -> list[str]:
    """The step-group key of each turn: `turn:obs_key` of the state the action was taken in."""
    return [f"{t}:{k}" for t, k in enumerate(episode.obs_keys)]


def sop_scores(matched: list[bool], success: bool, expert_length: int) -> tuple[float, float]:
    """(progress, success) of one episode for SOP: m / L with m the matched steps before the first divergence and
    L = `expert_length` (m + the expert's steps to finish from the divergence; the episode's turns when none), and
    1.0 when nothing diverged and the episode succeeded."""
    m = next((t for t, ok in enumerate(matched) if not ok), len(matched))
    full = m == len(matched)
    return (m / expert_length if expert_length > 0 else 0.0), float(full and success)


@dataclass
class _Run:
    """One semi-online episode in progress: its envs, conversation, token sequence and per-turn records."""

    index: int
    group: int
    seed: int
    options: dict[str, Any]
    env: Any
    shadow: Any  # a second env of the same kind, re-created by replay (state matching, SOP)
    messages: list[dict[str, str]]
    episode: Episode
    obs_key: str
    ids: list[int] = field(default_factory=list)
    mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    turn_index: list[int] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    env_rewards: list[float] = field(default_factory=list)
    obs_keys: list[str] = field(default_factory=list)
    infos: list[dict[str, Any]] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)  # what the env executed, in order (for replays)
    matched: list[bool] = field(default_factory=list)
    formats: list[bool] = field(default_factory=list)
    patched: list[int] = field(default_factory=list)
    side: list[TokenEpisode] = field(default_factory=list)
    stop_reason: str = ""
    done: bool = False
    generation: Any = None  # the policy's output for the coming turn (set by _generate, used by _step)

    def add(self, ids: list[int], logprobs: list[float] | None = None, turn: int = -1) -> None:
        """Append ids: policy tokens (with their log-probs and turn) when `logprobs` is given, else context."""
        self.ids += ids
        self.mask += [1 if logprobs is not None else 0] * len(ids)
        self.logprobs += logprobs if logprobs is not None else [0.0] * len(ids)
        self.turn_index += [turn if logprobs is not None else -1] * len(ids)


@register_strategy("uis1", own_advantages=True)
class UIS1Strategy(RolloutStrategy):
    """UI-S1 semi-online rollouts with expert patches; step + episode advantages; side samples for the policy's
    divergent outputs; SOP metrics (see the module docstring)."""

    def __init__(self, engine: Any, model: Any, cfg: Any):
        super().__init__(engine, model, cfg)
        needs = ("policy", "env_id", "plan", "num_envs", "system_prompt", "prompt_hook")
        missing = [a for a in needs if not hasattr(engine, a)]
        if missing:
            raise ConfigError(
                f"rollout_strategy=uis1 needs a RolloutEngine (it plays the episodes itself with the engine's policy "
                f"and env); this engine has no {', '.join(missing)}"
            )
        self.policy = engine.policy
        if getattr(self.policy, "multimodal", False):
            raise ConfigError("rollout_strategy=uis1 supports text policies only (this one is multimodal)")
        if getattr(self.policy, "constraint", None) is not None:
            raise ConfigError(
                "rollout_strategy=uis1 plays its episodes with its own generation calls, which do not decode under "
                f"a constraint; lift the policy's ({self.policy.constraint_spec!r}) with policy.constrain('')"
            )
        self.parser = getattr(engine, "parser", "raw")
        probe = gym.make(engine.env_id, **dict(getattr(engine, "env_kwargs", {}) or {}))
        try:
            from turngym.envs.core import TurnEnv

            unwrapped = probe.unwrapped
            if not isinstance(unwrapped, TurnEnv) or type(unwrapped).expert_action is TurnEnv.expert_action:
                raise ConfigError(
                    f"rollout_strategy=uis1 needs an env family with a scripted expert (expert_action); "
                    f"{engine.env_id} has none"
                )
        finally:
            probe.close()
        self._envs: list[tuple[Any, Any]] = []
        self._online: list[bool] = []

    # ---- the strategy interface --------------------------------------------------------------------------------
    def collect(
        self, task_ids: list[str], group_size: int, seed: int, split: str | None, options: dict[str, Any]
    ) -> list[TokenEpisode]:
        cfg = self.cfg
        task_ids = [str(t) for t in task_ids]
        plan, base = self.engine.plan(
            task_ids, group_size, seed, split, options
        )  # the engine's plan and options
        # the one rollout loop (agents.slots.run_slots): a finished run's slot takes the next planned episode
        pending: deque = deque(
            (g, partial(self._start, index=k, group=g, task_id=tid, base_seed=seed, base=base))
            for k, g, tid in plan
        )
        done: dict[int, TokenEpisode] = {}
        run_slots(
            pending,
            self.engine.num_envs,
            start=lambda slot, job, _group: job(slot),
            act=self._generate,
            step=self._step,
            finished=lambda r: done.__setitem__(r.index, self._finish(r)),
            executor=InlineExecutor(),
        )
        out = [done[k] for k in sorted(done)]
        self._online = []
        if cfg.uis1_online_episodes > 0:
            online = self.engine.collect(
                task_ids, cfg.uis1_online_episodes, seed + 7_919_000, split=split, options=options or None
            )
            self._online = [e.success for e in online]
        return out

    def postprocess_advantages(self, group: list[TokenEpisode], advantages: list[Tensor]) -> list[Tensor]:
        """UI-S1's own advantages from the episodes' step rewards (the estimator's are not used)."""
        cfg = self.cfg
        rewards = [torch.tensor(e.rewards, dtype=torch.float32) for e in group]
        return uis1_advantages(
            rewards, [step_keys(e) for e in group], cfg.uis1_gamma, cfg.uis1_omega, cfg.adv_eps
        )

    def training_samples(
        self, group: list[TokenEpisode], advantages: list[Tensor]
    ) -> list[tuple[TokenEpisode, Tensor]]:
        """Each episode with its advantages, then each of its side samples (a divergent output at turn t) with the
        episode's advantages of turns 0..t; samples without policy tokens are left out."""
        out = []
        for ep, adv in zip(group, advantages):
            if ep.num_policy_tokens:
                out.append((ep, adv))
            for side in ep.meta.get("uis1_side", []):
                side.group = ep.group
                out.append((side, adv[: len(side.rewards)]))
        return out

    def metrics(self, episodes: list[TokenEpisode]) -> dict[str, float]:
        eps = [e for e in episodes if "uis1" in e.meta]
        if not eps:
            return {}
        rec = [e.meta["uis1"] for e in eps]
        progress = float(np.mean([r["sop_progress"] for r in rec]))
        success = float(np.mean([r["sop_success"] for r in rec]))
        turns = sum(len(r["matched"]) for r in rec)
        out = {
            "uis1_sop": (progress + success) / 2,
            "uis1_sop_progress": progress,
            "uis1_sop_success": success,
            "uis1_match_rate": sum(sum(r["matched"]) for r in rec) / max(turns, 1),
            "uis1_patches": float(np.mean([len(r["patched_turns"]) for r in rec])),
            "uis1_side_samples": float(sum(len(e.meta.get("uis1_side", [])) for e in eps)),
        }
        if self._online:
            out["uis1_online_success"] = float(np.mean(self._online))
        return out

    # ---- the semi-online rollout -------------------------------------------------------------------------------
    def _env_pair(self, slot: int) -> tuple[Any, Any]:
        kwargs = dict(getattr(self.engine, "env_kwargs", {}) or {})
        while len(self._envs) <= slot:
            self._envs.append(
                (gym.make(self.engine.env_id, **kwargs), gym.make(self.engine.env_id, **kwargs))
            )
        return self._envs[slot]

    def _start(self, slot: int, index: int, group: int, task_id: str, base_seed: int, base: dict) -> _Run:
        env, shadow = self._env_pair(slot)
        seed, opts = base_seed + index, {**base, "task_id": task_id}
        obs, info = env.reset(seed=seed, options=opts)
        system = system_text(self.engine.system_prompt, self.engine.prompt_hook, info["instructions"])
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": first_user_message(info["instructions"], obs["text"])})
        episode = Episode(
            env_id=self.engine.env_id,
            task_id=info["task_id"],
            agent=str(getattr(self.policy, "spec", "policy")),
            seed=seed,
            instructions=info["instructions"],
            observation=obs["text"],
            meta={"options": opts},
        )
        run = _Run(index, group, seed, opts, env, shadow, messages, episode, str(info.get("obs_key", "")))
        run.add(self.policy.chat.prompt_ids(messages))
        return run

    def _generate(self, live: list[_Run]) -> int:
        """One generation call for every live run (run_slots' `act`); each run keeps its output for `_step`."""
        gens = self.policy.generate(
            [r.ids for r in live], seed=[r.seed * 1_000_003 + len(r.rewards) for r in live]
        )
        for r, g in zip(live, gens):
            r.generation = g
        return sum(len(g.token_ids) for g in gens)

    def _step(self, r: _Run) -> bool:
        """The run's turn with its last generation (run_slots' `step`): compare, patch, step the env; True once done."""
        g, r.generation = r.generation, None
        self._turn(r, g)
        return r.done

    def _turn(self, r: _Run, g: Any) -> None:
        cfg, chat = self.cfg, self.policy.chat
        t = len(r.rewards)
        parsed = parse_action(g.text, self.parser)
        expert = str(r.env.unwrapped.expert_action())
        same = parsed.ok and same_action(parsed.action, expert)
        patch_left = len(r.patched) < cfg.uis1_max_patches
        env_out = shadow_out = None
        if not same and parsed.ok and cfg.uis1_match == "state":
            same, env_out, shadow_out = self._state_match(r, parsed.action, expert)
        patch = not same and patch_left
        reward = step_rewards([parsed.ok], [same], cfg.uis1_format_weight, cfg.uis1_match_weight)[0]
        own = [*r.messages, {"role": "assistant", "content": g.text}]
        own_close = chat.close_assistant(own, list(g.token_ids))[0]
        if patch:
            side_info = {
                "obs_key": r.obs_key,
                "uis1_divergent": True,
                "expert_action": expert,
                "success": False,
            }
            side = TokenEpisode(
                input_ids=[*r.ids, *g.token_ids, *own_close],
                policy_mask=[0] * len(r.ids) + [1] * len(g.token_ids) + [0] * len(own_close),
                logprobs=[0.0] * len(r.ids) + list(g.logprobs) + [0.0] * len(own_close),
                turn_index=[-1] * len(r.ids) + [t] * len(g.token_ids) + [-1] * len(own_close),
                rewards=[*r.rewards, reward],
                obs_keys=[*r.obs_keys, r.obs_key],
                infos=[*r.infos, side_info],
                task_id=r.episode.task_id,
                group=r.group,
                meta={"messages": own, "uis1_side_of": r.index, "uis1_turn": t},
            )
            r.side.append(side)
            text = patch_text(expert, self.parser)
            r.messages.append({"role": "assistant", "content": text})
            body = chat.encode(text)
            r.add(body)
            r.add(chat.close_assistant(r.messages, body)[0])
            r.patched.append(t)
            action = expert
        else:
            r.messages = own
            r.add(list(g.token_ids), list(g.logprobs), t)
            r.add(own_close)
            action = parsed.action
        # the second env took the policy's action: it becomes the run's env
        if shadow_out is not None and not patch:
            r.env, r.shadow = r.shadow, r.env
            env_out = shadow_out
        elif shadow_out is None:
            env_out = r.env.step(action)
        obs, env_reward, term, trunc, info = env_out
        info = dict(info)
        if not parsed.ok:
            info["parse_error"] = parsed.error
        info.update(uis1_matched=bool(same), uis1_patched=bool(patch), uis1_expert_action=expert)
        cinfo = clean_info(info)
        r.rewards.append(reward)
        r.env_rewards.append(float(env_reward))
        r.obs_keys.append(r.obs_key)
        r.infos.append(cinfo)
        r.actions.append(action)
        r.matched.append(bool(same))
        r.formats.append(parsed.ok)
        r.episode.steps.append(Step(action, obs["text"], float(env_reward), bool(term), bool(trunc), cinfo))
        r.obs_key = str(info.get("obs_key", ""))
        if term or trunc:
            r.done, r.stop_reason = True, "terminated" if term else "max_turns"
        elif not same and not patch and cfg.uis1_on_budget == "stop":
            r.done, r.stop_reason = True, "patch_budget"
        else:
            self._observe(r, obs["text"])

    def _observe(self, r: _Run, text: str) -> None:
        """Append the next observation as a user turn (or end the run at the engine's token budget)."""
        messages = [*r.messages, {"role": "user", "content": text}]
        ids = self.policy.chat.user_turn_ids(messages)[0]
        budget = getattr(self.engine, "max_episode_tokens", None)
        if budget and len(r.ids) + len(ids) + int(self.policy.max_new_tokens) > budget:
            r.done, r.stop_reason = True, "token_budget"
            r.episode.steps[-1].truncated = True
            return
        r.messages = messages
        r.add(ids)

    def _replay(self, r: _Run, n: int) -> Any:
        """The second env, reset like the run's and stepped through its first `n` executed actions."""
        env = r.shadow
        _, info = env.reset(seed=r.seed, options=r.options)
        for a in r.actions[:n]:
            _, _, _, _, info = env.step(a)
        want = r.obs_keys[n] if n < len(r.obs_keys) else r.obs_key
        if str(info.get("obs_key", "")) != want:
            raise EnvError(
                f"{self.engine.env_id} (task {r.episode.task_id}, seed {r.seed}): replaying {n} actions gives another "
                "state (obs_key) than the episode had: the env is not deterministic given its seed and actions; use "
                "uis1_match=action"
            )
        return env

    def _state_match(self, r: _Run, action: str, expert: str) -> tuple[bool, Any, Any]:
        """Env-equivalence: the expert's action on the run's env, the policy's on the replayed second env; equal
        when they reach the same obs_key and termination and the policy's action is not flagged invalid. Returns
        (equal, the expert's step result, the policy's step result)."""
        mine = self._replay(r, len(r.actions)).step(action)
        theirs = r.env.step(expert)
        same = (
            str(mine[4].get("obs_key")) == str(theirs[4].get("obs_key"))
            and bool(mine[2]) == bool(theirs[2])
            and not mine[4].get("invalid_action", False)
        )
        return same, theirs, mine

    def _expert_length(self, r: _Run) -> int:
        """L for SOP: matched steps before the first divergence + the expert's steps to finish from that state."""
        m = next((t for t, ok in enumerate(r.matched) if not ok), len(r.matched))
        if m == len(r.matched):
            return len(r.matched)
        env = self._replay(r, m)
        steps, done = 0, False
        while not done:
            _, _, term, trunc, _ = env.step(str(env.unwrapped.expert_action()))
            steps, done = steps + 1, bool(term or trunc)
        return m + steps

    def _finish(self, r: _Run) -> TokenEpisode:
        progress, success = sop_scores(
            r.matched, bool(r.infos and r.infos[-1].get("success")), self._expert_length(r)
        )
        version = int(getattr(self.engine, "policy_version", 0))
        meta = {
            "index": r.index,
            "seed": r.seed,
            "messages": r.messages,
            "env_id": self.engine.env_id,
            "stop_reason": r.stop_reason,
            "prefix_stable": self.policy.chat.prefix_stable,
            "policy_version": version,
            "policy_versions": [version] * len(r.rewards),
            "uis1": {
                "matched": list(r.matched),
                "format_ok": list(r.formats),
                "patched_turns": list(r.patched),
                "sop_progress": progress,
                "sop_success": success,
            },
            "uis1_side": list(r.side),
        }
        return TokenEpisode(
            input_ids=r.ids,
            policy_mask=r.mask,
            logprobs=r.logprobs,
            turn_index=r.turn_index,
            rewards=r.rewards,
            obs_keys=r.obs_keys,
            infos=r.infos,
            task_id=r.episode.task_id,
            group=r.group,
            episode=r.episode,
            env_rewards=list(r.env_rewards),
            meta=meta,
        )
