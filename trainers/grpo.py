"""GRPOTrainer: multi-turn GRPO and its variants on masked token trajectories.

One training step:
  1. pick `tasks_per_step` tasks (a seeded, resumable stream over the split) and the step's `max_turns` (hook);
  2. collect a group of `group_size` episodes per task through the rollout strategy (`ROLLOUT_STRATEGIES`), then
     the callbacks' `on_rollouts`;
  3. reward shaping hooks per group (DAPO overlong shaping is one), then count groups whose rewards are all equal
     (`degenerate_groups`; with `dynamic_sampling` they are dropped and replaced by fresh tasks, DAPO);
  4. advantages per group (`ADVANTAGES[config.advantage]`, then the strategy's post-processing), per turn,
     broadcast onto that turn's policy tokens; extra per-token advantages from hooks are added;
  5. `ppo_epochs` passes over shuffled mini-batches (gradient accumulation over micro-batches): the selected policy
     loss against the sampling log-probs, + β·KL to a frozen reference (if β > 0), − entropy bonus / EPO;
  6. metrics (JSONL, TensorBoard, W&B, progress bar), checkpoints, periodic evaluation; a learning curve at the end.
Callbacks (`trainers.callbacks`) see every step begin and end, and their state is saved in the checkpoints. The
trainer asks each piece what it needs (a loss's default aggregation and entropy use, a strategy's group size) and
has no branch naming a method.

The rollout engine is anything with `collect(task_ids, group_size, seed, split=None, options=None) ->
list[TokenEpisode]` (the agents' `RolloutEngine`); by default one is built from `policy` and `env_id`.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from turngym.agents.policy import check_token_policy
from turngym.agents.trajectory import TokenEpisode
from turngym.errors import ConfigError
from turngym.trainers import hooks
from turngym.trainers.advantages import ADVANTAGES, token_advantages
from turngym.trainers.batch import Batch, collate, shift_entropy, shift_logprobs
from turngym.trainers.callbacks import Callback, build_callback, callback_key
from turngym.trainers.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    resume_checkpoint,
    save_checkpoint,
)
from turngym.trainers.config import GRPOConfig, save_interval, to_dict
from turngym.trainers.epo import EntropyTerms, masked_mean_entropy
from turngym.trainers.logging import MetricsLogger, plot_curves
from turngym.trainers.losses import (
    POLICY_LOSSES,
    aggregate,
    kl_penalty,
    loss_agg,
    needs_entropy,
    truncated_is_weights,
)
from turngym.trainers.rewards import append_row, group_metrics, group_row
from turngym.trainers.strategies import ROLLOUT_STRATEGIES

log = logging.getLogger(__name__)


class TaskStream:
    """Task ids in a seeded order, epoch after epoch: item k depends only on (seed, k), so resuming at position k
    continues the exact sequence."""

    def __init__(self, task_ids: list[str], seed: int):
        if not task_ids:
            raise ConfigError("no training tasks: the split is empty or task_ids is []")
        self.ids = list(task_ids)
        self.seed = seed
        self.position = 0
        self._perms: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            self._perms[epoch] = np.random.default_rng([self.seed, epoch]).permutation(len(self.ids))
        return self._perms[epoch]

    def take(self, n: int) -> list[str]:
        out = []
        for _ in range(n):
            epoch, i = divmod(self.position, len(self.ids))
            out.append(self.ids[int(self._perm(epoch)[i])])
            self.position += 1
        return out


def lr_lambda(schedule: str, warmup: int, total: int) -> Callable[[int], float]:
    """Multiplier of the base LR after `k` optimizer steps: linear warmup, then constant / linear / cosine decay."""

    def f(k: int) -> float:
        if warmup and k < warmup:
            return (k + 1) / warmup
        if schedule == "constant" or total <= warmup:
            return 1.0
        frac = min(1.0, (k - warmup) / max(1, total - warmup))
        if schedule == "linear":
            return 1.0 - frac
        return 0.5 * (1.0 + math.cos(math.pi * frac))

    return f


def group_episodes(episodes: list[TokenEpisode]) -> list[list[TokenEpisode]]:
    """Episodes grouped by `group`, in first-seen order."""
    groups: dict[Any, list[TokenEpisode]] = {}
    for ep in episodes:
        groups.setdefault(ep.group, []).append(ep)
    return list(groups.values())


def is_degenerate(group: list[TokenEpisode]) -> bool:
    """All episode rewards of the group are equal: GRPO advantages are all zero (no learning signal)."""
    totals = [ep.total_reward for ep in group]
    return max(totals) - min(totals) < 1e-9


# module names of vision towers (Qwen2-VL `visual`, LLaVA `vision_tower`, Idefics3/SmolVLM `vision_model`)
VISION_MODULES = r".*\b(visual|vision_tower|vision_model)\b.*"


def prepare_model(model: torch.nn.Module, cfg: Any) -> torch.nn.Module:
    """Gradient checkpointing and LoRA (peft) as configured: adapters on every linear layer of the language model
    (and of the vision tower with `lora_vision`); peft freezes every base weight."""
    if cfg.gradient_checkpointing and hasattr(model, "gradient_checkpointing_enable"):
        model.gradient_checkpointing_enable()
        if hasattr(model, "config"):
            model.config.use_cache = False
    if cfg.lora_r > 0:
        from turngym.optional import require

        peft = require("peft", "lora", "LoRA training")
        # a vision-language model keeps its vision tower out of LoRA unless asked (`lora_vision`)
        exclude = None if cfg.lora_vision else VISION_MODULES
        lcfg = peft.LoraConfig(
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            target_modules="all-linear",
            exclude_modules=exclude,
            task_type="CAUSAL_LM",
        )
        model = peft.get_peft_model(model, lcfg)
    return model


def policy_module(policy: Any) -> torch.nn.Module:
    """The nn.Module to optimise: the policy itself when it is one, else its `.model` (HFPolicy)."""
    if isinstance(policy, torch.nn.Module):
        return policy
    model = getattr(policy, "model", None)
    if not isinstance(model, torch.nn.Module):
        raise ConfigError(
            f"policy {type(policy).__name__} is neither an nn.Module nor has a .model nn.Module"
        )
    return model


def forward_logits(model: torch.nn.Module, batch: Batch, bf16: bool = False) -> torch.Tensor:
    """Logits [B, L, V] of a causal LM for a collated batch (bf16 autocast when asked and supported); a batch of
    vision-language episodes also feeds its image inputs (`Batch.images`)."""
    device = next(model.parameters()).device
    ctx = (
        torch.autocast(device.type, dtype=torch.bfloat16)
        if bf16
        else torch.autocast(device.type, enabled=False)
    )
    images = {k: v.to(device) for k, v in batch.images.items()} if batch.images is not None else {}
    with ctx:
        out = model(
            input_ids=batch.input_ids.to(device),
            attention_mask=batch.attention_mask.to(device),
            use_cache=False,
            **images,
        )
    logits = out.logits if hasattr(out, "logits") else out
    if batch.images is not None:  # a vision-language policy never samples its placeholder/delimiter ids
        from turngym.agents.backends.vlm import mask_vision_logits

        logits = mask_vision_logits(logits, model.config)
    return logits


def split_task_ids(env_id: str, env_kwargs: dict[str, Any], split: str | None) -> list[str]:
    """The tasks the env plays in `split` (`TurnEnv.task_ids`; the env is made with `env_kwargs` and closed again)."""
    import gymnasium as gym

    import turngym  # noqa: F401  (registers the env ids)

    env = gym.make(env_id, **env_kwargs)
    try:
        return list(env.unwrapped.task_ids(split))
    finally:
        env.close()


def dist_info() -> tuple[int, int]:
    """(rank, world size) of an initialised torch.distributed run, else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def init_distributed() -> tuple[int, int]:
    """Join the process group that `torchrun` / `accelerate launch` describe in the environment (WORLD_SIZE > 1):
    NCCL on CUDA (each process on cuda:LOCAL_RANK), gloo on CPU. A no-op for a single process. Returns (rank, world)."""
    import os

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and torch.distributed.is_available() and not torch.distributed.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist_info()


