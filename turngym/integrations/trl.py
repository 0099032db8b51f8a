"""turngym environments inside TRL's `GRPOTrainer` (TRL >= 1.16, `pip install 'turngym[trl]'`).

Two ways in, matching the two multi-turn hooks of TRL's GRPOTrainer:

`rollout_func` (any model, any chat template): `TurngymRollout(env_id)` plays whole episodes with the trainer's
own model through turngym's rollout engine and hands TRL one row per episode::

    rollout = TurngymRollout("turngym/EmbodiedSearch-v0", max_turns=6, max_new_tokens=24)
    trainer = GRPOTrainer(model, args=GRPOConfig(...), train_dataset=rollout.dataset("train"),
                          processing_class=tokenizer, reward_funcs=rollout.reward_funcs, rollout_func=rollout)

  Each dataset row names one task (`prompt` = "turngym task: <task id>", plus a `task_id` column); TRL repeats it
  `num_generations` times, so each group of completions is one task played `num_generations` times with distinct
  episode seeds. A row's `prompt_ids` are the chat-rendered first user turn (system prompt, instructions and first
  observation); `completion_ids` are the rest of the episode: the model's actions AND the env's observations in
  between, with `env_mask` 1 exactly on the model's tokens (TRL trains on those only) and the sampling log-probs
  from generation. The reward is the env's: `env_return` reads the episode return that the rollout passes along.

`environment_factory` (models whose chat template renders tool calls): `environment_factory(env_id)` returns a
factory of `TurngymToolEnv`, whose `reset(task_id=...)` returns the first observation, whose single tool
`act(action)` takes one env step and returns the next observation, and whose `get_reward()` is the episode return.
TRL then owns generation and the tool-call loop.

What TRL's interface cannot express, and what the adapter does instead (docs/integrations.md):
  * per-step rewards: TRL scores a completion with one number. The adapter gives it the episode return
    `sum_t gamma^t r_t` (`gamma`, default 1) and passes the per-turn rewards along as `turngym_rewards` for a
    custom reward function; turn-level credit (GiGPO, turngym's own trainers) is not available through TRL.
  * obs_key (state identity for step-level groups): passed along as `turngym_obs_keys`; TRL does not use it.
  * costs (named per-step costs: tool calls, navigation, ...): summed per name into `turngym_costs`; with
    `cost_weights` the return becomes `return - sum_name w_name * cost_name` (one weight for all names, or a dict).
  * success: passed along as `turngym_success` and logged by `env_return` as the metric `turngym/success`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym

import turngym  # noqa: F401  (registers the env ids)
from turngym.errors import ConfigError
from turngym.optional import require

PROMPT_PREFIX = "turngym task: "
MIN_TRL = "1.16"


def _trl_check() -> Any:
    trl = require("trl", extra="trl", purpose="training turngym envs with TRL")
    from packaging.version import Version

    if Version(trl.__version__) < Version(MIN_TRL):
        raise ConfigError(
            f"turngym.integrations.trl needs trl>={MIN_TRL} (rollout_func / environment_factory); "
            f"found trl {trl.__version__}. Install it with: pip install 'turngym[trl]'"
        )
    return trl


def _env_ids() -> set[str]:
    return {k for k in gym.registry if k.startswith("turngym/")}


def _check_env_id(env_id: Any) -> str:
    if not isinstance(env_id, str) or not env_id:
        raise ConfigError(f"env_id must be a turngym env id such as 'turngym/WebShop-v0', got {env_id!r}")
    if env_id not in gym.registry:
        near = sorted(i for i in _env_ids() if env_id.lower().split("/")[-1][:5] in i.lower())[:5]
        hint = f" (did you mean {', '.join(near)}?)" if near else " (`turngym list` shows the ids)"
        raise ConfigError(f"unknown env id {env_id!r}{hint}")
    return env_id


def _weights(cost_weights: float | Mapping[str, float] | None) -> Callable[[str], float]:
    if cost_weights is None:
        return lambda name: 0.0
    if isinstance(cost_weights, bool) or not isinstance(cost_weights, (int, float, Mapping)):
        raise ConfigError(f"cost_weights must be a number or a dict name -> weight, got {cost_weights!r}")
    if isinstance(cost_weights, Mapping):
        bad = {
            k: v for k, v in cost_weights.items() if isinstance(v, bool) or not isinstance(v, (int, float))
        }
        if bad:
            raise ConfigError(f"cost_weights values must be numbers, got {bad}")
        table = {str(k): float(v) for k, v in cost_weights.items()}
        return lambda name: table.get(name, 0.0)
    w = float(cost_weights)
    return lambda name: w


def episode_return(
    rewards: list[float],
    costs: Mapping[str, float] | None = None,
    gamma: float = 1.0,
    cost_weights: float | Mapping[str, float] | None = None,
) -> float:
    """The one number TRL gets for an episode: `sum_t gamma^t r_t - sum_name w_name * cost_name`."""
    if not 0.0 < gamma <= 1.0:
        raise ConfigError(f"gamma must be in (0, 1], got {gamma}")
    weight = _weights(cost_weights)
    ret = sum(float(r) * gamma**t for t, r in enumerate(rewards))
    return float(ret - sum(weight(k) * float(v) for k, v in (costs or {}).items()))


def _step_costs(infos: list[dict[str, Any]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for info in infos:
        for name, value in (info.get("cost") or {}).items():
            total[str(name)] = total.get(str(name), 0.0) + float(value)
    if not total and infos:
        total = {str(k): float(v) for k, v in (infos[-1].get("total_cost") or {}).items()}
    return total


def task_prompt(task_id: str) -> str:
    return f"{PROMPT_PREFIX}{task_id}"


def task_id_of(prompt: Any) -> str:
    """The task id a dataset prompt names (a string, or chat messages whose last one is the task line)."""
    text = prompt
    if isinstance(prompt, list) and prompt and isinstance(prompt[-1], Mapping):
        text = prompt[-1].get("content")
    if not isinstance(text, str) or not text.startswith(PROMPT_PREFIX) or len(text) == len(PROMPT_PREFIX):
        raise ConfigError(
            f"a TurngymRollout prompt must be {PROMPT_PREFIX!r} followed by a task id (build the dataset with "
            f"TurngymRollout.dataset or turngym.integrations.trl.task_dataset); got {str(prompt)[:80]!r}"
        )
    return text[len(PROMPT_PREFIX) :].strip()


def task_dataset(
    env_id: str,
    split: str | None = "train",
    num_tasks: int | None = None,
    options: dict[str, Any] | None = None,
    env_kwargs: dict[str, Any] | None = None,
    conversational: bool = False,
    seed: int = 0,
) -> Any:
    """A `datasets.Dataset` with one row per task of `env_id`'s `split`: `prompt` names the task, `task_id` holds it
    (TRL forwards the columns to `TurngymToolEnv.reset` and to reward functions). `num_tasks` draws that many tasks
    (seeded, without replacement; all when None). `conversational=True` makes `prompt` a one-message chat (what
    `environment_factory` needs: TRL appends the env's first observation to it)."""
    datasets = require("datasets", extra="trl", purpose="TRL datasets")
    import numpy as np

    from turngym.agents.rollout import env_task_ids

    env = gym.make(_check_env_id(env_id), **dict(env_kwargs or {}))
    try:
        ids = env_task_ids(env, split, options)
    finally:
        env.close()
    if num_tasks is not None:
        if isinstance(num_tasks, bool) or not isinstance(num_tasks, int) or num_tasks < 1:
            raise ConfigError(f"num_tasks must be a positive int or None, got {num_tasks!r}")
        order = np.random.default_rng(seed).permutation(len(ids))
        ids = [ids[int(i)] for i in order[: min(num_tasks, len(ids))]]
    if conversational:
        prompts: list[Any] = [
            [
                {
                    "role": "user",
                    "content": "Solve the task by calling the `act` tool, one action per call.\n\n",
                }
            ]
            for _ in ids
        ]
    else:
        prompts = [task_prompt(t) for t in ids]
    return datasets.Dataset.from_dict({"prompt": prompts, "task_id": list(ids)})


def env_return(
    completions: list[Any], turngym_return: list[float] | None = None, **kwargs: Any
) -> list[float]:
    """TRL reward function: the env's episode return (computed by `TurngymRollout`), one per completion."""
    if turngym_return is None:
        raise ConfigError(
            "env_return reads the `turngym_return` field that TurngymRollout adds to each row; pass "
            "rollout_func=TurngymRollout(...) to the GRPOTrainer together with reward_funcs=rollout.reward_funcs"
        )
    log_metric = kwargs.get("log_metric")
    success = kwargs.get("turngym_success")
    if log_metric is not None and success:
        log_metric("turngym/success", float(sum(map(float, success)) / len(success)))
    return [float(r) for r in turngym_return]


class TurngymRollout:
    """TRL `rollout_func` that plays turngym episodes with the trainer's model (see the module docstring).

    Args:
      env_id, env_kwargs: what `gym.make` gets.
      split: the split the dataset's tasks come from (passed to reset, so a task id resolves in it).
      max_turns: per-episode turn limit; max_new_tokens: per-turn generation limit; max_episode_tokens: token
        budget of a whole episode (prompt + completion; an episode whose next turn would not fit ends truncated).
      system_prompt, parser: as in `RolloutEngine` (`turngym.agents.parsing.PARSERS`).
      gamma, cost_weights: how the per-step rewards and named costs become TRL's one number (`episode_return`).
      num_envs: env copies (episodes generated in one batch); default: the size of the first batch.
      seed: base seed; each call's episodes get fresh seeds (call index, process index).
    """

    def __init__(
        self,
        env_id: str,
        env_kwargs: dict[str, Any] | None = None,
        split: str | None = "train",
        max_turns: int | None = None,
        max_new_tokens: int = 32,
        max_episode_tokens: int | None = None,
        system_prompt: str | None = None,
        parser: str = "raw",
        gamma: float = 1.0,
        cost_weights: float | Mapping[str, float] | None = None,
        num_envs: int | None = None,
        options: dict[str, Any] | None = None,
        seed: int = 0,
    ):
        self.env_id = _check_env_id(env_id)
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}")
        if max_turns is not None and (
            isinstance(max_turns, bool) or not isinstance(max_turns, int) or max_turns < 1
        ):
            raise ConfigError(f"max_turns must be a positive int or None, got {max_turns!r}")
        episode_return([], gamma=gamma, cost_weights=cost_weights)  # validates both
        self.env_kwargs = dict(env_kwargs or {})
        self.split = split
        self.max_turns = max_turns
        self.max_new_tokens = max_new_tokens
        self.max_episode_tokens = max_episode_tokens
        self.system_prompt = system_prompt
        self.parser = parser
        self.gamma = float(gamma)
        self.cost_weights = cost_weights
        self.num_envs = num_envs
        self.options = dict(options or {})
        self.seed = int(seed)
        self.calls = 0
        self.last_episodes: list[Any] = []  # the TokenEpisodes of the latest call (for inspection and tests)
        self._engine: Any = None
        self._policy: Any = None
        self._lock = threading.Lock()

    @property
    def reward_funcs(self) -> list[Callable[..., list[float]]]:
        return [env_return]

    def dataset(self, split: str | None = None, num_tasks: int | None = None, seed: int = 0) -> Any:
        """`task_dataset` for this env (default: this rollout's split and options)."""
        return task_dataset(
            self.env_id,
            split=self.split if split is None else split,
            num_tasks=num_tasks,
            options=self.options,
            env_kwargs=self.env_kwargs,
            seed=seed,
        )

    def _policy_for(self, trainer: Any) -> Any:
        from turngym.agents.backends.hf import HFPolicy

        model = (
            trainer.accelerator.unwrap_model(trainer.model)
            if hasattr(trainer, "accelerator")
            else trainer.model
        )
        tokenizer = getattr(trainer, "processing_class", None)
        tokenizer = getattr(tokenizer, "tokenizer", tokenizer)  # a multimodal processor's text tokenizer
        if tokenizer is None or getattr(tokenizer, "chat_template", None) is None:
            raise ConfigError(
                "TurngymRollout renders episodes with the tokenizer's chat template; the trainer's processing_class "
                "has none (set tokenizer.chat_template)"
            )
        temperature = float(getattr(trainer, "temperature", 1.0) or 1.0)
        top_p = float(getattr(trainer, "top_p", 1.0) or 1.0)
        if self._policy is None or self._policy.model is not model or self._policy.tokenizer is not tokenizer:
            self._policy = HFPolicy(
                model,
                tokenizer,
                max_new_tokens=self.max_new_tokens,
                temperature=temperature,
                top_p=top_p,
                seed=self.seed,
                spec=f"trl:{getattr(model, 'name_or_path', '') or type(model).__name__}",
            )
            if self._engine is not None:
                self._engine.policy = self._policy
        return self._policy

    def _engine_for(self, policy: Any, n: int) -> Any:
        from turngym.agents.engine import RolloutEngine

        if self._engine is None:
            self._engine = RolloutEngine(
                policy,
                self.env_id,
                env_kwargs=self.env_kwargs,
                num_envs=int(self.num_envs or n),
                max_turns=self.max_turns,
                system_prompt=self.system_prompt,
                parser=self.parser,
                max_episode_tokens=self.max_episode_tokens,
            )
        return self._engine

    def __call__(self, prompts: list[Any], trainer: Any) -> dict[str, list[Any]]:
        if not prompts:
            raise ConfigError("TurngymRollout got no prompts")
        if getattr(trainer, "use_vllm", False):
            raise ConfigError(
                "TurngymRollout generates with the trainer's own model (turngym's rollout engine); set use_vllm=False"
            )
        task_ids = [task_id_of(p) for p in prompts]
        with self._lock:
            policy = self._policy_for(trainer)
            engine = self._engine_for(policy, len(prompts))
            process = int(getattr(getattr(trainer, "accelerator", None), "process_index", 0) or 0)
            seed = self.seed + 1_000_003 * process + 10_007 * self.calls
            self.calls += 1
            episodes = engine.collect(
                task_ids, group_size=1, seed=seed, split=self.split, options=self.options
            )
        if len(episodes) != len(
            prompts
        ):  # the engine's contract; checked because TRL indexes rows by position
            raise RuntimeError(f"rollout returned {len(episodes)} episodes for {len(prompts)} prompts")
        out: dict[str, list[Any]] = {
            k: []
            for k in (
                "prompt_ids",
                "completion_ids",
                "logprobs",
                "env_mask",
                "turngym_return",
                "turngym_rewards",
                "turngym_obs_keys",
                "turngym_costs",
                "turngym_success",
                "turngym_task_id",
            )
        }
        for ep in episodes:
            if 1 not in ep.policy_mask:
                raise RuntimeError(
                    f"episode of task {ep.task_id!r} has no generated tokens (token budget too small?)"
                )
            # the completion runs from the first generated token to the last one: the chat template's closing
            # tokens after the final action are not generated, so they are left off (then a completion that the
            # model ended itself ends in its end-of-turn token, as TRL's truncation statistics expect)
            first = ep.policy_mask.index(1)
            end = len(ep.policy_mask) - ep.policy_mask[::-1].index(1)
            costs = _step_costs(ep.infos)
            out["prompt_ids"].append(list(ep.input_ids[:first]))
            out["completion_ids"].append(list(ep.input_ids[first:end]))
            out["logprobs"].append([float(x) for x in ep.logprobs[first:end]])
            out["env_mask"].append([int(m) for m in ep.policy_mask[first:end]])
            out["turngym_return"].append(episode_return(ep.rewards, costs, self.gamma, self.cost_weights))
            out["turngym_rewards"].append([float(r) for r in ep.rewards])
            out["turngym_obs_keys"].append(list(ep.obs_keys))
            out["turngym_costs"].append(costs)
            out["turngym_success"].append(bool(ep.success))
            out["turngym_task_id"].append(ep.task_id)
        self.last_episodes = episodes
        return out

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None


class TurngymToolEnv:
    """A turngym env in TRL's `environment_factory` shape: `reset(**row) -> str`, the tool `act`, `get_reward`.

    `reset` receives the dataset row (TRL passes its columns): `task_id` picks the task (else the env draws one from
    `split`), `seed` the episode seed (else a counter). Bad actions are the env's business (an invalid action is a
    step with its own observation), so the tool never raises for them.
    """

    def __init__(
        self,
        env_id: str,
        env_kwargs: dict[str, Any] | None = None,
        split: str | None = "train",
        max_turns: int | None = None,
        gamma: float = 1.0,
        cost_weights: float | Mapping[str, float] | None = None,
        options: dict[str, Any] | None = None,
        seed: int = 0,
    ):
        self._env_id = _check_env_id(env_id)
        episode_return([], gamma=gamma, cost_weights=cost_weights)
        self._env = gym.make(env_id, **dict(env_kwargs or {}))
        self._split = split
        self._max_turns = max_turns
        self._gamma = float(gamma)
        self._cost_weights = cost_weights
        self._options = dict(options or {})
        self._seed = int(seed)
        self._episodes = 0
        self._rewards: list[float] = []
        self._infos: list[dict[str, Any]] = []
        self._done = True
        self.task_id: str | None = None

    def reset(self, **row: Any) -> str:
        from turngym.agents.prompting import first_user_message

        opts = dict(self._options)
        if self._split:
            opts["split"] = self._split
        if self._max_turns:
            opts["max_turns"] = self._max_turns
        task_id = row.get("task_id")
        if task_id is not None:
            if not isinstance(task_id, str) or not task_id:
                raise ConfigError(f"the dataset's task_id must be a non-empty string, got {task_id!r}")
            opts["task_id"] = task_id
        seed = row.get("seed")
        if seed is None:
            seed = self._seed + self._episodes
        elif isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"the dataset's seed must be an int, got {seed!r}")
        self._episodes += 1
        obs, info = self._env.reset(seed=int(seed), options=opts)
        self.task_id = str(info.get("task_id", task_id))
        self._rewards, self._infos, self._done = [], [], False
        return first_user_message(str(info.get("instructions", "")), obs["text"])

    def act(self, action: str) -> str:
        """Take one action in the environment and return what the agent observes next.

        Args:
            action: The action to take, written exactly as the task's instructions describe actions.

        Returns:
            The next observation, or a note that the episode has ended.
        """
        if self._done:
            return "The episode has ended; no more actions are taken."
        obs, reward, term, trunc, info = self._env.step(action if isinstance(action, str) else str(action))
        self._rewards.append(float(reward))
        self._infos.append(dict(info))
        self._done = bool(term or trunc)
        text = obs["text"]
        return f"{text}\n\n(The episode has ended.)" if self._done else text

    def get_reward(self) -> float:
        """The episode return (`episode_return` of the per-step rewards and named costs so far)."""
        return episode_return(self._rewards, _step_costs(self._infos), self._gamma, self._cost_weights)

    @property
    def success(self) -> bool:
        """Whether the episode so far succeeded (a property: TRL turns every public method into a tool)."""
        return bool(self._infos and self._infos[-1].get("success", False))

    def _close(self) -> None:
        self._env.close()


def environment_factory(env_id: str, **kwargs: Any) -> Callable[[], TurngymToolEnv]:
    """A TRL `environment_factory` making `TurngymToolEnv(env_id, **kwargs)` instances."""
    _check_env_id(env_id)

    def make() -> TurngymToolEnv:
        return TurngymToolEnv(env_id, **kwargs)

    make.__name__ = f"make_{env_id.split('/')[-1].replace('-', '_')}"
    return make