class GRPOTrainer:
    """Multi-turn GRPO family trainer. See the module docstring for the step; `train()` runs `config.steps` steps.

    Data parallel: when torch.distributed is initialised (`init_distributed()`, which `turngym train` calls), every
    rank starts from rank 0's weights, collects its own share of each step's tasks (the seeded stream is read in
    full by every rank and split rank::world, so positions stay equal and resumable), and gradients are averaged
    across ranks before each optimizer step (ranks with fewer mini-batches contribute zero gradients, so no rank
    waits forever). Rank 0 writes to `output_dir`; rank r > 0 to `output_dir/rank<r>` without progress bar or plots.
    With `rollout_backend: ray` the ranks share one rollout service: rank 0 builds the `RayRolloutEngine`, collects
    every rank's share (its tasks, seed and options, as the rank's own engine would) and scatters the episodes, and
    sends the weights to the workers after each update (`_collect_shared`, `_from_rank0`, `sync_rollout_weights`).
    """

    def __init__(
        self,
        policy: Any,
        env_id: str | None = None,
        config: GRPOConfig | None = None,
        engine: Any = None,
        ref_model: torch.nn.Module | None = None,
        evaluator: Callable[[GRPOTrainer], dict[str, float]] | None = None,
        task_ids: list[str] | None = None,
        rollout_policy: Any = None,
        callbacks: list[Callback] | None = None,
    ):
        """`rollout_policy`: a second policy that generates the rollouts (e.g. `VLLMPolicy` over the same checkpoint)
        while `policy`'s model is trained; the trainer copies its weights into it (`load_weights`) before the
        first rollout and after every update. None: `policy` generates with the trained model itself.
        `callbacks`: trainer callbacks run after those the config names (`config.callbacks`)."""
        cfg = config or GRPOConfig(env_id=env_id or "")
        if env_id:
            cfg = replace(cfg, env_id=env_id)
        self.rank, self.world = dist_info()
        self.config = cfg = self._rank_config(cfg)
        self.policy = policy
        # a bare nn.Module trains with an engine of its own (no sampling settings); anything else is a TokenPolicy
        for p, what in ((policy, "GRPOTrainer"), (rollout_policy, "GRPOTrainer's rollout_policy")):
            if p is not None and not isinstance(p, torch.nn.Module):
                check_token_policy(p, what)
        self.model: torch.nn.Module = prepare_model(policy_module(policy), cfg)
        if not isinstance(policy, torch.nn.Module):
            policy.model = self.model
        self.tokenizer = None if isinstance(policy, torch.nn.Module) else policy.tokenizer
        if self.world > 1:  # every rank starts from rank 0's weights
            for t in self.model.state_dict().values():
                torch.distributed.broadcast(t, 0)
        self.ref_model = ref_model
        if cfg.kl_beta > 0 and self.ref_model is None:
            self.ref_model = copy.deepcopy(self.model).eval().requires_grad_(False)
        self._setup_rollouts(policy, engine, rollout_policy)
        self.evaluator = evaluator
        self.sync_rollout_weights()
        self._setup_optimizer()
        self.tasks = TaskStream(
            task_ids or cfg.task_ids or split_task_ids(cfg.env_id, cfg.env_kwargs, cfg.split), cfg.seed
        )
        self.entropy_terms = EntropyTerms(cfg)
        self._tis_weights: dict[int, torch.Tensor] = {}  # truncated IS: sample id -> its token weights
        self._stream: Any = None  # async mode: the engine's RolloutStream
        self._read_ahead: list[int] = []  # async mode: task positions after each requested batch
        self._consumed_position = 0
        self.step = 0
        self._build_hooks(callbacks)
        self.pad_id = int(self.tokenizer.pad_token_id or 0) if self.tokenizer is not None else 0
        self.out = Path(cfg.output_dir)
        self.logger: MetricsLogger | None = None

    # ---- setup helpers ---------------------------------------------------------------------------------------
    def _rank_config(self, cfg: GRPOConfig) -> GRPOConfig:
        """The config this rank runs: ranks > 0 write under `output_dir/rank<r>` without progress bar, TensorBoard,
        W&B or plots; refuses what several ranks cannot share."""
        if cfg.rollout_backend == "ray" and cfg.dynamic_sampling and self.world > 1:
            raise ConfigError(
                "config field 'dynamic_sampling' with rollout_backend=ray and several trainer processes is not "
                "supported (ranks would need different numbers of rollout rounds); set dynamic_sampling=false"
            )
        if self.rank == 0:
            return cfg
        return replace(
            cfg,
            output_dir=str(Path(cfg.output_dir) / f"rank{self.rank}"),
            progress=False,
            tensorboard=False,
            wandb=False,
            plot=False,
        )

    def _setup_rollouts(self, policy: Any, engine: Any, rollout_policy: Any) -> None:
        """Sets `ray_backend`, `fsdp`, `rollout_policy` and `engine`: the Ray rollout service (rank 0 only), FSDP
        sharding, the async sampler replica, the config's sampling settings on every policy, the default engine."""
        cfg = self.config
        # rollout_backend=ray: one rollout service for every rank, driven by rank 0 (the other ranks get their
        # episodes from it, `_from_rank0`); built before FSDP shards the model, which its workers copy
        self.ray_backend = cfg.rollout_backend == "ray"
        if self.ray_backend:
            if self.rank > 0 and engine is not None:
                log.warning(
                    "rollout_backend=ray: rank %d ignores its engine (rank 0's collects for all)", self.rank
                )
                engine = None
            if engine is None and self.rank == 0:
                if not isinstance(policy, torch.nn.Module):  # the workers copy the policy's sampling settings
                    policy.temperature, policy.max_new_tokens = cfg.temperature, cfg.max_new_tokens
                engine = self._default_engine()
        self.fsdp = bool(cfg.fsdp) and self.world > 1
        if self.fsdp:
            rollout_policy = self._shard(policy, rollout_policy)
        if cfg.max_staleness > 0 and rollout_policy is None and engine is None and not self.ray_backend:
            if isinstance(policy, torch.nn.Module):
                raise ConfigError("max_staleness > 0 needs a TokenPolicy (its replica samples) or an engine")
            rollout_policy = policy.replica()  # async: the sampler is not the model being trained
        self.rollout_policy = rollout_policy
        # the config is authoritative for sampling: log-probs are recomputed at the same temperature
        for p in (policy, rollout_policy):
            if p is not None and not isinstance(p, torch.nn.Module):
                p.temperature, p.max_new_tokens = cfg.temperature, cfg.max_new_tokens
        if engine is None and not self.ray_backend:
            engine = self._default_engine()
        self.engine = engine  # None on ranks > 0 with rollout_backend=ray

    def _setup_optimizer(self) -> None:
        """AdamW over the trainable parameters and the config's learning-rate schedule (per optimizer step)."""
        cfg = self.config
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        per_step = cfg.ppo_epochs * math.ceil(cfg.tasks_per_step * cfg.group_size / cfg.mini_batch_size)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_lambda(cfg.lr_schedule, cfg.warmup_steps, cfg.steps * per_step)
        )

    def _build_hooks(self, callbacks: list[Callback] | None) -> None:
        """Reward shapers, the max_turns schedule, extra advantages, the rollout strategy and the callbacks. A shaper
        factory that returns a `Callback` also runs as one (SPA-RL fits in `on_rollouts`; SLIM is only a callback)."""
        cfg = self.config
        self.callbacks: list[Callback] = [build_callback(s) for s in cfg.callbacks]
        self.shapers = []
        for spec in cfg.shaper_specs():
            shaper = hooks.resolve(hooks.REWARD_SHAPERS, spec, "reward shaper")
            if isinstance(shaper, Callback):
                self.callbacks.append(shaper)
            if callable(shaper):
                self.shapers.append(shaper)
        self.callbacks += list(callbacks or [])
        self._callbacks_begun = False
        self._ctx: hooks.HookContext | None = None
        self.max_turns_fn = (
            hooks.resolve(hooks.MAX_TURNS_SCHEDULES, cfg.max_turns_schedule, "max_turns schedule")
            if cfg.max_turns_schedule
            else None
        )
        self.extra_adv = [
            (hooks.resolve(hooks.EXTRA_ADVANTAGES, s, "extra advantage"), float(s.get("coef", 1.0)))
            for s in cfg.extra_advantages
        ]
        self.strategy = ROLLOUT_STRATEGIES.get_entry(cfg.rollout_strategy)(self.engine, self.model, cfg)

    def _default_engine(self) -> Any:
        if not self.config.env_id:
            raise ConfigError("GRPOTrainer needs env_id (or an engine)")
        if self.config.rollout_backend == "ray":  # Ray actors, each a RolloutEngine over its own model copy
            from turngym.agents.ray_engine import from_config

            return from_config(self.policy, self.config)
        try:
            from turngym.agents.engine import RolloutEngine  # the agents' rollout engine
        except ImportError as exc:
            raise ConfigError(
                "no rollout engine available: pass engine=... or install the agents' RolloutEngine"
            ) from exc
        return RolloutEngine(
            self.rollout_policy if self.rollout_policy is not None else self.policy,
            self.config.env_id,
            env_kwargs=self.config.env_kwargs,
            num_envs=self.config.num_envs,
            env_backend=self.config.env_backend,
        )

    def _shard(self, policy: Any, rollout_policy: Any) -> Any:
        """FSDP2: shard every decoder layer and the whole model over the ranks (parameters, gradients and optimizer
        state). Rollouts cannot run on the sharded model (each forward is a collective, and ranks generate different
        numbers of tokens), so they use an unsharded replica, synced after every update. Returns the rollout policy."""
        from torch.distributed.fsdp import fully_shard

        if not ROLLOUT_STRATEGIES.meta(self.config.rollout_strategy)["supports_fsdp"]:
            raise ConfigError(
                f"fsdp with rollout_strategy={self.config.rollout_strategy} is not supported (the strategy runs "
                "forward passes of the trained model during rollouts)"
            )
        if rollout_policy is None and not self.ray_backend:  # Ray workers hold the unsharded copies
            if isinstance(policy, torch.nn.Module):
                raise ConfigError(
                    "fsdp needs an unsharded policy for rollouts: pass rollout_policy=..., or a TokenPolicy with "
                    f"replica() (HFPolicy); got a bare {type(policy).__name__}"
                )
            rollout_policy = policy.replica()
        inner = getattr(self.model, "model", None)
        for layer in getattr(inner, "layers", []):
            fully_shard(layer)
        fully_shard(self.model)
        return rollout_policy

    def _full_state(self) -> dict[str, torch.Tensor]:
        """The trained weights as plain tensors (gathered from every rank's shards under FSDP: a collective)."""
        if not self.fsdp:
            return self.model.state_dict()
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(self.model, options=StateDictOptions(full_state_dict=True))

    def sync_rollout_weights(self) -> float:
        """Copy the trained weights into the rollout policy (when there is one; with rollout_backend=ray, into every
        rollout worker: rank 0 broadcasts them, after the FSDP full-state gather every rank takes part in). Returns
        the seconds it took."""
        if self.rollout_policy is None and self.config.rollout_backend != "ray":
            return 0.0
        t0 = time.perf_counter()
        weights = self._full_state() if self.fsdp else self.model  # under FSDP a collective of every rank
        if self.engine is None:  # rollout_backend=ray, rank > 0: rank 0 sends the (equal) weights
            return time.perf_counter() - t0
        # through the rollout engine when it can: it also drops the KV caches kept for the old weights
        if callable(getattr(self.engine, "update_policy", None)):
            self.engine.update_policy(weights)
        else:
            self.rollout_policy.load_weights(weights)
        return time.perf_counter() - t0

    def hook_context(self) -> hooks.HookContext:
        """The hooks' context of the current step (one object per step, so what hooks put in `extra` is logged)."""
        if self._ctx is None or self._ctx.step != self.step:
            self._ctx = hooks.HookContext(
                step=self.step,
                config=self.config,
                model=self.model,
                tokenizer=self.tokenizer,
                engine=self.engine,
            )
        return self._ctx

    def begin_callbacks(self) -> None:
        """`on_train_begin` of every callback, once per trainer (train() and resume() call it)."""
        if not self._callbacks_begun:
            self._callbacks_begun = True
            for cb in self.callbacks:
                cb.on_train_begin(self)

    # ---- rollouts -------------------------------------------------------------------------------------------
    def step_max_turns(self, step: int | None = None) -> int | None:
        """The env's turn limit for the current step (or `step`): the schedule's value, else `config.max_turns`
        (None: the env's)."""
        step = self.step if step is None else step
        max_turns = self.max_turns_fn(step) if self.max_turns_fn else None
        max_turns = max_turns if max_turns is not None else self.config.max_turns
        return int(max_turns) if max_turns is not None else None

    def _request(self, step: int, round_: int, rank: int | None = None) -> tuple[dict[str, Any], int]:
        """The reset options and the rollout seed of step `step`'s round `round_` for `rank` (default: this one's);
        the same in sync and async mode and with every rollout backend."""
        cfg = self.config
        max_turns = self.step_max_turns(step)
        options: dict[str, Any] = {"max_turns": max_turns} if max_turns is not None else {}
        rank = self.rank if rank is None else rank
        return options, cfg.seed * 1_000_003 + step * 1000 + round_ * 100 + rank * 100_003

    def _rank_requests(self, tasks: list[str], step: int, round_: int) -> list[dict[str, Any]]:
        """Every rank's `collect()` request for the tasks all ranks drew (`tasks`, split rank::world as each rank
        splits them), each with its rank's seed: what each rank's own engine would collect."""
        cfg = self.config
        out = []
        for r in range(self.world):
            options, seed = self._request(step, round_, r)
            out.append(
                dict(
                    task_ids=tasks[r :: self.world],
                    group_size=cfg.group_size,
                    seed=seed,
                    split=cfg.split,
                    options=options or None,
                )
            )
        return out

    def _from_rank0(self, parts: list[list[TokenEpisode]] | None) -> list[TokenEpisode]:
        """Rank r's episodes out of rank 0's one list per rank (rollout_backend=ray with several ranks): a scatter
        over the default group (pickled episodes)."""
        got: list[Any] = [None]
        torch.distributed.scatter_object_list(got, parts if self.rank == 0 else None, src=0)
        return got[0]

    def _async_batch(self) -> list[TokenEpisode]:
        """The next batch of the background stream (`max_staleness` > 0), opened at the first call."""
        if self.engine is None:  # rollout_backend=ray, rank > 0: rank 0's stream reads the tasks
            self.tasks.take(self.config.tasks_per_step * self.world)
            eps = self._from_rank0(None)
        else:
            if self._stream is None:
                if not callable(getattr(self.engine, "stream", None)):
                    raise ConfigError(
                        f"max_staleness > 0 needs a rollout engine with stream() (RolloutEngine, RayRolloutEngine); "
                        f"{type(self.engine).__name__} has none"
                    )
                self._consumed_position = self.tasks.position
                self._stream = self.engine.stream(
                    self._async_requests(), max_staleness=self.config.max_staleness
                )
            eps = next(self._stream)
            self._consumed_position = self._read_ahead.pop(0)
            if self._shared_service:
                eps = self._from_rank0(eps)
        for ep in eps:
            ep.group = (0, ep.group)
        return eps

    def _async_requests(self) -> Any:
        """`collect()` requests for this step and the next ones, drawn as the synchronous loop draws them; the task
        stream is read ahead, so `state()` saves the position of the batches actually consumed."""
        cfg = self.config
        step = self.step
        while True:
            drawn = self.tasks.take(cfg.tasks_per_step * self.world)
            self._read_ahead.append(self.tasks.position)
            if self._shared_service:  # rank 0 collects every rank's share in one batch
                yield {"requests": self._rank_requests(drawn, step, 0)}
            else:
                options, seed = self._request(step, 0)
                tasks = drawn[self.rank :: self.world]
                yield dict(
                    task_ids=tasks, group_size=cfg.group_size, seed=seed, split=cfg.split, options=options
                )
            step += 1

    @property
    def _shared_service(self) -> bool:
        """rollout_backend=ray with several ranks: rank 0's engine collects for every rank."""
        return self.ray_backend and self.world > 1

    def close_stream(self) -> None:
        """Stop the background rollouts (async mode); the task position goes back to the consumed batches'."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None
            self.tasks.position = self._consumed_position
            self._read_ahead = []

    def _collect(self, task_ids: list[str], round_: int) -> list[TokenEpisode]:
        cfg = self.config
        options, seed = self._request(self.step, round_)
        self.model.eval()
        with torch.no_grad():
            eps = self.strategy.collect(task_ids, cfg.group_size, seed, cfg.split, options)
        # make group ids unique across rounds (the engine numbers groups from 0 per call)
        for ep in eps:
            ep.group = (round_, ep.group)
        return eps

    def _collect_shared(self, tasks: list[str], round_: int) -> list[TokenEpisode]:
        """rollout_backend=ray with several ranks: rank 0 collects every rank's share of `tasks` (all ranks drew
        them) in one `collect_many` over the Ray workers and scatters them; each rank gets the episodes its own
        engine would have collected (same tasks, seeds and options)."""
        parts = None
        if self.rank == 0:
            parts = self.engine.collect_many(self._rank_requests(tasks, self.step, round_))
        eps = self._from_rank0(parts)
        for ep in eps:
            ep.group = (round_, ep.group)
        return eps

    def shape(self, group: list[TokenEpisode]) -> None:
        """Apply the reward-shaping hooks to one group in place, keeping the env's rewards in `ep.env_rewards`."""
        for ep in group:
            if ep.env_rewards is None:
                ep.env_rewards = list(ep.rewards)
        ctx = self.hook_context()
        for shaper in self.shapers:
            new = shaper(group, ctx)
            if len(new) != len(group) or any(len(r) != len(ep.rewards) for r, ep in zip(new, group)):
                raise ValueError(
                    "a reward shaper must return one per-turn reward list per episode, same lengths"
                )
            # a shaper may ask for a per-group log line (name, file): written here, shapers stay pure
            log = getattr(shaper, "group_log", None)
            if log is not None:
                append_row(self.out / log[1], group_row(self.step, log[0], group, new))
            for ep, r in zip(group, new):
                ep.rewards = [float(x) for x in r]

    def rollout(self) -> tuple[list[list[TokenEpisode]], dict[str, float]]:
        """Collect and shape this step's groups. Returns (groups, rollout metrics)."""
        cfg = self.config
        self.begin_callbacks()
        groups: list[list[TokenEpisode]] = []
        stats: dict[str, float] = {"degenerate_groups": 0, "resampled_groups": 0, "rollout_rounds": 0}
        needed = cfg.tasks_per_step
        all_eps: list[TokenEpisode] = []
        rounds = 1 + (cfg.dynamic_sampling_max_rounds if cfg.dynamic_sampling else 0)
        for r in range(rounds):
            if needed <= 0:
                break
            if cfg.max_staleness > 0:
                eps = self._async_batch()
            elif self._shared_service:
                eps = self._collect_shared(self.tasks.take(needed * self.world), r)
            else:
                tasks = self.tasks.take(needed * self.world)[self.rank :: self.world]
                eps = self._collect(tasks, r)
            all_eps += eps
            stats["rollout_rounds"] += 1
            for cb in self.callbacks:
                stats.update(cb.on_rollouts(self, eps) or {})
            for g in group_episodes(eps):
                self.shape(g)
                if is_degenerate(g):
                    stats["degenerate_groups"] += 1
                    if cfg.dynamic_sampling:
                        stats["resampled_groups"] += 1
                        continue
                groups.append(g)
            needed = cfg.tasks_per_step - len(groups)
        if not groups:
            log.warning("step %d: every group had equal rewards; nothing to learn from", self.step)
        stats.update(self.strategy.metrics(all_eps))
        stats["reward"] = float(np.mean([e.total_reward for e in all_eps])) if all_eps else 0.0
        stats["env_reward"] = (
            float(np.mean([sum(e.env_rewards or e.rewards) for e in all_eps])) if all_eps else 0.0
        )
        stats["success"] = float(np.mean([e.success for e in all_eps])) if all_eps else 0.0
        stats["turns"] = float(np.mean([len(e.rewards) for e in all_eps])) if all_eps else 0.0
        max_turns = self.step_max_turns()
        if max_turns is not None:  # the turn limit this step ran under (schedules change it)
            stats["max_turns"] = float(max_turns)
        stats["policy_tokens"] = float(np.mean([e.num_policy_tokens for e in all_eps])) if all_eps else 0.0
        # worker faults: episodes of this step played again, restarts so far (rank 0 sees them)
        if self.ray_backend:
            stats["rerun_episodes"] = float(sum(bool(e.meta.get("rerun")) for e in all_eps))
            if self.engine is not None:
                stats["rollout_restarts"] = float(getattr(self.engine, "restarts", 0))
        # cost per name (cost/<name>), total cost, tool calls and invalid actions per episode, next to success;
        # NaN (no success this step) is left out.
        for k, v in group_metrics(all_eps).items():
            if k not in stats and not math.isnan(v):
                stats[k] = v
        return groups, stats

    # ---- advantages and loss --------------------------------------------------------------------------------
    def advantages(self, groups: list[list[TokenEpisode]]) -> list[tuple[TokenEpisode, torch.Tensor]]:
        """(sample, per-turn advantages [T]) for every episode of every group (and the extra samples a strategy
        adds, `RolloutStrategy.training_samples`)."""
        fn = ADVANTAGES[self.config.advantage]
        out = []
        for g in groups:
            advs = fn(
                [torch.tensor(e.rewards, dtype=torch.float32) for e in g],
                [list(e.obs_keys) for e in g],
                self.config,
            )
            out += self.strategy.training_samples(g, self.strategy.postprocess_advantages(g, advs))
        return out

    def norm_len(self) -> int:
        """Dr. GRPO's constant normaliser: the most policy tokens an episode can have (max_new_tokens × max_turns)."""
        turns = self.config.max_turns or 1
        return int(self.config.max_new_tokens * turns)

    def micro_loss(
        self, items: list[tuple[TokenEpisode, torch.Tensor]]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.config
        eps = [e for e, _ in items]
        batch = collate(eps, self.pad_id)
        adv = token_advantages(batch.turn_index, [a for _, a in items])
        if self._tis_weights:  # truncated IS: each token's term times w = min(π_old/π_rollout, C)
            for i, e in enumerate(eps):
                w = self._tis_weights[id(e)]
                adv[i, : len(w)] = adv[i, : len(w)] * w
        if self.extra_adv:
            ctx = self.hook_context()
            for fn, coef in self.extra_adv:
                adv = adv + coef * fn(eps, batch, ctx).float().cpu() * batch.policy_mask
        device = next(self.model.parameters()).device
        batch = batch.to(device)
        adv = adv.to(device)
        logits = forward_logits(self.model, batch, cfg.bf16)
        logp = shift_logprobs(logits, batch.input_ids, cfg.temperature, batch.allowed) * batch.policy_mask
        if self.entropy_terms.needs_grad or needs_entropy(cfg):
            ent = shift_entropy(logits, cfg.temperature, batch.allowed)
        else:
            with torch.no_grad():
                ent = shift_entropy(logits.detach(), cfg.temperature, batch.allowed)
        mask = batch.policy_mask
        old = batch.old_logprobs
        loss, m = POLICY_LOSSES.get_entry(cfg.loss)(
            logp, old, adv, mask, cfg, entropy=ent, norm_len=self.norm_len(), vocab_size=int(logits.shape[-1])
        )
        h = masked_mean_entropy(ent, mask)
        # trainer vs sampler log-probs (before the first update: the sampler's mismatch alone)
        with torch.no_grad():
            gap = ((logp.detach() - old).abs() * mask).sum() / mask.sum().clamp(min=1)
        metrics = {
            "pg_loss": float(loss.detach()),
            "entropy": float(h.detach()),
            "logprob_gap": float(gap),
            **m,
        }
        if cfg.kl_beta > 0:
            with torch.no_grad():
                ref_logits = forward_logits(self.ref_model, batch, cfg.bf16)
                ref_lp = shift_logprobs(ref_logits, batch.input_ids, cfg.temperature, batch.allowed) * mask
            kl = aggregate(
                kl_penalty(logp, ref_lp, cfg.kl_estimator),
                mask,
                cfg.loss_agg or "seq_mean_token_mean",
                self.norm_len(),
            )
            loss = loss + cfg.kl_beta * kl
            metrics["kl"] = float(kl.detach())
        return self.entropy_terms.apply(loss, h), metrics

    def update(self, items: list[tuple[TokenEpisode, torch.Tensor]]) -> dict[str, float]:
        """`ppo_epochs` passes over shuffled mini-batches with gradient accumulation. Returns averaged metrics."""
        cfg = self.config
        if not items and self.world == 1:
            return {}
        self.model.train()
        rng = np.random.default_rng([cfg.seed, self.step, 7])
        token_weighted = (
            loss_agg(cfg) == "token_mean"
        )  # micro-batches weighted by their share of policy tokens
        self.entropy_terms.begin_update(self.step)
        tis_stats: dict[str, float] = {}
        if cfg.tis_cap > 0:
            items, tis_stats = self.truncated_is(items)
        sums: dict[str, float] = {}
        count = 0
        entropies: list[float] = []
        grad_norms: list[float] = []
        first_gaps: list[float] = []
        n_mini = math.ceil(len(items) / cfg.mini_batch_size)
        if self.world > 1:  # the same number of optimizer steps on every rank
            n = torch.tensor([n_mini], device=next(self.model.parameters()).device)  # NCCL needs CUDA tensors
            torch.distributed.all_reduce(n, op=torch.distributed.ReduceOp.MAX)
            n_mini = int(n)
        params = [p for p in self.model.parameters() if p.requires_grad]
        for _ in range(cfg.ppo_epochs):
            order = rng.permutation(len(items))
            for b in range(n_mini):
                s = b * cfg.mini_batch_size
                mini = [items[i] for i in order[s : s + cfg.mini_batch_size]]
                tok_total = sum(e.num_policy_tokens for e, _ in mini) or 1
                self.optimizer.zero_grad(set_to_none=True)
                starts = list(range(0, len(mini), cfg.micro_batch_size))
                # under FSDP every rank makes the same number of forward/backward passes (they are collectives)
                if self.fsdp:
                    for _ in range(math.ceil(cfg.mini_batch_size / cfg.micro_batch_size) - len(starts)):
                        self._zero_pass()
                for m0 in starts:
                    micro = mini[m0 : m0 + cfg.micro_batch_size]
                    if token_weighted:
                        w = sum(e.num_policy_tokens for e, _ in micro) / tok_total
                    else:
                        w = len(micro) / len(mini)
                    loss, m = self.micro_loss(micro)
                    (loss * w).backward()
                    entropies.append(m["entropy"])
                    if not grad_norms:  # no optimizer step yet: the gap is the sampler's mismatch alone
                        first_gaps.append(m["logprob_gap"])
                    for k, v in m.items():
                        sums[k] = sums.get(k, 0.0) + v
                    count += 1
                if self.world > 1 and not self.fsdp:  # average over ranks (a rank without data adds zeros)
                    for p in params:
                        if p.grad is None:
                            p.grad = torch.zeros_like(p)
                        torch.distributed.all_reduce(p.grad)
                        p.grad /= self.world
                gn = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                gn = gn.full_tensor() if hasattr(gn, "full_tensor") else gn  # a DTensor under FSDP
                grad_norms.append(float(gn))
                self.optimizer.step()
                self.scheduler.step()
        out = {k: v / max(count, 1) for k, v in sums.items()}
        out["grad_norm"] = float(np.mean(grad_norms))
        out["optimizer_steps"] = len(grad_norms)
        out["lr"] = float(self.scheduler.get_last_lr()[0])
        if first_gaps:
            out["rollout_logprob_gap"] = float(np.mean(first_gaps))
        out.update(tis_stats)
        self._tis_weights = {}
        out["weight_sync_s"] = self.sync_rollout_weights()
        out.update(self.entropy_terms.end_update(entropies))
        return out

    def truncated_is(
        self, items: list[tuple[TokenEpisode, torch.Tensor]]
    ) -> tuple[list[tuple[TokenEpisode, torch.Tensor]], dict[str, float]]:
        """Truncated importance sampling (`tis_cap` = C > 0): π_old, the trained policy before this update, in one
        no-grad pass over the samples; each sample comes back with π_old as its log-probs (the PPO ratio is taken
        against it) and its tokens' weights w = min(π_old/π_rollout, C) are kept for `micro_loss`. Returns the new
        items and the step's mismatch and clipped share (`losses.truncated_is_weights`)."""
        cfg = self.config
        device = next(self.model.parameters()).device
        out: list[tuple[TokenEpisode, torch.Tensor]] = []
        diff_sum, clip_sum, n_tok = 0.0, 0.0, 0.0
        for s in range(0, len(items), cfg.micro_batch_size):
            chunk = items[s : s + cfg.micro_batch_size]
            batch = collate([e for e, _ in chunk], self.pad_id).to(device)
            with torch.no_grad():
                logits = forward_logits(self.model, batch, cfg.bf16)
                old = shift_logprobs(logits, batch.input_ids, cfg.temperature, batch.allowed)
            old = (old * batch.policy_mask).float().cpu()
            rollout, mask = batch.old_logprobs.float().cpu(), batch.policy_mask.float().cpu()
            w, stats = truncated_is_weights(old, rollout, mask, cfg.tis_cap)
            k = float(mask.sum())
            diff_sum += stats["tis_mismatch"] * k
            clip_sum += stats["tis_clipped_share"] * k
            n_tok += k
            for i, (ep, adv) in enumerate(chunk):
                n = len(ep.input_ids)
                fresh = replace(ep, logprobs=old[i, :n].tolist())
                self._tis_weights[id(fresh)] = w[i, :n]
                out.append((fresh, adv))
        n_tok = max(n_tok, 1.0)
        return out, {"tis_mismatch": diff_sum / n_tok, "tis_clipped_share": clip_sum / n_tok}

    def _zero_pass(self) -> None:
        """A forward/backward with zero loss: keeps an FSDP rank without data in step with the others."""
        device = next(self.model.parameters()).device
        ids = torch.full((1, 1), self.pad_id, dtype=torch.long, device=device)
        out = self.model(input_ids=ids, use_cache=False)
        (out.logits.float().sum() * 0.0).backward()

    # ---- one step, the loop, checkpoints --------------------------------------------------------------------
    def train_step(self) -> dict[str, Any]:
        self.begin_callbacks()
        for cb in self.callbacks:
            cb.on_step_begin(self)
        t0 = time.perf_counter()
        ctx = self.hook_context()
        groups, stats = self.rollout()
        t1 = time.perf_counter()
        items = self.advantages(groups)
        for cb in self.callbacks:
            new = cb.on_batch(self, items)
            items = items if new is None else list(new)
        stats["batch_samples"] = len(items)
        upd = self.update(items)
        self.step += 1
        stats.update(upd)
        stats.update(
            rollout_s=t1 - t0,
            update_s=time.perf_counter() - t1,
            groups=len(groups),
            task_position=self.task_position,
        )
        if self.config.max_staleness > 0:  # policy versions between sampling and this update
            lag = [ep.meta.get("staleness", 0) for g in groups for ep in g]
            stats["staleness"] = float(np.mean(lag)) if lag else 0.0
        for k, v in ctx.extra.items():  # numbers hooks left in the step's context
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in stats:
                stats[k] = float(v)
        for cb in self.callbacks:
            cb.on_step_end(self, stats)
        return stats

    @property
    def task_position(self) -> int:
        """How many tasks the steps so far consumed (async mode reads the task stream ahead of that)."""
        return self._consumed_position if self._stream is not None else self.tasks.position

    def state(self) -> dict[str, Any]:
        return {
            "task_position": self.task_position,
            "entropy_hist": self.entropy_terms.state_dict(),
            "callbacks": {callback_key(i, cb): cb.state_dict() for i, cb in enumerate(self.callbacks)},
        }

    def save(self) -> Path:
        """Write a checkpoint (under FSDP every rank gathers the full model and optimizer state and writes them to
        its own output folder, so each holds a complete, loadable checkpoint)."""
        model: Any = self.model
        optim: Any = self.optimizer
        if self.fsdp:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

            # full states on every rank (with cpu_offload only rank 0 would get them)
            opts = StateDictOptions(full_state_dict=True)
            model, optim = get_state_dict(self.model, self.optimizer, options=opts)
        return save_checkpoint(
            self.out,
            self.step,
            model,
            optim,
            self.scheduler,
            self.state(),
            self.config.keep_checkpoints,
        )

    def resume(self, path: str | Path | None = None) -> bool:
        """Restore from `path` or the latest checkpoint in output_dir; False when there is none."""
        ckpt = Path(path) if path else latest_checkpoint(self.out)
        if ckpt is None:
            return False
        self.begin_callbacks()
        if self.fsdp:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

            blob = load_checkpoint(ckpt, None, None, self.scheduler)
            set_state_dict(
                self.model,
                self.optimizer,
                model_state_dict=blob["model"],
                optim_state_dict=blob["optimizer"],
                options=StateDictOptions(full_state_dict=True),
            )
        else:
            blob = load_checkpoint(ckpt, self.model, self.optimizer, self.scheduler)
        self.step = blob["step"]
        self.tasks.position = blob["state"]["task_position"]
        self.entropy_terms.load_state_dict(blob["state"]["entropy_hist"])
        saved = blob["state"].get("callbacks", {})
        for i, cb in enumerate(self.callbacks):
            key = callback_key(i, cb)
            if key in saved:
                cb.load_state_dict(saved[key])
            else:
                log.warning("checkpoint %s holds no state of callback %s; it starts fresh", ckpt, key)
        self.sync_rollout_weights()
        return True

    def train(self, resume: bool | str = False) -> list[dict[str, Any]]:
        """Run until `config.steps`, checkpointing every `save_interval(config.save_every, config.steps)` steps;
        `resume=True` continues from the latest checkpoint in output_dir (none: a warning, then step 1) or a given
        checkpoint folder."""
        cfg = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.json").write_text(__import__("json").dumps(to_dict(cfg), indent=1, default=str))
        ckpt = resume_checkpoint(self.out, resume)
        self.begin_callbacks()
        if ckpt is not None:
            self.resume(ckpt)
            log.info("resumed at step %d of %d; continuing with step %d", self.step, cfg.steps, self.step + 1)
        every = save_interval(cfg.save_every, cfg.steps)
        self.logger = MetricsLogger(
            self.out,
            cfg.steps,
            cfg.tensorboard,
            cfg.wandb,
            cfg.progress,
            to_dict(cfg),
            name=f"grpo:{cfg.advantage}",
        )
        self.logger.truncate_after(self.step)
        try:
            if self.step == 0 and self.evaluator is not None and cfg.eval_every:
                self.logger.log(0, {f"eval_{k}": v for k, v in self.evaluator(self).items()})
            while self.step < cfg.steps:
                metrics = self.train_step()
                if self.evaluator is not None and cfg.eval_every and self.step % cfg.eval_every == 0:
                    metrics.update({f"eval_{k}": v for k, v in self.evaluator(self).items()})
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    self.logger.log(self.step, metrics)
                if every and self.step % every == 0:
                    self.save()
            if not every or self.step % every:
                self.save()
            records = self.logger.records()
            if cfg.plot:
                plot_curves(records, self.out / "learning_curve.png")
            return records
        finally:
            try:
                for cb in self.callbacks:
                    cb.on_train_end(self)
            finally:
                self.close_stream()
                self.logger.close()
